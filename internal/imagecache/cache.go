// Package imagecache is a host agent's cache of images, one directory per
// datastore: DIR/<datastore>/<imageID>. Get pulls a missing image through a
// Fetcher (normally the controller's agent content route), streaming it to
// a temporary file while hashing it, and puts it in place only if its sha256
// matches; a mismatch or a broken transfer leaves nothing behind. Its
// directories are 0700 and its files 0600.
//
// Concurrent Gets of one (datastore, image) share one transfer
// (single-flight). The transfer runs on its own context, canceled when the
// last caller waiting for it gives up, so one impatient caller does not
// fail the others.
package imagecache

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// Fetcher opens an image's bytes for reading.
type Fetcher func(ctx context.Context, imageID string) (io.ReadCloser, error)

// Checksummed is implemented by fetched bodies that know the sha256 they
// should have (e.g. from the controller's X-Photon-Sha256 header); Get uses
// it when its caller passes no sha256.
type Checksummed interface {
	SHA256() string
}

// ErrChecksum: the fetched bytes do not have the expected sha256.
var ErrChecksum = errors.New("image checksum mismatch")

// Cache is a host's image cache. It is safe for concurrent use.
type Cache struct {
	dir   string
	fetch Fetcher

	mu      sync.Mutex
	flights map[string]*flight
	// listed remembers each datastore's last listing (ListIn), read again
	// once the cache itself changed the datastore (gen) or once older
	// than listMaxAge: a host reports its images with every change of
	// its VMs, and reading the directory each time cost the agent about
	// 5% of its CPU (bench/fleet).
	listed map[string]listing
	gen    map[string]uint64
}

// listing is one datastore's listing as of its cache generation.
type listing struct {
	ids []string
	gen uint64
	at  time.Time
}

// listMaxAge bounds how long a change made behind the cache's back (a file
// removed by hand) can go unlisted; the cache's own changes show at once.
// (At 1 s, 5,000 simulated hosts read their directories 5,000 times a
// second: 3% of bench/fleet's CPU.)
const listMaxAge = 3 * time.Second

// flight is one transfer and the callers waiting for it.
type flight struct {
	done    chan struct{}
	path    string
	err     error
	waiters int
	cancel  context.CancelFunc
}

// New returns a cache in dir (made if missing), fetching through fetch.
// Temporary files a previous run left behind are removed.
func New(dir string, fetch Fetcher) (*Cache, error) {
	// Tenants' images: the agent's user's only, also when an older
	// agent made the directories looser.
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("image cache: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("image cache: %w", err)
	}
	tmps, _ := filepath.Glob(filepath.Join(dir, "*", ".*.tmp-*"))
	for _, p := range tmps {
		_ = os.Remove(p)
	}
	return &Cache{dir: dir, fetch: fetch, flights: map[string]*flight{}, listed: map[string]listing{}, gen: map[string]uint64{}}, nil
}

// validName rejects datastore names and image ids that could leave the cache directory.
func validName(s string) bool {
	return s != "" && len(s) <= 128 && s != "." && s != ".." && !strings.HasPrefix(s, ".") &&
		!strings.ContainsAny(s, "/\\\x00")
}

func (c *Cache) path(datastore, id string) string { return filepath.Join(c.dir, datastore, id) }

// Has reports whether the image is cached on the datastore.
func (c *Cache) Has(datastore, id string) bool {
	if !validName(datastore) || !validName(id) {
		return false
	}
	st, err := os.Stat(c.path(datastore, id))
	return err == nil && st.Mode().IsRegular()
}

// Get returns the path of the image in the datastore's cache, fetching it
// first if missing. sum is the expected hex sha256; "" takes it from the
// fetched body (see Checksummed), and an image with no known sha256 is
// refused. N concurrent Gets of the same image on the same datastore cause
// one fetch. A caller whose ctx ends stops waiting; the fetch goes on while
// any other caller waits for it.
func (c *Cache) Get(ctx context.Context, datastore, id, sum string) (string, error) {
	if !validName(datastore) {
		return "", fmt.Errorf("image cache: bad datastore name %q", datastore)
	}
	if !validName(id) {
		return "", fmt.Errorf("image cache: bad image id %q", id)
	}
	path := c.path(datastore, id)
	if c.Has(datastore, id) {
		return path, nil
	}
	key := datastore + "/" + id
	c.mu.Lock()
	f := c.flights[key]
	if f == nil {
		// A flight that just ended put the file in place before leaving the map.
		if c.Has(datastore, id) {
			c.mu.Unlock()
			return path, nil
		}
		fctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		f = &flight{done: make(chan struct{}), cancel: cancel}
		c.flights[key] = f
		go c.run(fctx, f, key, datastore, id, sum)
	}
	f.waiters++
	c.mu.Unlock()

	select {
	case <-f.done:
		return f.path, f.err
	case <-ctx.Done():
		c.mu.Lock()
		f.waiters--
		if f.waiters == 0 {
			// Nobody waits any more: stop the transfer; a later Get starts afresh.
			f.cancel()
			if c.flights[key] == f {
				delete(c.flights, key)
			}
		}
		c.mu.Unlock()
		return "", ctx.Err()
	}
}

