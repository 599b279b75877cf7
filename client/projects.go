package client

import (
	"context"
	"net/http"

	"github.com/photon-cloud/photon/api"
)

// ListProjects lists a tenant's projects, all pages; a non-empty name selects that project.
func (c *Client) ListProjects(ctx context.Context, tenantID, name string) ([]api.Project, error) {
	return ListAll[api.Project](ctx, c, "/v1/tenants/"+esc(tenantID)+"/projects"+query("name", name))
}

// GetProject reads one project.
func (c *Client) GetProject(ctx context.Context, id string) (*api.Project, error) {
	return getOne[api.Project](ctx, c, "/v1/projects/"+esc(id))
}

// CreateProject starts creating a project under a tenant; its quota is carved
// out of the tenant's. An overrun is refused at once with QuotaError.
func (c *Client) CreateProject(ctx context.Context, tenantID string, spec *api.ProjectCreateSpec) (*api.Task, error) {
	return c.call(ctx, http.MethodPost, "/v1/tenants/"+esc(tenantID)+"/projects", spec)
}

// DeleteProject starts deleting a project; its quota returns to the tenant.
func (c *Client) DeleteProject(ctx context.Context, id string) (*api.Task, error) {
	return c.call(ctx, http.MethodDelete, "/v1/projects/"+esc(id), nil)
}

// ListProjectTasks lists the tasks of a project, all pages; state may be "".
func (c *Client) ListProjectTasks(ctx context.Context, id, state string) ([]api.Task, error) {
	return ListAll[api.Task](ctx, c, "/v1/projects/"+esc(id)+"/tasks"+query("state", state))
}

// GetProjectQuota reads a project's quota with usage.
func (c *Client) GetProjectQuota(ctx context.Context, id string) (*api.Quota, error) {
	return c.GetQuota(ctx, QuotaPath("project", id))
}

// SetProjectQuota overwrites a project's whole quota with spec (PUT).
func (c *Client) SetProjectQuota(ctx context.Context, id string, spec *api.QuotaSpec) (*api.Task, error) {
	return c.ChangeQuota(ctx, QuotaPath("project", id), QuotaSet, spec)
}

// UpdateProjectQuota changes the keys spec names and keeps the others (PATCH).
func (c *Client) UpdateProjectQuota(ctx context.Context, id string, spec *api.QuotaSpec) (*api.Task, error) {
	return c.ChangeQuota(ctx, QuotaPath("project", id), QuotaUpdate, spec)
}

// ExcludeProjectQuota removes the keys spec names from a project's quota (DELETE).
func (c *Client) ExcludeProjectQuota(ctx context.Context, id string, spec *api.QuotaSpec) (*api.Task, error) {
	return c.ChangeQuota(ctx, QuotaPath("project", id), QuotaExclude, spec)
}
