package client

import (
	"context"
	"net/http"

	"github.com/photon-cloud/photon/api"
)

// FlavorFilter selects flavors in ListFlavors; empty fields match everything.
type FlavorFilter struct {
	// Name, e.g. "small".
	Name string
	// Kind is vm, ephemeral-disk or persistent-disk.
	Kind string
}

// ListFlavors lists flavors matching f, all pages.
func (c *Client) ListFlavors(ctx context.Context, f FlavorFilter) ([]api.Flavor, error) {
	return ListAll[api.Flavor](ctx, c, "/v1/flavors"+query("name", f.Name, "kind", f.Kind))
}

// GetFlavor reads one flavor.
func (c *Client) GetFlavor(ctx context.Context, id string) (*api.Flavor, error) {
	return getOne[api.Flavor](ctx, c, "/v1/flavors/"+esc(id))
}

// CreateFlavor starts creating a flavor.
func (c *Client) CreateFlavor(ctx context.Context, spec *api.FlavorCreateSpec) (*api.Task, error) {
	return c.call(ctx, http.MethodPost, "/v1/flavors", spec)
}

// DeleteFlavor starts deleting a flavor; one still in use goes PENDING_DELETE.
func (c *Client) DeleteFlavor(ctx context.Context, id string) (*api.Task, error) {
	return c.call(ctx, http.MethodDelete, "/v1/flavors/"+esc(id), nil)
}

// ListFlavorTasks lists the tasks of a flavor, all pages; state may be "".
func (c *Client) ListFlavorTasks(ctx context.Context, id, state string) ([]api.Task, error) {
	return ListAll[api.Task](ctx, c, "/v1/flavors/"+esc(id)+"/tasks"+query("state", state))
}
