package images

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/internal/store"
	"github.com/photon-cloud/photon/internal/tasks"
)

// Operations and steps.
const (
	OpCreateImage   = "CREATE_IMAGE"
	OpDeleteImage   = "DELETE_IMAGE"
	StepUploadImage = "UPLOAD_IMAGE"
)

// Error codes.
const (
	CodeImageNotFound     = "ImageNotFound"
	CodeInvalidImageState = "InvalidImageState"
	// CodeUploadFailed ends the task of an upload that broke off (client
	// gone, controller died).
	CodeUploadFailed = "ImageUploadFailed"
)

// Scope kinds.
const (
	ScopeInfrastructure = "infrastructure"
	ScopeProject        = "project"
)

// DefaultMaxUploadSize bounds an image's size unless Service.MaxUploadSize says otherwise.
const DefaultMaxUploadSize int64 = 64 << 30

// MaxPageSize bounds list pages (and is their default).
const MaxPageSize = 100

func imageKey(id string) string        { return store.Key("images", id) }
func nameKey(name, id string) string   { return store.Key("image-names", name, id) }
func projectKey(pid, id string) string { return store.Key("project-images", pid, id) }
func uploadKey(id string) string       { return store.Key("image-uploads", id) }
func imagesPrefix() string             { return store.Prefix("images") }
func namePrefix(name string) string    { return store.Prefix("image-names", name) }
func projectPrefix(pid string) string  { return store.Prefix("project-images", pid) }
func notFound(id string) *api.Error    { return api.Errorf(CodeImageNotFound, "image %s not found", id) }
func invalidState(img *api.Image) *api.Error {
	return api.Errorf(CodeInvalidImageState, "image %s (%s) is %s", img.Name, img.ID, img.State)
}

// Service stores images and carries out image requests.
type Service struct {
	st    *store.Store
	tasks *tasks.Engine
	dir   string

	// MaxUploadSize bounds an image's size in bytes (default DefaultMaxUploadSize).
	MaxUploadSize int64
	// Limits bound the disks images hold and what uploads may write.
	Limits Limits
	// Log receives the janitor's and uploads' messages (default slog.Default()).
	Log *slog.Logger
	// QEMUImg is the qemu-img that converts OVA and VMDK uploads (default
	// "qemu-img" on the PATH).
	QEMUImg string
	// ConvertTimeout bounds one image's conversion (default DefaultConvertTimeout).
	ConvertTimeout time.Duration

	mu       sync.Mutex
	inflight map[string]*upload // uploads received by this process

	// eager is the last listing of ListEagerWithin, and when it was read.
	eagerMu sync.Mutex
	eager   []string
	eagerAt time.Time
}

// New returns the service storing image files in dir (made if missing) and
// registers its operations with the engine.
func New(st *store.Store, engine *tasks.Engine, dir string) (*Service, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("image dir: %w", err)
	}
	s := &Service{st: st, tasks: engine, dir: dir, MaxUploadSize: DefaultMaxUploadSize, Log: slog.Default(),
		inflight: map[string]*upload{}}
	if err := engine.Register(s.operations()...); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Service) operations() []*tasks.Operation {
	return []*tasks.Operation{
		{
			Name:  OpCreateImage,
			Steps: []tasks.Step{{Name: StepUploadImage, Run: s.stepUpload}, {Name: StepConvertImage, Run: s.stepConvert}},
			Undo: func(ctx context.Context, tx *store.Txn, t *api.Task, _ *api.Error) error {
				var img api.Image
				ok, err := tx.Get(ctx, imageKey(t.Entity.ID), &img)
				if err != nil || !ok || img.State != api.ImageCreating {
					return err
				}
				img.State = api.ImageError
				return tx.Put(imageKey(img.ID), &img)
			},
		},
		{
			// Done in the submitting transaction; the step never runs later.
			Name:  OpDeleteImage,
			Steps: []tasks.Step{{Name: OpDeleteImage, Run: func(context.Context, *store.Txn, *api.Task) error { return nil }}},
		},
	}
}

