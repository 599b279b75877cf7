package client

import (
	"context"
	"net/http"

	"github.com/photon-cloud/photon/api"
)

// ListDisks lists a project's persistent disks, all pages; a non-empty name
// selects that disk.
func (c *Client) ListDisks(ctx context.Context, projectID, name string) ([]api.PersistentDisk, error) {
	return ListAll[api.PersistentDisk](ctx, c, "/v1/projects/"+esc(projectID)+"/disks"+query("name", name))
}

// GetDisk reads one persistent disk.
func (c *Client) GetDisk(ctx context.Context, id string) (*api.PersistentDisk, error) {
	return getOne[api.PersistentDisk](ctx, c, "/v1/disks/"+esc(id))
}

// CreateDisk starts creating a persistent disk in a project; spec.Kind ""
// means persistent-disk. The task's entity is the disk. A quota overrun is
// refused at once with QuotaError.
func (c *Client) CreateDisk(ctx context.Context, projectID string, spec *api.DiskCreateSpec) (*api.Task, error) {
	if spec != nil && spec.Kind == "" {
		s := *spec
		s.Kind = api.KindPersistentDisk
		spec = &s
	}
	return c.call(ctx, http.MethodPost, "/v1/projects/"+esc(projectID)+"/disks", spec)
}

// DeleteDisk starts deleting a persistent disk; an attached one is refused
// with PersistentDiskAttached.
func (c *Client) DeleteDisk(ctx context.Context, id string) (*api.Task, error) {
	return c.call(ctx, http.MethodDelete, "/v1/disks/"+esc(id), nil)
}

// ListDiskTasks lists the tasks of a disk, all pages; state may be "".
func (c *Client) ListDiskTasks(ctx context.Context, id, state string) ([]api.Task, error) {
	return ListAll[api.Task](ctx, c, "/v1/disks/"+esc(id)+"/tasks"+query("state", state))
}
