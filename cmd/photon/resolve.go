package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/spf13/cobra"

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

// projectScope holds the -p/--project and -t/--tenant flags of commands that
// act in a project (VMs, disks): the project to create in, list, or look
// names up in.
type projectScope struct {
	a       *app
	project string
	tenant  string
}

// projectFlags adds -p/--project and --tenant to cmd; --tenant has the short
// form -t unless the command uses -t for something else (vm set-tag).
func (a *app) projectFlags(cmd *cobra.Command, tenantShort bool) *projectScope {
	s := &projectScope{a: a}
	cmd.Flags().StringVarP(&s.project, "project", "p", "", "project name or id (default: the current project, see 'photon project set')")
	short := "t"
	if !tenantShort {
		short = ""
	}
	cmd.Flags().StringVarP(&s.tenant, "tenant", short, "", "tenant of the project -p names (default: the current tenant)")
	return s
}

// id is the project's id: -p's, else the current project's.
func (s *projectScope) id(ctx context.Context, c *client.Client) (string, error) {
	if s.project == "" {
		if s.a.cfg.Project == nil {
			return "", usagef("no project given and no current project: give -p PROJECT, or run 'photon project set NAME'")
		}
		return s.a.cfg.Project.ID, nil
	}
	p, err := s.a.project(ctx, c, s.tenant, s.project)
	if err != nil {
		return "", err
	}
	return p.ID, nil
}

// known is id, or "" when no project is given and none is current: names
// cannot be looked up then, only ids.
func (s *projectScope) known(ctx context.Context, c *client.Client) (string, error) {
	if s.project == "" && s.a.cfg.Project == nil {
		return "", nil
	}
	return s.id(ctx, c)
}

// describe names the project for messages.
func (s *projectScope) describe() string {
	switch {
	case s.project != "":
		return "project " + s.project
	case s.a.cfg.Project != nil:
		return "project " + s.a.cfg.Project.Name
	}
	return "the project"
}

// finder looks an object up by name (in a list, when there is one to look
// in) or by id.
type finder[T any] struct {
	what string // "VM", "disk"
	code string // error code when nothing matches, e.g. VmNotFound
	// where describes the list names are looked up in, e.g. "project p1".
	where string
	// list lists objects named name; nil when names cannot be looked up.
	list func(ctx context.Context, name string) ([]T, error)
	get  func(ctx context.Context, id string) (*T, error)
	name func(*T) string
	id   func(*T) string
}

// find returns the object arg names: the one so named, else the one with
// that id. Several objects of the same name are a usage error.
func (f finder[T]) find(ctx context.Context, arg string) (*T, error) {
	if arg == "" {
		return nil, usagef("name a %s (ID or NAME)", f.what)
	}
	if f.list != nil && nameShaped(arg) {
		items, err := f.list(ctx, arg)
		if err != nil {
			return nil, err
		}
		var match []*T
		for i := range items {
			if f.name(&items[i]) == arg {
				match = append(match, &items[i])
			}
		}
		switch len(match) {
		case 0:
		case 1:
			return match[0], nil
		default:
			ids := make([]string, len(match))
			for i, m := range match {
				ids[i] = f.id(m)
			}
			return nil, usagef("%d %ss in %s are named %q: give the id (%s)", len(match), f.what, f.where, arg, strings.Join(ids, ", "))
		}
	}
	obj, err := f.get(ctx, arg)
	if isNotFound(err) {
		if f.list == nil {
			return nil, api.Errorf(f.code, "no %s with id %q (to find one by name, give -p PROJECT or run 'photon project set NAME')", f.what, arg)
		}
		return nil, api.Errorf(f.code, "no %s named %q in %s or with that id", f.what, arg, f.where)
	}
	return obj, err
}

// projectKind is a kind of object that lives in a project (VMs, disks):
// found by name among the project's, or by id.
type projectKind[T any] struct {
	kind string // "VM", "disk"
	code string // error code when nothing matches, e.g. VmNotFound
	// The SDK's methods, as method expressions.
	get  func(c *client.Client, ctx context.Context, id string) (*T, error)
	list func(c *client.Client, ctx context.Context, pid, name string) ([]T, error)
	id   func(*T) string
	name func(*T) string
}

// find finds the object arg names: by name in the scope's project (when one
// is given or current), or by id.
func (k projectKind[T]) find(ctx context.Context, c *client.Client, s *projectScope, arg string) (*T, error) {
	f := finder[T]{what: k.kind, code: k.code, where: s.describe(), name: k.name, id: k.id,
		get: func(ctx context.Context, id string) (*T, error) { return k.get(c, ctx, id) }}
	if nameShaped(arg) {
		pid, err := s.known(ctx, c)
		if err != nil {
			return nil, err
		}
		if pid != "" {
			f.list = func(ctx context.Context, name string) ([]T, error) { return k.list(c, ctx, pid, name) }
		}
	}
	return f.find(ctx, arg)
}

// object names such objects in commands: with -p/-t when tenantShort, else
// -p/--tenant.
func (k projectKind[T]) object(a *app, tenantShort bool) object[T] {
	return object[T]{kind: k.kind, flags: inProject(a, tenantShort, k.find), id: k.id, name: k.name}
}