// Path is where the file of image id is, e.g. DATA_DIR/images/<id>.
func (s *Service) Path(id string) string { return filepath.Join(s.dir, id) }

func (s *Service) partPath(id string) string { return filepath.Join(s.dir, id+".part") }

// validID rejects ids that could not be ours before they reach a key or a path.
func validID(id string) bool {
	return id != "" && len(id) <= 64 && !strings.ContainsAny(id, "/\\\x00") && id != "." && id != ".."
}

func newID() string { return uuid.Must(uuid.NewV7()).String() }

// Get reads an image.
func (s *Service) Get(ctx context.Context, id string) (*api.Image, error) {
	if !validID(id) {
		return nil, notFound(id)
	}
	var img api.Image
	if _, err := s.st.Get(ctx, imageKey(id), &img); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, notFound(id)
		}
		return nil, err
	}
	return &img, nil
}

// List lists images of every scope, or those named name, one page at a time.
func (s *Service) List(ctx context.Context, name, token string, size int) ([]api.Image, string, error) {
	if size <= 0 || size > MaxPageSize {
		size = MaxPageSize
	}
	if name != "" {
		if api.ValidateName("name", name) != nil {
			return []api.Image{}, "", nil
		}
		return store.PageOf[api.Image](ctx, s.st, namePrefix(name), token, size, imageKey)
	}
	return store.PageOf[api.Image](ctx, s.st, imagesPrefix(), token, size, nil)
}

// ListProject lists the images scoped to a project, one page at a time.
func (s *Service) ListProject(ctx context.Context, projectID, token string, size int) ([]api.Image, string, error) {
	if size <= 0 || size > MaxPageSize {
		size = MaxPageSize
	}
	if !validID(projectID) {
		return []api.Image{}, "", nil
	}
	return store.PageOf[api.Image](ctx, s.st, projectPrefix(projectID), token, size, imageKey)
}

// ListEager returns the ids of READY images replicated EAGER: what every
// host's cache should hold.
func (s *Service) ListEager(ctx context.Context) ([]string, error) {
	all, err := store.List[api.Image](ctx, s.st, imagesPrefix())
	if err != nil {
		return nil, err
	}
	ids := []string{}
	for _, img := range all {
		if img.State == api.ImageReady && img.ReplicationType == api.ReplicationEager {
			ids = append(ids, img.ID)
		}
	}
	return ids, nil
}

// ListEagerWithin is ListEager, answered from its last listing while
// that is younger than maxAge. Every answer of a host's desired state
// carries the list: with thousands of hosts, listing (and decoding) every
// image for each answer was 2% of the controller's CPU (bench/fleet, 5,000
// hosts). A host learns of a new EAGER image at its next answer anyway,
// so a listing maxAge old delays nothing that matters.
func (s *Service) ListEagerWithin(ctx context.Context, maxAge time.Duration) ([]string, error) {
	s.eagerMu.Lock()
	defer s.eagerMu.Unlock()
	if s.eager != nil && time.Since(s.eagerAt) < maxAge {
		return slices.Clone(s.eager), nil
	}
	at := time.Now()
	ids, err := s.ListEager(ctx)
	if err != nil {
		return nil, err
	}
	s.eager, s.eagerAt = ids, at
	return slices.Clone(ids), nil
}

// Open opens the file of an image that hosts may pull (READY, or
// PENDING_DELETE while VMs still use it).
func (s *Service) Open(ctx context.Context, id string) (*os.File, *api.Image, error) {
	img, err := s.Get(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	if img.State != api.ImageReady && img.State != api.ImagePendingDelete {
		return nil, nil, invalidState(img)
	}
	f, err := os.Open(s.Path(id))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil, api.Errorf(CodeInvalidImageState, "image %s has no file on this controller", id)
		}
		return nil, nil, err
	}
	return f, img, nil
}

