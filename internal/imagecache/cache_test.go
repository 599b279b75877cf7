package imagecache

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func sum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// waitFor polls cond until it holds or 10 s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func files(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			out = append(out, p)
		}
		return nil
	})
	return out
}

// TestSingleFlight: 20 concurrent Gets of one uncached image cause exactly
// one transfer, and all get the same verified file.
func TestSingleFlight(t *testing.T) {
	data := bytes.Repeat([]byte("photon image "), 200_000) // 2.6 MB
	var fetches atomic.Int32
	release := make(chan struct{})
	c, err := New(t.TempDir(), func(ctx context.Context, id string) (io.ReadCloser, error) {
		fetches.Add(1)
		<-release // hold the transfer until every caller has joined it
		return io.NopCloser(bytes.NewReader(data)), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	const n = 20
	var wg sync.WaitGroup
	paths := make([]string, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			paths[i], errs[i] = c.Get(context.Background(), "local", "img-1", sum(data))
		}()
	}
	waitFor(t, "20 waiters on one flight", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		f := c.flights["local/img-1"]
		return f != nil && f.waiters == n
	})
	close(release)
	wg.Wait()
	if got := fetches.Load(); got != 1 {
		t.Errorf("%d fetches for %d concurrent Gets, want 1", got, n)
	}
	for i := range n {
		if errs[i] != nil || paths[i] != paths[0] {
			t.Fatalf("Get %d = %q, %v; Get 0 = %q", i, paths[i], errs[i], paths[0])
		}
	}
	b, err := os.ReadFile(paths[0])
	if err != nil || !bytes.Equal(b, data) {
		t.Fatalf("cached file: %d bytes, %v; want %d bytes", len(b), err, len(data))
	}
	if !c.Has("local", "img-1") || c.Has("other", "img-1") {
		t.Error("Has: want cached on local only")
	}
	// Cached now: no more transfers.
	if _, err := c.Get(context.Background(), "local", "img-1", sum(data)); err != nil || fetches.Load() != 1 {
		t.Errorf("Get of a cached image: %v, %d fetches", err, fetches.Load())
	}
	// Another datastore is another cache.
	if _, err := c.Get(context.Background(), "shared", "img-1", sum(data)); err != nil || fetches.Load() != 2 {
		t.Errorf("Get on a second datastore: %v, %d fetches, want 2", err, fetches.Load())
	}
	if got := c.List(); len(got) != 1 || got[0] != "img-1" {
		t.Errorf("List = %v, want [img-1]", got)
	}
	if got := c.ListIn("shared"); len(got) != 1 {
		t.Errorf("ListIn(shared) = %v", got)
	}
	if err := c.Remove("local", "img-1"); err != nil || c.Has("local", "img-1") {
		t.Errorf("Remove: %v, still there: %v", err, c.Has("local", "img-1"))
	}
	if err := c.Remove("local", "img-1"); err != nil {
		t.Errorf("Remove of a missing image: %v", err)
	}
}

