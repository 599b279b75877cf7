package images

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/internal/store"
)

// UploadOptions says where an upload goes.
type UploadOptions struct {
	// Scope is {kind: infrastructure} or {kind: project, id: PROJECT}.
	Scope api.ImageScope
	// TenantID owns the task of a project-scoped upload.
	TenantID string
	// DeclaredSize is the request body's length (Content-Length), -1 or 0
	// if unknown: an upload that declares more than it may store is
	// refused before it is read.
	DeclaredSize int64
}

// formSlack is what a multipart body may hold beside the file: the
// fields, part headers and boundaries.
const formSlack = 64 << 10

// Limits of an upload's form fields.
const (
	maxFieldBytes = 1024
	maxParts      = 32
	// uploadLeaseTTL is how long (seconds) an upload's key outlives a
	// controller that died receiving it.
	uploadLeaseTTL = 15
)

// form collects an upload's fields.
type form struct {
	name, replication string
	fileName          string
}

// field reads one small form field into f; it returns the field error of a
// bad value (named as the client sent it).
func (f *form) field(p *multipart.Part) error {
	key := p.FormName()
	b, err := io.ReadAll(io.LimitReader(p, maxFieldBytes+1))
	if err != nil {
		return err
	}
	if len(b) > maxFieldBytes {
		return api.FieldError(key, "longer than %d bytes", maxFieldBytes)
	}
	v := strings.TrimSpace(string(b))
	switch strings.ToLower(key) {
	case "name":
		if err := api.ValidateName("name", v); err != nil {
			return err
		}
		f.name = v
	case "replicationtype", "imagereplication":
		switch strings.ToUpper(v) {
		case api.ReplicationEager, api.ReplicationOnDemand:
			f.replication = strings.ToUpper(v)
		default:
			return api.FieldError("replicationType", "%q: want EAGER or ON_DEMAND", v)
		}
	}
	return nil
}

// Upload reads a multipart/form-data body: a file part ("file", or any
// part with a file name) and the fields name (default: derived from the
// file name) and replicationType (EAGER or ON_DEMAND, default EAGER), in any
// order. Fields before the file are checked before anything is written; the
// file streams to disk through a sha256 hash, never held in memory. An OVA
// or VMDK (by content) is then converted to qcow2 (see prepare). It
// returns the CREATE_IMAGE task as it ends (COMPLETED with the image READY).
//
// An upload that cannot fit is refused before a byte is read (admit), and
// stopped while it streams (store): larger than MaxUploadSize (413), than
// the project's image quota left (400 QuotaError), than the free space
// above Limits.FreeReserve (503). Bad fields, a missing file part and an
// oversized file answer as errors (400 naming the field, 413); once the
// file part has begun the image and its task also end ERROR and no file is
// left. So does an image that is refused by vet or cannot be converted
// (InvalidImage, with the reason).
func (s *Service) Upload(ctx context.Context, mr *multipart.Reader, opts UploadOptions) (*api.Task, error) {
	room, err := s.admit(ctx, opts)
	if err != nil {
		return nil, err
	}
	var f form
	file, err := formHead(mr, &f)
	if err != nil {
		return nil, err
	}
	return s.receive(ctx, mr, file, &f, opts, room)
}

// formHead reads an upload's parts up to its file part ("file", or any
// part with a file name), checking the fields before it into f, and
// returns the file part. Errors are *api.Error: a bad field (naming it),
// no file part, too many parts, a broken body.
func formHead(mr *multipart.Reader, f *form) (*multipart.Part, error) {
	for n := 0; ; n++ {
		if n >= maxParts {
			return nil, api.FieldError("file", "more than %d form parts", maxParts)
		}
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return nil, api.FieldError("file", "no file part in the form")
		}
		if err != nil {
			return nil, bodyError(err)
		}
		if p.FormName() == "file" || p.FileName() != "" {
			f.fileName = p.FileName()
			return p, nil
		}
		if err := f.field(p); err != nil {
			return nil, bodyError(err)
		}
	}
}

// formTail reads the parts after the file part: fields only, checked
// into f. Read errors of the body are errClientBody.
func formTail(mr *multipart.Reader, f *form) error {
	for n := 0; ; n++ {
		if n >= maxParts {
			return api.FieldError("file", "more than %d form parts", maxParts)
		}
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%w: %w", errClientBody, err)
		}
		if p.FormName() == "file" || p.FileName() != "" {
			return api.FieldError("file", "more than one file part")
		}
		if err := f.field(p); err != nil {
			return err
		}
	}
}