// Delete deletes an image; one in use goes PENDING_DELETE and disappears
// with its last user. A CREATING image is busy with its upload task
// (ConcurrentTask).
func (s *Service) Delete(ctx context.Context, id string) (*api.Task, error) {
	img, err := s.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	var task *api.Task
	gone := false
	_, err = s.st.Update(ctx, func(tx *store.Txn) error {
		gone = false
		var err error
		if task, err = s.tasks.NewTask(OpDeleteImage, api.Entity{ID: id, Kind: api.KindImage}, "", img.Scope.ID); err != nil {
			return err
		}
		var cur api.Image
		if err := tx.MustGet(ctx, imageKey(id), &cur); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return notFound(id)
			}
			return err
		}
		// A READY image was charged to its project (an ERROR one never
		// was, a PENDING_DELETE one was released): released here.
		if cur.State == api.ImageReady {
			if err := chargeImage(ctx, tx, &cur, -1); err != nil {
				return err
			}
		}
		switch {
		case cur.Users > 0:
			cur.State = api.ImagePendingDelete
			if err := tx.Put(imageKey(id), &cur); err != nil {
				return err
			}
		default:
			removeRecord(tx, &cur)
			gone = true
		}
		s.tasks.CompleteStep(task, 0)
		return s.tasks.Submit(ctx, tx, task)
	})
	if err != nil {
		return nil, err
	}
	if gone {
		s.removeFiles(id)
	}
	return task, nil
}

// removeRecord deletes an image and its index entries in tx.
func removeRecord(tx *store.Txn, img *api.Image) {
	tx.Delete(imageKey(img.ID))
	tx.Delete(nameKey(img.Name, img.ID))
	if img.Scope.Kind == ScopeProject && img.Scope.ID != "" {
		tx.Delete(projectKey(img.Scope.ID, img.ID))
	}
}

// removeFiles removes an image's file, partial upload and conversion
// scratch files, if any.
func (s *Service) removeFiles(id string) {
	paths := []string{s.Path(id), s.partPath(id)}
	for _, k := range tempKinds {
		paths = append(paths, s.tempPath(id, k))
	}
	for _, p := range paths {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			s.Log.Warn("remove image file", "path", p, "error", err)
		}
	}
}

// AcquireImage counts one more user of an image in tx (e.g. a VM being
// created from it) and returns it. An image that is not READY is
// InvalidImageState; a missing one ImageNotFound.
func AcquireImage(ctx context.Context, tx *store.Txn, id string) (*api.Image, error) {
	if !validID(id) {
		return nil, notFound(id)
	}
	var img api.Image
	if err := tx.MustGet(ctx, imageKey(id), &img); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, notFound(id)
		}
		return nil, err
	}
	if img.State != api.ImageReady {
		return nil, invalidState(&img)
	}
	img.Users++
	return &img, tx.Put(imageKey(id), &img)
}

// ReleaseImage counts one user fewer in tx; the last user of a
// PENDING_DELETE image deletes it (its file goes with the janitor, Loop).
// Releasing a missing image is not an error.
func ReleaseImage(ctx context.Context, tx *store.Txn, id string) error {
	if !validID(id) {
		return nil
	}
	var img api.Image
	if err := tx.MustGet(ctx, imageKey(id), &img); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		return err
	}
	if img.Users > 0 {
		img.Users--
	}
	if img.Users == 0 && img.State == api.ImagePendingDelete {
		removeRecord(tx, &img)
		return nil
	}
	return tx.Put(imageKey(id), &img)
}

// AcquireImage is the package's AcquireImage, as a method so that the
// service satisfies interfaces of its users (e.g. compute.ImageUser).
func (s *Service) AcquireImage(ctx context.Context, tx *store.Txn, id string) (*api.Image, error) {
	return AcquireImage(ctx, tx, id)
}

// ReleaseImage is the package's ReleaseImage, as a method.
func (s *Service) ReleaseImage(ctx context.Context, tx *store.Txn, id string) error {
	return ReleaseImage(ctx, tx, id)
}
