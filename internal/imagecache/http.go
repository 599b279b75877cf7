package imagecache

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// SHA256Header carries an image's hex sha256 on the controller's content route.
const SHA256Header = "X-Photon-Sha256"

// HTTPFetcher fetches images from the controller's agent content route,
// GET {controllerURL}/v1/agent/hosts/{hostID}/images/{id}/content, with the
// host's bearer token. Bodies carry the X-Photon-Sha256 header's checksum
// (Checksummed). hc should have no overall Timeout: an image takes as long
// as it takes, and Get's context bounds it.
func HTTPFetcher(hc *http.Client, controllerURL, hostID, token string) Fetcher {
	base := strings.TrimRight(controllerURL, "/")
	return func(ctx context.Context, id string) (io.ReadCloser, error) {
		u := base + "/v1/agent/hosts/" + url.PathEscape(hostID) + "/images/" + url.PathEscape(id) + "/content"
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return nil, err
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := hc.Do(req)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode != http.StatusOK {
			defer resp.Body.Close()
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			return nil, fmt.Errorf("GET %s: %s: %s", u, resp.Status, strings.TrimSpace(string(b)))
		}
		return &httpBody{ReadCloser: resp.Body, sum: resp.Header.Get(SHA256Header)}, nil
	}
}

type httpBody struct {
	io.ReadCloser
	sum string
}

func (b *httpBody) SHA256() string { return b.sum }
