package images

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"syscall"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/internal/store"
	"github.com/photon-cloud/photon/internal/tenancy"
)

// Quota keys an image of a project is charged to (its project's limits;
// keys the project does not limit are not tracked): its stored size, in
// GB, and one image.
const (
	QuotaImageCapacity = "image.capacity"
	QuotaImageCount    = "image"
)

// Defaults of Limits.
const (
	// DefaultMaxVirtualSize bounds the disk an image holds: 16 TiB, the
	// largest disk a qcow2 with 64 KiB clusters and a 32 MiB L1 table
	// addresses comfortably, far above any boot disk.
	DefaultMaxVirtualSize int64 = 16 << 40
	// DefaultFreeReserve is what uploads leave free on the filesystem of
	// the image dir, for etcd's data dir and logs beside it: 1 GiB, or 5%
	// of a filesystem smaller than 20 GiB.
	DefaultFreeReserve int64 = 1 << 30
	// DefaultMaxExpansion bounds what one uploaded byte may become on the
	// controller's disk: a gunzipped OVA disk, a converted image.
	DefaultMaxExpansion int64 = 100
)

// Limits bound what uploads may cost the controller. Zero fields take
// their defaults; a negative FreeReserve keeps nothing free.
type Limits struct {
	// MaxVirtualSize refuses images holding a larger disk (bytes).
	MaxVirtualSize int64
	// FreeReserve is the free space (bytes) uploads leave on the image
	// dir's filesystem: an upload that would go below it is refused
	// (ServiceUnavailable), before and while it streams. Zero: 1 GiB, or
	// 5% of a filesystem smaller than 20 GiB.
	FreeReserve int64
	// MaxExpansion bounds an OVA's extracted disk and a converted image to
	// this many times the uploaded bytes.
	MaxExpansion int64
}

func (s *Service) maxVirtualSize() int64 {
	if s.Limits.MaxVirtualSize > 0 {
		return s.Limits.MaxVirtualSize
	}
	return DefaultMaxVirtualSize
}

// freeReserve is the free space uploads leave on a filesystem of size bytes.
func (s *Service) freeReserve(size int64) int64 {
	switch r := s.Limits.FreeReserve; {
	case r > 0:
		return r
	case r < 0:
		return 0
	}
	return min(DefaultFreeReserve, size/20)
}

func (s *Service) maxExpansion() int64 {
	if s.Limits.MaxExpansion > 0 {
		return s.Limits.MaxExpansion
	}
	return DefaultMaxExpansion
}

func (s *Service) maxUpload() int64 {
	if s.MaxUploadSize > 0 {
		return s.MaxUploadSize
	}
	return DefaultMaxUploadSize
}

// gb formats bytes as GB (GiB, as quotas count them) for messages.
func gb(n int64) string {
	return strconv.FormatFloat(float64(n)/(1<<30), 'g', 4, 64) + " GB"
}

// freeBytes is the space unprivileged writers may still use on the image
// dir's filesystem, and the filesystem's size.
func (s *Service) freeBytes() (free, size int64, _ error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(s.dir, &st); err != nil {
		return 0, 0, fmt.Errorf("statfs %s: %w", s.dir, err)
	}
	return int64(st.Bavail) * int64(st.Bsize), int64(st.Blocks) * int64(st.Bsize), nil
}

// checkFree refuses to write need more bytes if that would leave less
// than the reserve free: ServiceUnavailable, saying what the controller keeps.
func (s *Service) checkFree(need int64) error {
	free, size, err := s.freeBytes()
	if err != nil {
		return err
	}
	if reserve := s.freeReserve(size); free-max(need, 0) < reserve {
		return api.Errorf(api.CodeUnavailable,
			"not enough space on the controller for this image: %s free, the controller keeps %s free", gb(free), gb(reserve))
	}
	return nil
}

// quotaRoom is how many bytes of image.capacity a project has left, or -1
// if it does not limit image.capacity (also for infrastructure uploads,
// projectID ""). A project over its limit has 0 left; one whose image
// count is at its limit is a QuotaError.
func (s *Service) quotaRoom(ctx context.Context, projectID string) (int64, error) {
	if projectID == "" {
		return -1, nil
	}
	p, err := tenancy.ReadProject(ctx, s.st.PlainTxn(), projectID)
	if err != nil {
		return 0, err
	}
	if it, ok := p.Quota.QuotaItems[QuotaImageCount]; ok && it.Usage+1 > it.Limit+1e-9 {
		e := api.Errorf(api.CodeQuotaError, "Not enough quota: %s needs 1 COUNT, %s COUNT free", QuotaImageCount,
			strconv.FormatFloat(max(0, it.Limit-it.Usage), 'f', -1, 64))
		e.Data = map[string]string{"key": QuotaImageCount}
		return 0, e
	}
	it, ok := p.Quota.QuotaItems[QuotaImageCapacity]
	if !ok {
		return -1, nil
	}
	left := api.ConvertUnit(it.Limit-it.Usage, it.Unit, "B")
	switch {
	case left <= 0 || math.IsNaN(left):
		return 0, nil
	case left >= math.MaxInt64/2:
		return math.MaxInt64 / 2, nil
	}
	return int64(left), nil
}

// quotaShort is the QuotaError of an image that needs more than room bytes
// of its project's image.capacity.
func quotaShort(need, room int64) *api.Error {
	e := api.Errorf(api.CodeQuotaError, "Not enough quota: %s needs more than %s, %s free", QuotaImageCapacity, gb(need), gb(room))
	e.Data = map[string]string{"key": QuotaImageCapacity}
	return e
}

// imageCost is what a project's image is charged.
func imageCost(img *api.Image) []api.QuotaLineItem {
	return []api.QuotaLineItem{
		{Key: QuotaImageCapacity, Value: float64(img.Size) / (1 << 30), Unit: "GB"},
		{Key: QuotaImageCount, Value: 1, Unit: "COUNT"},
	}
}

// chargeImage charges (sign +1) or releases (-1) a project image's cost
// to its project in tx. Infrastructure images cost nothing; releasing to a
// project that is gone is no error.
func chargeImage(ctx context.Context, tx *store.Txn, img *api.Image, sign int) error {
	if img.Scope.Kind != ScopeProject || img.Scope.ID == "" {
		return nil
	}
	err := tenancy.ChargeProject(ctx, tx, img.Scope.ID, imageCost(img), sign)
	if sign < 0 && errors.Is(err, api.Errorf(api.CodeProjectNotFound, "")) {
		return nil
	}
	return err
}

// budget bounds the bytes one step of an upload writes to the image dir:
// at most limit (over says why when passed), and none that would leave
// less than the reserve free.
type budget struct {
	s     *Service
	limit int64
	over  func(n int64) error
}

// bound lowers b's limit to n (if n >= 0 and lower), with its reason.
func (b *budget) bound(n int64, over func(n int64) error) {
	if n >= 0 && n < b.limit {
		b.limit, b.over = n, over
	}
}

// writer counts bytes written through it against the budget; it fails
// (writing nothing) once the limit would be passed, and checks the free
// space every freeCheckBytes.
func (b *budget) writer() *guard { return &guard{b: b} }

const freeCheckBytes = 8 << 20

type guard struct {
	b          *budget
	n, checked int64
}

func (g *guard) Write(p []byte) (int, error) {
	if g.n+int64(len(p)) > g.b.limit {
		return 0, g.b.over(g.n + int64(len(p)))
	}
	g.n += int64(len(p))
	if g.n-g.checked >= freeCheckBytes {
		g.checked = g.n
		if err := g.b.s.checkFree(0); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}
