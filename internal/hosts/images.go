package hosts

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/photon-cloud/photon/internal/store"
)

// CachedImages is what a host last reported of its image cache, stored at
// hostimages/<id> for the fleet index (image locality).
type CachedImages struct {
	// Images are image ids, sorted, each once.
	Images []string `json:"images"`
}

func imagesKey(id string) string { return store.Key("hostimages", id) }

// MaxReportedImages bounds the images stored for one host; a report with
// more keeps the first (in id order).
const MaxReportedImages = 4096

// imagesRecheck is how long ReportImages trusts what this process last
// read or wrote for a host before it compares with etcd again (another
// controller may have written the host's report meanwhile).
const imagesRecheck = time.Minute

// imagesSeen is the set this process last read or wrote for a host.
type imagesSeen struct {
	images  []string
	checked time.Time
}

// ReportImages records the images a host reports in its cache (its status
// report's Images). Reports come every few seconds and the set seldom
// changes, so it is compared before anything is written: first with what
// this process last read or wrote for the host (no etcd traffic at all),
// then in the transaction with what is stored. etcd is written only when
// the set changed, so the fleet index's watch sees only real changes.
// Ids that cannot be image ids are dropped.
func (s *Service) ReportImages(ctx context.Context, hostID string, images []string) error {
	set := normalizeImages(images)
	s.mu.Lock()
	seen, ok := s.images[hostID]
	s.mu.Unlock()
	if ok && time.Since(seen.checked) < imagesRecheck && slices.Equal(seen.images, set) {
		return nil
	}
	wrote := false
	_, err := s.st.Update(ctx, func(tx *store.Txn) error {
		wrote = false
		var have CachedImages
		if _, err := tx.Get(ctx, imagesKey(hostID), &have); err != nil {
			return err
		}
		if slices.Equal(have.Images, set) {
			return nil
		}
		// Conditioned on the host: no record is left behind for a host
		// deleted while its report was on the way.
		if exists, err := tx.Exists(ctx, hostKey(hostID)); err != nil || !exists {
			return err
		}
		wrote = true
		return tx.Put(imagesKey(hostID), CachedImages{Images: set})
	})
	if err != nil {
		return err
	}
	if wrote {
		s.log.Debug("host images", "host", hostID, "images", len(set))
	}
	s.mu.Lock()
	s.images[hostID] = imagesSeen{images: set, checked: time.Now()}
	s.mu.Unlock()
	return nil
}

// normalizeImages sorts the ids, drops duplicates and bad ids, and bounds
// their number. It returns a non-nil slice.
func normalizeImages(images []string) []string {
	out := make([]string, 0, len(images))
	for _, id := range images {
		if validID(id) {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	out = slices.Compact(out)
	if len(out) > MaxReportedImages {
		out = out[:MaxReportedImages]
	}
	return slices.Clip(out)
}

// Images returns the images a host last reported cached (sorted; none if
// it has not reported any).
func (s *Service) Images(ctx context.Context, hostID string) ([]string, error) {
	var ci CachedImages
	if !validID(hostID) {
		return nil, notFound(hostID)
	}
	if _, err := s.st.Get(ctx, imagesKey(hostID), &ci); err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	if ci.Images == nil {
		ci.Images = []string{}
	}
	return ci.Images, nil
}