// admit refuses an upload that cannot fit before anything is read: one
// that declares more than MaxUploadSize (RequestTooLarge) or than its
// project's image.capacity has left (QuotaError), or that would leave
// less than the reserve free on the controller (ServiceUnavailable). It
// returns the bytes of image.capacity left (-1: not limited).
func (s *Service) admit(ctx context.Context, opts UploadOptions) (int64, error) {
	projectID := ""
	if opts.Scope.Kind == ScopeProject {
		projectID = opts.Scope.ID
	}
	room, err := s.quotaRoom(ctx, projectID)
	if err != nil {
		return 0, err
	}
	declared := opts.DeclaredSize
	if declared > s.maxUpload()+formSlack {
		return 0, api.Errorf(api.CodeRequestTooLarge, "image larger than %d bytes (the request declares %d)", s.maxUpload(), declared)
	}
	if room >= 0 && declared > room+formSlack {
		return 0, quotaShort(declared-formSlack, room)
	}
	return room, s.checkFree(max(declared, 0))
}

// bodyError maps a body read failure to an API error.
func bodyError(err error) error {
	var ae *api.Error
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &ae):
		return ae
	case errors.As(err, &mbe):
		return api.Errorf(api.CodeRequestTooLarge, "request body larger than %d bytes", mbe.Limit)
	}
	return api.Errorf(api.CodeInvalidEntity, "reading the multipart body: %v", err)
}

// receive creates the image and its task, streams the file, reads the
// fields after it and completes or fails the task.
func (s *Service) receive(ctx context.Context, mr *multipart.Reader, file *multipart.Part, f *form, opts UploadOptions, room int64) (*api.Task, error) {
	id := newID()
	img := &api.Image{
		Base: api.Base{ID: id, Kind: api.KindImage}, Name: f.name, State: api.ImageCreating,
		ReplicationType: f.replication, Scope: opts.Scope, Settings: []api.ImageSetting{}, Tags: []string{},
	}
	if img.Name == "" {
		img.Name = NameFromFile(f.fileName)
	}
	if img.ReplicationType == "" {
		img.ReplicationType = api.ReplicationEager
	}
	projectID := ""
	if opts.Scope.Kind == ScopeProject {
		projectID = opts.Scope.ID
	}

	// The lease-bound key tells other controllers the upload is alive.
	lease, err := s.st.Client().Grant(ctx, uploadLeaseTTL)
	if err != nil {
		return nil, fmt.Errorf("upload lease: %w", err)
	}
	kctx, stopKeepAlive := context.WithCancel(context.WithoutCancel(ctx))
	defer func() {
		stopKeepAlive()
		rctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, _ = s.st.Client().Revoke(rctx, lease.ID)
	}()
	if ka, err := s.st.Client().KeepAlive(kctx, lease.ID); err == nil {
		go func() {
			for range ka {
			}
		}()
	}
	if _, err := s.st.Client().Put(ctx, uploadKey(id), `"`+id+`"`, clientv3.WithLease(lease.ID)); err != nil {
		return nil, fmt.Errorf("upload key: %w", err)
	}

	u := s.begin(id)
	defer s.end(id, u)

	var task *api.Task
	_, err = s.st.Update(ctx, func(tx *store.Txn) error {
		var err error
		if task, err = s.tasks.NewTask(OpCreateImage, api.Entity{ID: id, Kind: api.KindImage}, opts.TenantID, projectID); err != nil {
			return err
		}
		if err := tx.Put(imageKey(id), img); err != nil {
			return err
		}
		if err := tx.Put(nameKey(img.Name, id), id); err != nil {
			return err
		}
		if projectID != "" {
			if err := tx.Put(projectKey(projectID, id), id); err != nil {
				return err
			}
		}
		return s.tasks.Submit(ctx, tx, task)
	})
	if err != nil {
		return nil, err
	}

	// From here on the task exists: every failure ends it ERROR, in the
	// step it happened in.
	step := StepUploadImage
	fail := func(cause error) (*api.Task, error) {
		s.removeFiles(id)
		ae := s.uploadError(id, cause)
		u.fail(step, ae)
		s.finish(ctx, task.ID)
		return nil, ae
	}

	size, sum, format, err := s.store(file, id, room)
	if err != nil {
		return fail(err)
	}
	// Fields after the file.
	if err := formTail(mr, f); err != nil {
		return fail(err)
	}
	u.markStored(format)

	// The upload is whole: convert it, even if the client leaves meanwhile.
	step = StepConvertImage
	label := filepath.Base(strings.ReplaceAll(f.fileName, "\\", "/"))
	if label == "." || label == "/" || label == "" {
		label = "the uploaded image"
	}
	res, err := s.prepare(context.WithoutCancel(ctx), id, label, converted{size: size, sum: sum, format: format}, room)
	if err != nil {
		return fail(err)
	}
	size, sum, format = res.size, res.sum, res.format

	if f.replication != "" {
		img.ReplicationType = f.replication
	}
	oldName := img.Name
	if f.name != "" {
		img.Name = f.name
	}
	wctx := context.WithoutCancel(ctx) // the upload is whole: finish it
	_, err = s.st.Update(wctx, func(tx *store.Txn) error {
		var cur api.Image
		if err := tx.MustGet(wctx, imageKey(id), &cur); err != nil {
			return err
		}
		if cur.State != api.ImageCreating {
			return invalidState(&cur)
		}
		cur.Name, cur.ReplicationType = img.Name, img.ReplicationType
		cur.State, cur.Size, cur.SHA256, cur.Format = api.ImageReady, size, sum, format
		cur.VirtualSize = res.virtualSize
		if len(res.settings) > 0 {
			cur.Settings = res.settings
		}
		// Charged with the image that costs it: usage is what exists.
		if err := chargeImage(wctx, tx, &cur, +1); err != nil {
			return err
		}
		if cur.Name != oldName {
			tx.Delete(nameKey(oldName, id))
			if err := tx.Put(nameKey(cur.Name, id), id); err != nil {
				return err
			}
		}
		return tx.Put(imageKey(id), &cur)
	})
	if err != nil {
		return fail(err)
	}
	u.markDone()
	return s.finish(ctx, task.ID), nil
}

