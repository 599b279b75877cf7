package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/client"
)

// isNotFound reports whether err is a 404 answer.
func isNotFound(err error) bool {
	var ae *api.Error
	return errors.As(err, &ae) && ae.Status() == http.StatusNotFound
}

// nameShaped reports whether s could be an object name (ids may be too).
func nameShaped(s string) bool { return api.ValidateName("name", s) == nil }

// tenant finds a tenant by name or id; "" means the current tenant (tenant set).
func (a *app) tenant(ctx context.Context, c *client.Client, arg string) (*api.Tenant, error) {
	if arg == "" {
		if a.cfg.Tenant == nil {
			return nil, usagef("no tenant given and no current tenant: name one, or run 'photon tenant set NAME'")
		}
		t, err := c.GetTenant(ctx, a.cfg.Tenant.ID)
		if isNotFound(err) {
			return nil, fmt.Errorf("current tenant %s is gone: %w", refString(a.cfg.Tenant), err)
		}
		return t, err
	}
	if nameShaped(arg) {
		ts, err := c.ListTenants(ctx, arg)
		if err != nil {
			return nil, err
		}
		for i := range ts {
			if ts[i].Name == arg {
				return &ts[i], nil
			}
		}
	}
	t, err := c.GetTenant(ctx, arg)
	if isNotFound(err) {
		return nil, api.Errorf(api.CodeTenantNotFound, "no tenant named %q or with that id", arg)
	}
	return t, err
}

// tenantID is tenant() for commands that need only the id.
func (a *app) tenantID(ctx context.Context, c *client.Client, arg string) (string, error) {
	if arg == "" && a.cfg.Tenant != nil {
		return a.cfg.Tenant.ID, nil
	}
	t, err := a.tenant(ctx, c, arg)
	if err != nil {
		return "", err
	}
	return t.ID, nil
}

// project finds a project by id, or by name within the tenant named by
// tenantArg (or the current tenant); "" means the current project (project set).
func (a *app) project(ctx context.Context, c *client.Client, tenantArg, arg string) (*api.Project, error) {
	if arg == "" {
		if a.cfg.Project == nil {
			return nil, usagef("no project given and no current project: name one, or run 'photon project set NAME'")
		}
		p, err := c.GetProject(ctx, a.cfg.Project.ID)
		if isNotFound(err) {
			return nil, fmt.Errorf("current project %s is gone: %w", refString(a.cfg.Project), err)
		}
		return p, err
	}
	if nameShaped(arg) && (tenantArg != "" || a.cfg.Tenant != nil) {
		tid, err := a.tenantID(ctx, c, tenantArg)
		if err != nil {
			return nil, err
		}
		ps, err := c.ListProjects(ctx, tid, arg)
		if err != nil {
			return nil, err
		}
		for i := range ps {
			if ps[i].Name == arg {
				return &ps[i], nil
			}
		}
	}
	p, err := c.GetProject(ctx, arg)
	if isNotFound(err) {
		if tenantArg == "" && a.cfg.Tenant == nil {
			return nil, api.Errorf(api.CodeProjectNotFound, "no project with id %q (to find one by name, give -t TENANT)", arg)
		}
		return nil, api.Errorf(api.CodeProjectNotFound, "no project named %q or with that id", arg)
	}
	return p, err
}

// flavor finds a flavor by id, or by name (and kind, if given).
func (a *app) flavor(ctx context.Context, c *client.Client, arg, kind string) (*api.Flavor, error) {
	if nameShaped(arg) {
		fs, err := c.ListFlavors(ctx, client.FlavorFilter{Name: arg, Kind: kind})
		if err != nil {
			return nil, err
		}
		var match []api.Flavor
		for _, f := range fs {
			if f.Name == arg && (kind == "" || f.Kind == kind) {
				match = append(match, f)
			}
		}
		switch len(match) {
		case 1:
			return &match[0], nil
		case 0:
		default:
			kinds := make([]string, len(match))
			for i, f := range match {
				kinds[i] = f.Kind
			}
			return nil, usagef("flavor %q exists for several kinds (%s): give -k KIND or the id", arg, strings.Join(kinds, ", "))
		}
	}
	f, err := c.GetFlavor(ctx, arg)
	if isNotFound(err) {
		return nil, api.Errorf(api.CodeFlavorNotFound, "no flavor named %q or with that id", arg)
	}
	return f, err
}
