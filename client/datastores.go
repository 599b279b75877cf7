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
	var d api.Datastore
	if err := c.get(ctx, datastoresPath+"/"+esc(id), &d); err != nil {
		return nil, err
	}
	return &d, nil
}