// uploadError is the API error a failed upload answers and ends its task
// with. Failures of the controller are logged and answered without cause.
func (s *Service) uploadError(id string, cause error) *api.Error {
	var ae *api.Error
	var mbe *http.MaxBytesError
	switch {
	case errors.As(cause, &ae):
		return ae
	case errors.As(cause, &mbe):
		return api.Errorf(api.CodeRequestTooLarge, "request body larger than %d bytes", mbe.Limit)
	case errors.Is(cause, errClientBody), errors.Is(cause, context.Canceled):
		return api.Errorf(CodeUploadFailed, "the upload of image %s broke off: %v", id, cause)
	}
	s.Log.Error("image upload failed", "image", id, "error", cause)
	return api.Errorf(api.CodeInternalError, "storing image %s failed; the controller's log has the cause", id)
}

// errClientBody marks read errors of the request body.
var errClientBody = errors.New("reading the upload")

// finish runs the task to its end, even if the client has gone, and returns it.
func (s *Service) finish(ctx context.Context, taskID string) *api.Task {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	t, err := s.tasks.Run(rctx, taskID)
	if err != nil || t == nil {
		s.Log.Warn("image task", "task", taskID, "error", err)
		if t, err = s.tasks.Get(rctx, taskID); err != nil {
			return &api.Task{Base: api.Base{ID: taskID, Kind: api.KindTask}, Operation: OpCreateImage, State: api.TaskQueued}
		}
	}
	return t
}

// store streams the file part to DIR/<id>.part through a hash and syncs
// it (prepare makes it DIR/<id>). It returns the size, the hex sha256 and
// the format. It stops as soon as the file passes MaxUploadSize
// (RequestTooLarge) or quotaRoom bytes (QuotaError; -1: no quota), or the
// free space falls below the reserve (ServiceUnavailable).
func (s *Service) store(file io.Reader, id string, quotaRoom int64) (int64, string, string, error) {
	part := s.partPath(id)
	out, err := os.OpenFile(part, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return 0, "", "", err
	}
	defer out.Close()
	h := sha256.New()
	head := &headBuffer{max: sniffBytes}
	b := &budget{s: s, limit: s.maxUpload(), over: func(int64) error {
		return api.Errorf(api.CodeRequestTooLarge, "image larger than %d bytes", s.maxUpload())
	}}
	b.bound(quotaRoom, func(n int64) error { return quotaShort(n, quotaRoom) })
	buf := make([]byte, 1<<20)
	n, err := io.CopyBuffer(io.MultiWriter(b.writer(), out, h, head), readerOnly{file, errClientBody}, buf)
	if err != nil {
		return 0, "", "", err
	}
	if err := out.Sync(); err != nil {
		return 0, "", "", err
	}
	if err := out.Close(); err != nil {
		return 0, "", "", err
	}
	return n, hex.EncodeToString(h.Sum(nil)), DetectFormat(head.b), nil
}

// readerOnly hides any WriterTo and tags read errors as the client's.
type readerOnly struct {
	r   io.Reader
	tag error
}

func (r readerOnly) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil && err != io.EOF {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return n, err
		}
		err = fmt.Errorf("%w: %w", r.tag, err)
	}
	return n, err
}

// headBuffer keeps the first max bytes written to it.
type headBuffer struct {
	b   []byte
	max int
}

