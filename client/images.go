package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"

	"github.com/photon-cloud/photon/api"
)

// ImageUpload describes an upload for UploadImage.
type ImageUpload struct {
	// Name of the image, e.g. "ubuntu"; empty: the server derives one from FileName.
	Name string
	// ReplicationType is EAGER or ON_DEMAND; empty: EAGER.
	ReplicationType string
	// ProjectID scopes the image to a project; empty: an infrastructure
	// image (system administrators only).
	ProjectID string
	// FileName is sent as the file part's name, e.g. "ubuntu.qcow2".
	FileName string
	// Progress, if set, is called as the file's bytes are sent, with the
	// total size (-1 if unknown).
	Progress func(sent, total int64)
}

// UploadImage uploads an image of size bytes (-1 if unknown) read from r as
// multipart/form-data, streaming it without holding it in memory, and
// returns the CREATE_IMAGE task the controller answers with once it has
// stored the file (wait for it with WaitTask). The upload has no overall
// timeout; ctx bounds it.
func (c *Client) UploadImage(ctx context.Context, r io.Reader, size int64, u ImageUpload) (*api.Task, error) {
	path := "/v1/images"
	if u.ProjectID != "" {
		path = "/v1/projects/" + esc(u.ProjectID) + "/images"
	}
	target, err := c.resolve(path)
	if err != nil {
		return nil, err
	}
	// The form's fields go first, so the controller checks them before it
	// stores anything; the file part's bytes come from r unbuffered.
	var head bytes.Buffer
	mw := multipart.NewWriter(&head)
	if u.Name != "" {
		_ = mw.WriteField("name", u.Name)
	}
	if u.ReplicationType != "" {
		_ = mw.WriteField("replicationType", u.ReplicationType)
	}
	fileName := u.FileName
	if fileName == "" {
		fileName = u.Name
	}
	if fileName == "" {
		fileName = "image"
	}
	if _, err := mw.CreateFormFile("file", fileName); err != nil {
		return nil, err
	}
	prefix := append([]byte(nil), head.Bytes()...)
	head.Reset()
	if err := mw.Close(); err != nil {
		return nil, err
	}
	suffix := head.Bytes()

	body := io.MultiReader(bytes.NewReader(prefix), &progressReader{r: r, total: size, fn: u.Progress}, bytes.NewReader(suffix))
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target.String(), body)
	if err != nil {
		return nil, err
	}
	req.ContentLength = -1
	if size >= 0 {
		req.ContentLength = int64(len(prefix)) + size + int64(len(suffix))
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("Accept", "application/json")
	if c.userAgent != "" {
		req.Header.Set("User-Agent", c.userAgent)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	hc := *c.hc
	hc.Timeout = 0 // an upload takes as long as it takes; ctx bounds it
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return nil, fmt.Errorf("POST %s: read response: %w", path, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, decodeError(resp.StatusCode, data)
	}
	var t api.Task
	if err := json.Unmarshal(data, &t); err != nil || t.ID == "" {
		return nil, fmt.Errorf("POST %s: answer is not a task", path)
	}
	return &t, nil
}

// UploadImageFile uploads the file at path (see UploadImage); FileName
// defaults to the file's base name.
func (c *Client) UploadImageFile(ctx context.Context, path string, u ImageUpload) (*api.Task, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if u.FileName == "" {
		u.FileName = filepath.Base(path)
	}
	return c.UploadImage(ctx, f, st.Size(), u)
}

// progressReader reports how much of r has been read.
type progressReader struct {
	r     io.Reader
	sent  int64
	total int64
	fn    func(sent, total int64)
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.sent += int64(n)
	if p.fn != nil && (n > 0 || err == io.EOF) {
		p.fn(p.sent, p.total)
	}
	return n, err
}

// ListImages lists images, all pages; name "" lists every image.
func (c *Client) ListImages(ctx context.Context, name string) ([]api.Image, error) {
	return ListAll[api.Image](ctx, c, "/v1/images"+query("name", name))
}

// ListProjectImages lists the images scoped to a project, all pages.
func (c *Client) ListProjectImages(ctx context.Context, projectID string) ([]api.Image, error) {
	return ListAll[api.Image](ctx, c, "/v1/projects/"+esc(projectID)+"/images")
}

// GetImage reads one image.
func (c *Client) GetImage(ctx context.Context, id string) (*api.Image, error) {
	return getOne[api.Image](ctx, c, "/v1/images/"+esc(id))
}

// DeleteImage deletes an image; one still in use goes PENDING_DELETE.
func (c *Client) DeleteImage(ctx context.Context, id string) (*api.Task, error) {
	return c.call(ctx, http.MethodDelete, "/v1/images/"+esc(id), nil)
}

// ListImageTasks lists the tasks of an image, all pages; state may be "".
func (c *Client) ListImageTasks(ctx context.Context, id, state string) ([]api.Task, error) {
	return ListAll[api.Task](ctx, c, "/v1/images/"+esc(id)+"/tasks"+query("state", state))
}
