package client

import (
	"context"

	"github.com/photon-cloud/photon/api"
)

const datastoresPath = "/v1/infrastructure/datastores"

// ListDatastores lists every datastore the hosts report, all pages.
func (c *Client) ListDatastores(ctx context.Context) ([]api.Datastore, error) {
	return ListAll[api.Datastore](ctx, c, datastoresPath)
}

// GetDatastore reads one datastore.
func (c *Client) GetDatastore(ctx context.Context, id string) (*api.Datastore, error) {
	return getOne[api.Datastore](ctx, c, datastoresPath+"/"+esc(id))
}