func (h *headBuffer) Write(p []byte) (int, error) {
	if room := h.max - len(h.b); room > 0 {
		h.b = append(h.b, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

// upload is the state of an upload this process receives, for its task's
// steps: stored closes once the file is whole (or the upload failed), done
// once the image is READY (or the upload failed).
type upload struct {
	stored, done chan struct{}
	// Set before the channels close, read after.
	err          *api.Error
	errStep      string
	sourceFormat string
}

func (u *upload) markStored(format string) {
	select {
	case <-u.stored:
	default:
		u.sourceFormat = format
		close(u.stored)
	}
}

func (u *upload) markDone() {
	u.markStored(u.sourceFormat)
	select {
	case <-u.done:
	default:
		close(u.done)
	}
}

// fail records why the upload failed, in which step, and ends it.
func (u *upload) fail(step string, e *api.Error) {
	select {
	case <-u.done:
		return
	default:
	}
	u.err, u.errStep = e, step
	u.markDone()
}

// begin marks an upload of this process in flight.
func (s *Service) begin(id string) *upload {
	u := &upload{stored: make(chan struct{}), done: make(chan struct{})}
	s.mu.Lock()
	s.inflight[id] = u
	s.mu.Unlock()
	return u
}

// end forgets an upload of this process; it is marked done if it was not.
func (s *Service) end(id string, u *upload) {
	u.markDone()
	s.mu.Lock()
	delete(s.inflight, id)
	s.mu.Unlock()
}

func (s *Service) upload(id string) *upload {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.inflight[id]
}

// stepUpload completes once the upload's file is stored. It waits for an
// upload this process receives; an upload that failed ends the task with
// its cause; one that no controller receives any more ends it
// ImageUploadFailed; one another controller receives is retried later.
func (s *Service) stepUpload(ctx context.Context, tx *store.Txn, t *api.Task) error {
	if u := s.upload(t.Entity.ID); u != nil {
		select {
		case <-u.stored:
		case <-ctx.Done():
			return ctx.Err()
		}
		if u.err != nil && u.errStep == StepUploadImage {
			return u.err
		}
		return nil
	}
	return s.stepElsewhere(ctx, tx, t.Entity.ID)
}

// stepConvert completes once the image is READY: converted, if it was an
// OVA or a VMDK (the step's options name the uploaded and stored formats),
// or as uploaded. A failed conversion ends the task with its reason.
func (s *Service) stepConvert(ctx context.Context, tx *store.Txn, t *api.Task) error {
	u := s.upload(t.Entity.ID)
	if u == nil {
		return s.stepElsewhere(ctx, tx, t.Entity.ID)
	}
	select {
	case <-u.done:
	case <-ctx.Done():
		return ctx.Err()
	}
	if u.err != nil {
		return u.err
	}
	if err := s.stepElsewhere(ctx, tx, t.Entity.ID); err != nil {
		return err
	}
	for i := range t.Steps {
		if t.Steps[i].Operation == StepConvertImage && t.Steps[i].Options != nil && u.sourceFormat != "" {
			t.Steps[i].Options["sourceFormat"] = u.sourceFormat
			t.Steps[i].Options["converted"] = strconv.FormatBool(needsConversion(u.sourceFormat))
		}
	}
	return nil
}

// stepElsewhere is a step of an upload this process does not (or no
// longer) receive: done if the image left CREATING; retried later while
// another controller receives it; ImageUploadFailed if nobody does.
func (s *Service) stepElsewhere(ctx context.Context, tx *store.Txn, id string) error {
	var img api.Image
	if err := tx.MustGet(ctx, imageKey(id), &img); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return notFound(id)
		}
		return err
	}
	if img.State != api.ImageCreating {
		return nil
	}
	live, err := tx.Exists(ctx, uploadKey(id))
	if err != nil {
		return err
	}
	if live {
		return fmt.Errorf("image %s: upload in progress on another controller", id)
	}
	s.removeFiles(id)
	return api.Errorf(CodeUploadFailed, "the upload of image %s broke off (the controller receiving it stopped)", id)
}

// NameFromFile derives a valid image name from an uploaded file's name:
// its base name without the last extension, other characters than letters,
// digits and '-' replaced by '-', starting with a letter, at most 63
// characters; "image" if nothing is left. "ubuntu-22.04.qcow2" gives
// "ubuntu-22-04".
func NameFromFile(fileName string) string {
	base := filepath.Base(strings.ReplaceAll(fileName, "\\", "/"))
	if ext := filepath.Ext(base); ext != "" && len(ext) < len(base) {
		base = strings.TrimSuffix(base, ext)
	}
	var b strings.Builder
	for _, r := range base {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z':
			b.WriteRune(r)
		case r >= '0' && r <= '9', r == '-':
			if b.Len() > 0 {
				b.WriteRune(r)
			}
		default:
			if b.Len() > 0 {
				b.WriteByte('-')
			}
		}
	}
	name := strings.TrimRight(b.String(), "-")
	if len(name) > 63 {
		name = strings.TrimRight(name[:63], "-")
	}
	if name == "" {
		return "image"
	}
	return name
}
