package httpapi

import (
	"mime"
	"mime/multipart"
	"net/http"
	"time"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/internal/auth"
	"github.com/photon-cloud/photon/internal/images"
	"github.com/photon-cloud/photon/internal/tasks"
)

// StreamIdleTimeout bounds how long an image upload or download may stall
// (no bytes moving) before the connection is dropped. Stream routes have no
// overall timeout.
const StreamIdleTimeout = 60 * time.Second

func imageLink(r *http.Request) func(*api.Image) {
	base := baseURL(r)
	return func(img *api.Image) { img.SelfLink = base + "/v1/images/" + img.ID }
}

func (s *Server) imagesReady() error {
	if s.Images == nil {
		return api.Errorf(api.CodeUnavailable, "images are not configured on this controller")
	}
	return nil
}

func (s *Server) listImages(r *http.Request) (int, any, error) {
	if err := s.imagesReady(); err != nil {
		return 0, nil, err
	}
	token, size, err := pageParams(r)
	if err != nil {
		return 0, nil, err
	}
	l, next, err := s.Images.List(r.Context(), r.URL.Query().Get("name"), token, size)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, list(r, s.visibleImages(r, l), next, imageLink(r)), nil
}

// visibleImages keeps the images the caller may see: infrastructure images,
// and images of projects it may read (a page may so come out shorter).
func (s *Server) visibleImages(r *http.Request, l []api.Image) []api.Image {
	a := accessOf(r)
	if a == nil || a.System {
		return l
	}
	tenantOf := map[string]string{}
	out := l[:0]
	for _, img := range l {
		if img.Scope.Kind != images.ScopeProject {
			out = append(out, img)
			continue
		}
		pid := img.Scope.ID
		tid, ok := tenantOf[pid]
		if !ok {
			if p, err := s.Tenancy.GetProject(r.Context(), pid); err == nil {
				tid = p.TenantID
			}
			tenantOf[pid] = tid
		}
		if tid != "" && a.Project(pid, tid) >= auth.LevelViewer {
			out = append(out, img)
		}
	}
	return out
}

func (s *Server) listProjectImages(r *http.Request) (int, any, error) {
	if err := s.imagesReady(); err != nil {
		return 0, nil, err
	}
	token, size, err := pageParams(r)
	if err != nil {
		return 0, nil, err
	}
	p, err := s.Tenancy.GetProject(r.Context(), r.PathValue("id"))
	if err != nil {
		return 0, nil, err
	}
	l, next, err := s.Images.ListProject(r.Context(), p.ID, token, size)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, list(r, l, next, imageLink(r)), nil
}

func (s *Server) getImage(r *http.Request) (int, any, error) {
	if err := s.imagesReady(); err != nil {
		return 0, nil, err
	}
	img, err := s.Images.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		return 0, nil, err
	}
	imageLink(r)(img)
	return http.StatusOK, img, nil
}

func (s *Server) deleteImage(r *http.Request) (int, any, error) {
	if err := s.imagesReady(); err != nil {
		return 0, nil, err
	}
	t, err := s.Images.Delete(r.Context(), r.PathValue("id"))
	return taskAnswer(r, t, err)
}

func (s *Server) imageTasks(r *http.Request) (int, any, error) {
	if err := s.imagesReady(); err != nil {
		return 0, nil, err
	}
	img, err := s.Images.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		return 0, nil, err
	}
	return s.tasksPage(r, tasks.Filter{EntityID: img.ID, State: r.URL.Query().Get("state")})
}

