package client

import (
	"context"
	"net/http"

	"github.com/photon-cloud/photon/api"
)

// ListTenants lists tenants, all pages; a non-empty name selects that tenant.
func (c *Client) ListTenants(ctx context.Context, name string) ([]api.Tenant, error) {
	return ListAll[api.Tenant](ctx, c, "/v1/tenants"+query("name", name))
}

// GetTenant reads one tenant.
func (c *Client) GetTenant(ctx context.Context, id string) (*api.Tenant, error) {
	return getOne[api.Tenant](ctx, c, "/v1/tenants/"+esc(id))
}

// CreateTenant starts creating a tenant; the task's entity is the new tenant.
func (c *Client) CreateTenant(ctx context.Context, spec *api.TenantCreateSpec) (*api.Task, error) {
	return c.call(ctx, http.MethodPost, "/v1/tenants", spec)
}

// DeleteTenant starts deleting a tenant. A tenant with projects is refused
// with ContainerNotEmpty.
func (c *Client) DeleteTenant(ctx context.Context, id string) (*api.Task, error) {
	return c.call(ctx, http.MethodDelete, "/v1/tenants/"+esc(id), nil)
}

// ListTenantTasks lists the tasks of a tenant, all pages; state may be "".
func (c *Client) ListTenantTasks(ctx context.Context, id, state string) ([]api.Task, error) {
	return ListAll[api.Task](ctx, c, "/v1/tenants/"+esc(id)+"/tasks"+query("state", state))
}

// GetTenantQuota reads a tenant's quota with usage.
func (c *Client) GetTenantQuota(ctx context.Context, id string) (*api.Quota, error) {
	return c.GetQuota(ctx, QuotaPath("tenant", id))
}

// SetTenantQuota overwrites a tenant's whole quota with spec (PUT).
func (c *Client) SetTenantQuota(ctx context.Context, id string, spec *api.QuotaSpec) (*api.Task, error) {
	return c.ChangeQuota(ctx, QuotaPath("tenant", id), QuotaSet, spec)
}

// UpdateTenantQuota changes the keys spec names and keeps the others (PATCH).
func (c *Client) UpdateTenantQuota(ctx context.Context, id string, spec *api.QuotaSpec) (*api.Task, error) {
	return c.ChangeQuota(ctx, QuotaPath("tenant", id), QuotaUpdate, spec)
}

// ExcludeTenantQuota removes the keys spec names from a tenant's quota (DELETE).
func (c *Client) ExcludeTenantQuota(ctx context.Context, id string, spec *api.QuotaSpec) (*api.Task, error) {
	return c.ChangeQuota(ctx, QuotaPath("tenant", id), QuotaExclude, spec)
}