// TestChecksumMismatch: bytes that do not match are refused and nothing is cached.
func TestChecksumMismatch(t *testing.T) {
	dir := t.TempDir()
	c, err := New(dir, func(ctx context.Context, id string) (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader([]byte("tampered"))), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Get(context.Background(), "local", "img-1", sum([]byte("original")))
	if !errors.Is(err, ErrChecksum) {
		t.Fatalf("Get = %v, want ErrChecksum", err)
	}
	if c.Has("local", "img-1") || len(files(t, dir)) != 0 {
		t.Fatalf("files left after a mismatch: %v", files(t, dir))
	}
	// No checksum at all is refused too.
	if _, err := c.Get(context.Background(), "local", "img-1", ""); err == nil {
		t.Fatal("Get without a sha256 succeeded")
	}
}

// blockingReader yields some bytes, then blocks until ctx ends.
type blockingReader struct {
	ctx  context.Context
	sent bool
}

func (r *blockingReader) Read(p []byte) (int, error) {
	if !r.sent {
		r.sent = true
		return copy(p, bytes.Repeat([]byte("x"), 4096)), nil
	}
	<-r.ctx.Done()
	return 0, r.ctx.Err()
}

// TestCanceledFetch: a caller giving up cancels a transfer nobody else
// waits for, and nothing is left behind; a later Get starts afresh.
func TestCanceledFetch(t *testing.T) {
	dir := t.TempDir()
	data := []byte("complete image")
	var fetches atomic.Int32
	started := make(chan struct{}, 2)
	c, err := New(dir, func(ctx context.Context, id string) (io.ReadCloser, error) {
		if fetches.Add(1) == 1 {
			started <- struct{}{}
			return io.NopCloser(&blockingReader{ctx: ctx}), nil
		}
		return io.NopCloser(bytes.NewReader(data)), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := c.Get(ctx, "local", "img-1", sum(data))
		errc <- err
	}()
	<-started
	waitFor(t, "a partial temporary file", func() bool { return len(files(t, dir)) == 1 })
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("Get = %v, want context.Canceled", err)
	}
	waitFor(t, "the canceled transfer to clean up", func() bool {
		c.mu.Lock()
		n := len(c.flights)
		c.mu.Unlock()
		return n == 0 && len(files(t, dir)) == 0
	})
	if c.Has("local", "img-1") {
		t.Fatal("canceled image is cached")
	}
	p, err := c.Get(context.Background(), "local", "img-1", sum(data))
	if err != nil || fetches.Load() != 2 {
		t.Fatalf("Get after cancel = %q, %v (%d fetches)", p, err, fetches.Load())
	}
}

// TestOneCallerGivesUp: the transfer goes on for the callers still waiting.
func TestOneCallerGivesUp(t *testing.T) {
	data := []byte("shared transfer")
	release := make(chan struct{})
	var fetches atomic.Int32
	c, err := New(t.TempDir(), func(ctx context.Context, id string) (io.ReadCloser, error) {
		fetches.Add(1)
		select {
		case <-release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		return io.NopCloser(bytes.NewReader(data)), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	impatient, cancel := context.WithCancel(context.Background())
	errs := make(chan error, 2)
	go func() { _, err := c.Get(impatient, "local", "img-1", sum(data)); errs <- err }()
	go func() { _, err := c.Get(context.Background(), "local", "img-1", sum(data)); errs <- err }()
	waitFor(t, "two waiters", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		f := c.flights["local/img-1"]
		return f != nil && f.waiters == 2
	})
	cancel()
	if err := <-errs; !errors.Is(err, context.Canceled) {
		t.Fatalf("impatient Get = %v", err)
	}
	close(release)
	if err := <-errs; err != nil {
		t.Fatalf("patient Get = %v", err)
	}
	if fetches.Load() != 1 || !c.Has("local", "img-1") {
		t.Fatalf("%d fetches, cached %v", fetches.Load(), c.Has("local", "img-1"))
	}
}

func TestBadNames(t *testing.T) {
	c, err := New(t.TempDir(), func(context.Context, string) (io.ReadCloser, error) { return nil, errors.New("no") })
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range [][2]string{{"..", "x"}, {"local", "../x"}, {"", "x"}, {"local", ""}, {"local", ".hidden"}} {
		if _, err := c.Get(context.Background(), tc[0], tc[1], "00"); err == nil {
			t.Errorf("Get(%q, %q) accepted", tc[0], tc[1])
		}
	}
}

// TestListsOnlyVerified: ListIn and List name only complete, verified
// images: not one still in transfer (its temporary file is there), nor one
// whose checksum failed.
func TestListsOnlyVerified(t *testing.T) {
	good, bad := []byte("good image"), []byte("bad image")
	release := make(chan struct{})
	c, err := New(t.TempDir(), func(ctx context.Context, id string) (io.ReadCloser, error) {
		if id == "img-slow" {
			return io.NopCloser(io.MultiReader(bytes.NewReader(good[:4]), readerFunc(func(p []byte) (int, error) {
				<-release
				return copy(p, good[4:]), io.EOF
			}))), nil
		}
		if id == "img-bad" {
			return io.NopCloser(bytes.NewReader(bad)), nil
		}
		return io.NopCloser(bytes.NewReader(good)), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(context.Background(), "local", "img-ok", sum(good)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(context.Background(), "local", "img-bad", sum(good)); !errors.Is(err, ErrChecksum) {
		t.Fatalf("Get of bad bytes: %v", err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := c.Get(context.Background(), "local", "img-slow", sum(good))
		done <- err
	}()
	waitFor(t, "a temporary file of the transfer", func() bool {
		m, _ := filepath.Glob(filepath.Join(c.dir, "local", ".img-slow.tmp-*"))
		return len(m) == 1
	})
	if got := c.ListIn("local"); len(got) != 1 || got[0] != "img-ok" {
		t.Errorf("ListIn during a transfer = %q, want [img-ok]", got)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := c.List(); len(got) != 2 || got[0] != "img-ok" || got[1] != "img-slow" {
		t.Errorf("List = %q, want [img-ok img-slow]", got)
	}
	if got := c.ListIn("other"); got == nil || len(got) != 0 {
		t.Errorf("ListIn of an empty datastore = %#v, want empty", got)
	}
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

// TestListingRemembered: ListIn remembers a datastore's listing (no
// directory read per status report), shows the cache's own changes (a
// fetched image, a removed one) at once, and a change made behind its back
// within listMaxAge.
func TestListingRemembered(t *testing.T) {
	data := []byte("image bytes")
	dir := t.TempDir()
	c, err := New(dir, func(ctx context.Context, id string) (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	list := func() []string { return c.ListIn("local") }
	if got := list(); len(got) != 0 {
		t.Fatalf("ListIn of an empty cache = %q", got)
	}
	for _, id := range []string{"img-a", "img-b"} {
		if _, err := c.Get(context.Background(), "local", id, sum(data)); err != nil {
			t.Fatal(err)
		}
	}
	if got := list(); len(got) != 2 || got[0] != "img-a" || got[1] != "img-b" {
		t.Fatalf("ListIn after two fetches = %q, want [img-a img-b]", got)
	}
	list()[0] = "scribbled" // a caller's copy: the remembered listing is not touched
	if got := list(); got[0] != "img-a" {
		t.Fatalf("ListIn after a caller wrote its result = %q", got)
	}
	if err := c.Remove("local", "img-a"); err != nil {
		t.Fatal(err)
	}
	if got := list(); len(got) != 1 || got[0] != "img-b" {
		t.Fatalf("ListIn right after Remove = %q, want [img-b]", got)
	}
	// Behind the cache's back: remembered for a while, then read again.
	if err := os.Remove(filepath.Join(dir, "local", "img-b")); err != nil {
		t.Fatal(err)
	}
	if got := list(); len(got) != 1 {
		t.Fatalf("ListIn right after a removal by hand = %q: the listing was not remembered", got)
	}
	waitFor(t, "the removal by hand to show", func() bool { return len(list()) == 0 })
}
