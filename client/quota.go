package client

import (
	"context"
	"net/http"

	"github.com/photon-cloud/photon/api"
)

// Quota changes, for ChangeQuota: the HTTP method says what the spec does.
const (
	// QuotaSet overwrites the whole quota with the spec (PUT).
	QuotaSet = http.MethodPut
	// QuotaUpdate changes the keys the spec names and keeps the others (PATCH).
	QuotaUpdate = http.MethodPatch
	// QuotaExclude removes the keys the spec names from the quota (DELETE).
	QuotaExclude = http.MethodDelete
)

// QuotaPath is the quota path of a tenant (kind "tenant") or a project
// ("project").
func QuotaPath(kind, id string) string { return objectPath(kind, id) + "/quota" }

// GetQuota reads the quota at a QuotaPath, with usage.
func (c *Client) GetQuota(ctx context.Context, path string) (*api.Quota, error) {
	var q api.Quota
	if err := c.get(ctx, path, &q); err != nil {
		return nil, err
	}
	if q.QuotaItems == nil {
		q.QuotaItems = map[string]api.QuotaItem{}
	}
	return &q, nil
}

// ChangeQuota starts changing the quota at a QuotaPath with spec: change is
// QuotaSet, QuotaUpdate or QuotaExclude.
func (c *Client) ChangeQuota(ctx context.Context, path, change string, spec *api.QuotaSpec) (*api.Task, error) {
	return c.call(ctx, change, path, spec)
}