// uploadImage receives a multipart image upload, to the infrastructure or
// (project) to the project in the path. The body is limited by the image
// service's MaxUploadSize, not MaxBodyBytes, and may take as long as it
// keeps moving. Its Content-Length is the declared size the service
// checks before reading (413, QuotaError, 503).
func (s *Server) uploadImage(project bool) streamHandler {
	return func(w http.ResponseWriter, r *http.Request) (int, any, error) {
		if err := s.imagesReady(); err != nil {
			return 0, nil, err
		}
		opts := images.UploadOptions{Scope: api.ImageScope{Kind: images.ScopeInfrastructure}, DeclaredSize: r.ContentLength}
		if project {
			p, err := s.Tenancy.GetProject(r.Context(), r.PathValue("id"))
			if err != nil {
				return 0, nil, err
			}
			opts.Scope = api.ImageScope{Kind: images.ScopeProject, ID: p.ID}
			opts.TenantID = p.TenantID
		}
		ct := r.Header.Get("Content-Type")
		mt, params, err := mime.ParseMediaType(ct)
		if err != nil || mt != "multipart/form-data" || params["boundary"] == "" {
			e := api.Errorf(api.CodeInvalidEntity, "file: want a multipart/form-data body with a file part, got Content-Type %q", ct)
			e.Data = map[string]string{"field": "file"}
			return 0, nil, e
		}
		rc := http.NewResponseController(w)
		body := http.MaxBytesReader(w, r.Body, s.Images.MaxUploadSize+MaxBodyBytes)
		mr := multipart.NewReader(&idleReader{r: body, rc: rc}, params["boundary"])
		t, err := s.Images.Upload(r.Context(), mr, opts)
		_ = rc.SetWriteDeadline(time.Now().Add(RequestTimeout))
		return taskAnswer(r, t, err)
	}
}

// imageContent serves an image's bytes to a host's cache, with Range
// support and the sha256 to verify in X-Photon-Sha256.
func (s *Server) imageContent(w http.ResponseWriter, r *http.Request) (int, any, error) {
	if err := s.imagesReady(); err != nil {
		return 0, nil, err
	}
	f, img, err := s.Images.Open(r.Context(), r.PathValue("image"))
	if err != nil {
		return 0, nil, err
	}
	defer f.Close()
	// A host reads only the images assigned to it: EAGER ones, and those
	// its VMs boot from. Others look absent.
	if img.ReplicationType != api.ReplicationEager {
		ok := false
		if s.Hosts != nil {
			if ok, err = s.Hosts.Assigned(r.Context(), r.PathValue("id"), img.ID); err != nil {
				return 0, nil, err
			}
		}
		if !ok {
			return 0, nil, api.Errorf(images.CodeImageNotFound, "image %s not found", img.ID)
		}
	}
	st, err := f.Stat()
	if err != nil {
		return 0, nil, err
	}
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("X-Photon-Sha256", img.SHA256)
	h.Set("ETag", `"sha256:`+img.SHA256+`"`)
	dw := &idleWriter{ResponseWriter: w, rc: http.NewResponseController(w)}
	dw.extend()
	http.ServeContent(dw, r, img.ID, st.ModTime(), f)
	return 0, nil, nil
}

// idleReader pushes the connection's deadlines forward while the body
// moves, so that only a stalled upload times out. The write deadline moves
// too: the answer comes after the whole body.
type idleReader struct {
	r    interface{ Read([]byte) (int, error) }
	rc   *http.ResponseController
	last time.Time
}

func (ir *idleReader) Read(p []byte) (int, error) {
	if now := time.Now(); now.Sub(ir.last) > time.Second {
		ir.last = now
		_ = ir.rc.SetReadDeadline(now.Add(StreamIdleTimeout))
		_ = ir.rc.SetWriteDeadline(now.Add(StreamIdleTimeout + RequestTimeout))
	}
	return ir.r.Read(p)
}

// idleWriter pushes the write deadline forward while the answer moves.
type idleWriter struct {
	http.ResponseWriter
	rc   *http.ResponseController
	last time.Time
}

func (w *idleWriter) extend() {
	w.last = time.Now()
	_ = w.rc.SetWriteDeadline(w.last.Add(StreamIdleTimeout))
}

func (w *idleWriter) Write(p []byte) (int, error) {
	if time.Since(w.last) > time.Second {
		w.extend()
	}
	return w.ResponseWriter.Write(p)
}
