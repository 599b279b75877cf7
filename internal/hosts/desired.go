package hosts

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/internal/store"
)

// hub feeds every agent's long poll from etcd watches on desired/ and
// consolereq/ (console sessions, console.go): it remembers, per host, the
// revision of the last change, and wakes the host's waiters when it moves.
type hub struct {
	st  *store.Store
	log *slog.Logger

	mu      sync.Mutex
	start   int64            // revision the watch started from
	last    map[string]int64 // host -> revision of its last change
	waiters map[string][]chan struct{}
	all     int64 // revision of the last change that concerns every host
}

func newHub(st *store.Store, log *slog.Logger) *hub {
	return &hub{st: st, log: log, last: map[string]int64{}, waiters: map[string][]chan struct{}{}}
}

func (h *hub) run(ctx context.Context) {
	for ctx.Err() == nil {
		rev, err := h.st.Rev(ctx)
		if err != nil {
			time.Sleep(time.Second)
			continue
		}
		h.mu.Lock()
		h.start = rev
		h.mu.Unlock()
		// Any change before the watch started counts as new for everyone.
		h.bumpAll(rev)
		wctx, cancel := context.WithCancel(ctx)
		merged := make(chan []store.Event)
		var ended sync.Once
		done := make(chan struct{})
		for _, p := range hubPrefixes {
			go func() {
				for evs := range h.st.Watch(wctx, store.Prefix(p), rev) {
					select {
					case merged <- evs:
					case <-wctx.Done():
						return
					}
				}
				ended.Do(func() { close(done) })
			}()
		}
		for open := true; open; {
			select {
			case evs := <-merged:
				for _, ev := range evs {
					rest := ev.Key
					for _, p := range hubPrefixes {
						rest = strings.TrimPrefix(rest, store.Prefix(p))
					}
					host, _, _ := strings.Cut(rest, "/")
					h.bump(host, ev.Rev)
				}
			case <-done:
				open = false
			}
		}
		cancel() // one watch ended: start them all again
	}
}

// hubPrefixes are the per-host records whose changes wake the host's long
// poll: desired/<host>/..., consolereq/<host>/..., diskgc/<host>/....
var hubPrefixes = []string{"desired", "consolereq", "diskgc"}

func (h *hub) bump(host string, rev int64) {
	h.mu.Lock()
	if rev > h.last[host] {
		h.last[host] = rev
	}
	ws := h.waiters[host]
	delete(h.waiters, host)
	h.mu.Unlock()
	for _, w := range ws {
		close(w)
	}
}

// bumpAll wakes every waiter (e.g. the image list changed).
func (h *hub) bumpAll(rev int64) {
	h.mu.Lock()
	if rev > h.all {
		h.all = rev
	}
	ws := h.waiters
	h.waiters = map[string][]chan struct{}{}
	h.mu.Unlock()
	for _, l := range ws {
		for _, w := range l {
			close(w)
		}
	}
}

// DesiredVersion is a number that grows whenever the host's desired state
// may have changed, as this controller's watch has seen it (0 while the
// watch is not up).
func (s *Service) DesiredVersion(host string) int64 {
	h := s.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.start == 0 {
		return 0
	}
	return max(h.start, h.last[host], h.all)
}

// changedSince reports whether host's desired state may have changed after
// rev, or else a channel closed when it does.
func (h *hub) changedSince(host string, rev int64) (bool, <-chan struct{}) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.start == 0 || rev < h.start || h.last[host] > rev || h.all > rev {
		return true, nil
	}
	w := make(chan struct{})
	h.waiters[host] = append(h.waiters[host], w)
	return false, w
}

// Desired answers an agent's long poll: the host's desired state once it
// has changed after revision after (0: at once), or as it stands after wait.
func (s *Service) Desired(ctx context.Context, hostID string, after int64, wait time.Duration, images func(context.Context) ([]string, error)) (*api.HostDesiredState, error) {
	if after > 0 {
		if changed, ch := s.hub.changedSince(hostID, after); !changed {
			t := time.NewTimer(wait)
			select {
			case <-ch:
			case <-t.C:
			case <-ctx.Done():
			}
			t.Stop()
		}
	}
	vms, rev, err := store.ListRev[api.VMDesired](ctx, s.st, DesiredPrefix(hostID))
	if err != nil {
		return nil, err
	}
	// Sessions are read after the VMs, so rev (the earlier read) is safe
	// to wait after: a change between the reads wakes the next poll.
	consoles, _, err := store.ListRev[api.ConsoleSession](ctx, s.st, consolePrefix(hostID))
	if err != nil {
		return nil, err
	}
	gone, _, err := store.ListRev[api.DiskDesired](ctx, s.st, DiskGCPrefix(hostID))
	if err != nil {
		return nil, err
	}
	ds := &api.HostDesiredState{HostID: hostID, Revision: rev, VMs: vms, Images: []string{}, Consoles: consoles, DeleteDisks: gone}
	if images != nil {
		if ds.Images, err = images(ctx); err != nil {
			return nil, err
		}
	}
	return ds, nil
}

// NotifyAll wakes every agent's long poll (e.g. a new EAGER image).
func (s *Service) NotifyAll(ctx context.Context) {
	if rev, err := s.st.Rev(ctx); err == nil {
		s.hub.bumpAll(rev)
	}
}

// Assigned reports whether a VM the host should run boots from image
// (its credential may then fetch the image).
func (s *Service) Assigned(ctx context.Context, hostID, imageID string) (bool, error) {
	vms, _, err := store.ListRev[api.VMDesired](ctx, s.st, DesiredPrefix(hostID))
	if err != nil {
		return false, err
	}
	for _, v := range vms {
		for _, d := range v.Disks {
			if d.ImageID == imageID {
				return true, nil
			}
		}
	}
	return false, nil
}

// DiskGCPrefix holds the persistent disks a host should delete from its
// datastores: deleted disks whose files it may hold.
func DiskGCPrefix(host string) string { return store.Prefix("diskgc", host) }

// DiskGCKey is one such disk.
func DiskGCKey(host, disk string) string { return store.Key("diskgc", host, disk) }

// ForgetDeletedDisks drops the records of disks a host reports deleted.
func (s *Service) ForgetDeletedDisks(ctx context.Context, hostID string, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	_, err := s.st.Update(ctx, func(tx *store.Txn) error {
		for _, id := range ids {
			tx.Delete(DiskGCKey(hostID, id))
		}
		return nil
	})
	return err
}

// DiskHost names the host that holds a datastore's files for disk cleanup:
// the host of a local datastore, or the first host seeing a shared one.
func (s *Service) DiskHost(ctx context.Context, tx *store.Txn, datastoreID string) (string, error) {
	var ds api.Datastore
	ok, err := tx.Get(ctx, dsKey(datastoreID), &ds)
	if err != nil || !ok || len(ds.HostIDs) == 0 {
		return "", err
	}
	return ds.HostIDs[0], nil
}
