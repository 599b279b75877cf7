package client

import (
	"context"

	"github.com/photon-cloud/photon/api"
)

// Info reads GET /v1/info (no token needed): the controller's version.
func (c *Client) Info(ctx context.Context) (*api.Info, error) {
	return getOne[api.Info](ctx, c, "/v1/info")
}

// SystemInfo reads GET /v1/system/info.
func (c *Client) SystemInfo(ctx context.Context) (*api.Info, error) {
	return getOne[api.Info](ctx, c, "/v1/system/info")
}

// SystemStatus reads the health of the controller's components.
func (c *Client) SystemStatus(ctx context.Context) (*api.SystemStatus, error) {
	return getOne[api.SystemStatus](ctx, c, "/v1/system/status")
}

// SystemUsage reads object counts.
func (c *Client) SystemUsage(ctx context.Context) (*api.SystemUsage, error) {
	return getOne[api.SystemUsage](ctx, c, "/v1/system/usage")
}

// AuthInfo reads GET /v1/system/auth (no token needed).
func (c *Client) AuthInfo(ctx context.Context) (*api.AuthInfo, error) {
	return getOne[api.AuthInfo](ctx, c, "/v1/system/auth")
}
