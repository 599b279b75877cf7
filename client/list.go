package client

import (
	"context"
	"fmt"

	"github.com/photon-cloud/photon/api"
)

// maxPages bounds how many pages one list call follows, against a server
// that links pages in a circle.
const maxPages = 100000

// ListAll fetches the collection at path and every page after it by
// following nextPageLink until it is empty, and returns all items.
// Typed list methods use it; it serves collections the SDK does not wrap yet.
func ListAll[T any](ctx context.Context, c *Client, path string) ([]T, error) {
	var all []T
	seen := map[string]bool{}
	for page := 0; path != ""; page++ {
		if seen[path] || page >= maxPages {
			return nil, fmt.Errorf("list: page link %q repeats", path)
		}
		seen[path] = true
		var l api.List[T]
		if err := c.get(ctx, path, &l); err != nil {
			return nil, err
		}
		all = append(all, l.Items...)
		path = l.NextPageLink
	}
	if all == nil {
		all = []T{}
	}
	return all, nil
}
