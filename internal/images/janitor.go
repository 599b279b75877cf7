package images

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/internal/store"
)

// Loop removes files no image needs until ctx ends: those of deleted and
// failed images (also when the last ReleaseImage of a PENDING_DELETE image
// deleted it in someone else's transaction) and partial uploads nobody
// receives any more. It sweeps the directory at start and whenever its
// watch of the image records restarts, and follows the records in between.
func (s *Service) Loop(ctx context.Context) {
	for ctx.Err() == nil {
		wctx, cancel := context.WithCancel(ctx)
		events := s.st.Watch(wctx, imagesPrefix(), 0)
		s.sweep(ctx)
		for evs := range events {
			for _, ev := range evs {
				id := ev.Key[strings.LastIndexByte(ev.Key, '/')+1:]
				if ev.Delete {
					s.removeUnlessInflight(id)
					continue
				}
				var img api.Image
				if json.Unmarshal(ev.Value, &img) == nil && img.State == api.ImageError {
					s.removeUnlessInflight(id)
				}
			}
		}
		cancel()
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

func (s *Service) removeUnlessInflight(id string) {
	s.mu.Lock()
	_, busy := s.inflight[id]
	s.mu.Unlock()
	if !busy && validID(id) {
		s.removeFiles(id)
	}
}

// sweep removes the files in the image directory that no image needs.
func (s *Service) sweep(ctx context.Context) {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		s.Log.Warn("image janitor", "error", err)
		return
	}
	for _, e := range entries {
		name := e.Name()
		// DIR/<id> is an image's file; DIR/<id>.part and DIR/<id>.<what>.part
		// are its upload's and conversion's scratch files.
		id, suffix, _ := strings.Cut(name, ".")
		partial := suffix != ""
		if !validID(id) || e.IsDir() {
			continue
		}
		s.mu.Lock()
		_, busy := s.inflight[id]
		s.mu.Unlock()
		if busy {
			continue
		}
		var img api.Image
		_, err := s.st.Get(ctx, imageKey(id), &img)
		switch {
		case errors.Is(err, store.ErrNotFound):
		case err != nil:
			if ctx.Err() == nil {
				s.Log.Warn("image janitor", "image", id, "error", err)
			}
			continue
		case img.State == api.ImageError:
		case partial && img.State == api.ImageCreating:
			var v string
			if _, err := s.st.Get(ctx, uploadKey(id), &v); !errors.Is(err, store.ErrNotFound) {
				continue // received by a controller (or unknown): keep
			}
		case partial && img.State != api.ImageCreating:
			// A scratch file of an upload that ended.
		default:
			continue
		}
		s.Log.Info("removing unused image file", "file", name)
		if err := os.Remove(filepath.Join(s.dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			s.Log.Warn("image janitor", "file", name, "error", err)
		}
	}
}
