package client

import (
	"context"
	"fmt"
	"io"
	"net/http"
)

// Stream sends one request whose body (nil for none) is streamed from body
// as contentType, and returns the response for the caller to read and
// close: for answers and bodies of any length (consoles, follows). Unlike
// Do it has no overall timeout; ctx bounds it. A non-2xx answer is
// returned as *api.Error (its body read and closed).
func (c *Client) Stream(ctx context.Context, method, path, contentType string, body io.Reader) (*http.Response, error) {
	u, err := c.resolve(path)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.ContentLength = -1
		req.Header.Set("Content-Type", contentType)
	}
	if c.userAgent != "" {
		req.Header.Set("User-Agent", c.userAgent)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	hc := *c.hc
	hc.Timeout = 0 // a stream takes as long as it takes; ctx bounds it
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		defer resp.Body.Close()
		data, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
		if err != nil {
			return nil, fmt.Errorf("%s %s: read response: %w", method, u.Path, err)
		}
		return nil, decodeError(resp.StatusCode, data)
	}
	return resp, nil
}
