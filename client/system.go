package client

import (
	"context"

	"github.com/photon-cloud/photon/api"
)

// Info reads GET /v1/info (no token needed): the controller's version.
func (c *Client) Info(ctx context.Context) (*api.Info, error) {
	var i api.Info
	if err := c.get(ctx, "/v1/info", &i); err != nil {
		return nil, err
	}
	return &i, nil
}

// SystemInfo reads GET /v1/system/info.
func (c *Client) SystemInfo(ctx context.Context) (*api.Info, error) {
	var i api.Info
	if err := c.get(ctx, "/v1/system/info", &i); err != nil {
		return nil, err
	}
	return &i, nil
}

// SystemStatus reads the health of the controller's components.
func (c *Client) SystemStatus(ctx context.Context) (*api.SystemStatus, error) {
	var s api.SystemStatus
	if err := c.get(ctx, "/v1/system/status", &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// SystemUsage reads object counts.
func (c *Client) SystemUsage(ctx context.Context) (*api.SystemUsage, error) {
	var u api.SystemUsage
	if err := c.get(ctx, "/v1/system/usage", &u); err != nil {
		return nil, err
	}
	return &u, nil
}

// AuthInfo reads GET /v1/system/auth (no token needed).
func (c *Client) AuthInfo(ctx context.Context) (*api.AuthInfo, error) {
	var a api.AuthInfo
	if err := c.get(ctx, "/v1/system/auth", &a); err != nil {
		return nil, err
	}
	return &a, nil
}