// run carries out one flight.
func (c *Cache) run(ctx context.Context, f *flight, key, datastore, id, sum string) {
	path, err := c.fetchInto(ctx, datastore, id, sum)
	c.mu.Lock()
	f.path, f.err = path, err
	if c.flights[key] == f {
		delete(c.flights, key)
	}
	c.mu.Unlock()
	close(f.done)
	f.cancel()
}

// fetchInto streams the image to a temporary file beside its place,
// hashing it, and renames it into place if the sha256 matches.
func (c *Cache) fetchInto(ctx context.Context, datastore, id, sum string) (_ string, err error) {
	dir := filepath.Join(c.dir, datastore)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("image cache: %w", err)
	}
	_ = os.Chmod(dir, 0o700)
	body, err := c.fetch(ctx, id)
	if err != nil {
		return "", fmt.Errorf("fetch image %s: %w", id, err)
	}
	defer body.Close()
	if sum == "" {
		if cs, ok := body.(Checksummed); ok {
			sum = cs.SHA256()
		}
	}
	if sum == "" {
		return "", fmt.Errorf("image %s: no sha256 to verify it against", id)
	}
	tmp, err := os.CreateTemp(dir, "."+id+".tmp-*")
	if err != nil {
		return "", fmt.Errorf("image cache: %w", err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	h := sha256.New()
	buf := make([]byte, 1<<20)
	if _, err := io.CopyBuffer(io.MultiWriter(tmp, h), ctxReader{ctx, body}, buf); err != nil {
		return "", fmt.Errorf("fetch image %s: %w", id, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); !strings.EqualFold(got, sum) {
		return "", fmt.Errorf("image %s: %w: got sha256 %s, want %s", id, ErrChecksum, got, sum)
	}
	if err := tmp.Sync(); err != nil {
		return "", fmt.Errorf("image cache: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return "", fmt.Errorf("image cache: %w", err)
	}
	path := c.path(datastore, id)
	err = os.Rename(tmp.Name(), path)
	c.changed(datastore)
	if err != nil {
		return "", fmt.Errorf("image cache: %w", err)
	}
	if d, derr := os.Open(dir); derr == nil {
		_ = d.Sync()
		d.Close()
	}
	return path, nil
}

// ctxReader stops reading once ctx ends, for fetchers whose bodies do not.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (r ctxReader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.r.Read(p)
}

// List returns the ids of the images cached on any datastore, sorted, for
// the host's status report.
func (c *Cache) List() []string {
	var ids []string
	dss, _ := os.ReadDir(c.dir)
	for _, ds := range dss {
		if ds.IsDir() {
			ids = append(ids, c.ListIn(ds.Name())...)
		}
	}
	slices.Sort(ids)
	return slices.Compact(ids)
}

// ListIn returns the ids of the images cached on one datastore, sorted:
// only complete, verified ones, since an image enters its place (by rename)
// only after its sha256 matched; a transfer in flight writes a dot-named
// temporary file, which is not listed.
func (c *Cache) ListIn(datastore string) []string {
	ids := []string{}
	if !validName(datastore) {
		return ids
	}
	c.mu.Lock()
	l, ok := c.listed[datastore]
	gen := c.gen[datastore]
	c.mu.Unlock()
	if ok && l.gen == gen && time.Since(l.at) < listMaxAge {
		return append(ids, l.ids...)
	}
	at := time.Now()
	es, _ := os.ReadDir(filepath.Join(c.dir, datastore))
	for _, e := range es {
		if e.Type().IsRegular() && validName(e.Name()) {
			ids = append(ids, e.Name())
		}
	}
	slices.Sort(ids)
	c.mu.Lock()
	if c.gen[datastore] == gen { // not changed while listing
		c.listed[datastore] = listing{ids: slices.Clip(ids), gen: gen, at: at}
	}
	c.mu.Unlock()
	return slices.Clone(ids)
}

// changed marks a datastore's listing out of date.
func (c *Cache) changed(datastore string) {
	c.mu.Lock()
	c.gen[datastore]++
	c.mu.Unlock()
}

// Remove drops an image from a datastore's cache; a missing one is not an error.
func (c *Cache) Remove(datastore, id string) error {
	if !validName(datastore) || !validName(id) {
		return fmt.Errorf("image cache: bad name %q/%q", datastore, id)
	}
	err := os.Remove(c.path(datastore, id))
	c.changed(datastore)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}
