package httpapi_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/internal/controller"
	"github.com/photon-cloud/photon/internal/images"
	"github.com/photon-cloud/photon/internal/photontest"
)

// countingReader counts what the client's transport read of a body.
type countingReader struct {
	r io.Reader
	n atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// postFile posts a multipart form whose file part is file, declaring
// length (the whole body's, -1: unknown, sent chunked), within 20 s. It
// returns the status, the error body and how many bytes of file were read.
func postFile(t *testing.T, c *photontest.Cloud, path, fileName string, file io.Reader, length int64) (int, api.Error, int64) {
	t.Helper()
	var head bytes.Buffer
	mw := multipart.NewWriter(&head)
	if _, err := mw.CreateFormFile("file", fileName); err != nil {
		t.Fatal(err)
	}
	prefix := bytes.Clone(head.Bytes())
	head.Reset()
	_ = mw.Close()
	cr := &countingReader{r: file}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// A stalled body is closed at the deadline: the transport waits for it.
	if cl, ok := file.(io.Closer); ok {
		defer context.AfterFunc(ctx, func() { cl.Close() })()
	}
	req, err := http.NewRequestWithContext(ctx, "POST", c.URL+path, io.MultiReader(bytes.NewReader(prefix), cr, bytes.NewReader(head.Bytes())))
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = length
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("Authorization", "Bearer "+c.Token)
	resp, err := (&http.Client{Transport: httpTransport(t, c)}).Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v (read %d bytes of the file)", path, err, cr.n.Load())
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var e api.Error
	_ = json.Unmarshal(b, &e)
	return resp.StatusCode, e, cr.n.Load()
}

// TestImageUploadLimits: issue 26 point 7. A declared length over the
// limit or over the project's image quota is refused before the body is
// read; a quota passed while streaming stops the upload (image ERROR, no
// file); READY images are charged to image.capacity and released on
// delete; an OVA whose disk gunzips to more than MaxExpansion times the
// upload is refused quickly; the controller keeps its free-space reserve.
func TestImageUploadLimits(t *testing.T) {
	qemuImgOrSkip(t)
	c := photontest.NewController(t, "", func(cfg *controller.Config) { cfg.MaxImageBytes = 64 << 20 })
	cl := c.Client
	head := qcow2Head(t)
	quota := func(gb float64) *api.QuotaSpec {
		return &api.QuotaSpec{QuotaItems: map[string]api.QuotaItem{
			images.QuotaImageCapacity: {Unit: "GB", Limit: gb}, images.QuotaImageCount: {Unit: "COUNT", Limit: 10},
		}}
	}
	tn := waitFor(t, cl)(cl.CreateTenant(ctx(), &api.TenantCreateSpec{Name: "limits", Quota: quota(1)}))
	pj := waitFor(t, cl)(cl.CreateProject(ctx(), tn.Entity.ID, &api.ProjectCreateSpec{Name: "limited", Quota: quota(16.0 / 1024)})) // 16 MiB
	pid := pj.Entity.ID
	projectPath := "/v1/projects/" + pid + "/images"
	usage := func() (float64, float64) {
		t.Helper()
		p, err := cl.GetProject(ctx(), pid)
		if err != nil {
			t.Fatal(err)
		}
		return p.Quota.QuotaItems[images.QuotaImageCapacity].Usage, p.Quota.QuotaItems[images.QuotaImageCount].Usage
	}
	noFiles := func(t *testing.T) {
		t.Helper()
		waitUntil(t, "no file left", func() bool { return len(imageFiles(t, c)) == 0 })
	}

	for _, tc := range []struct {
		name    string
		path    string
		length  int64
		status  int
		code    string
		message string
	}{
		{"declared length over MaxImageBytes", "/v1/images", 1 << 40, 413, api.CodeRequestTooLarge, "image larger than 67108864 bytes"},
		{"declared length over the project's image quota", projectPath, 32 << 20, 400, api.CodeQuotaError, "Not enough quota: image.capacity"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The body never comes: an answer proves nothing was waited for.
			pr, pw := io.Pipe()
			defer pw.Close()
			start := time.Now()
			status, e, read := postFile(t, c, tc.path, "big.qcow2", pr, tc.length)
			if status != tc.status || e.Code != tc.code || !strings.Contains(e.Message, tc.message) || read != 0 {
				t.Errorf("= %d %+v after reading %d bytes, want %d %s %q before reading", status, e, read, tc.status, tc.code, tc.message)
			}
			t.Logf("answered %d %q in %v", status, e.Message, time.Since(start))
			if l, _ := cl.ListImages(ctx(), ""); len(l) != 0 {
				t.Errorf("images = %+v, want none", l)
			}
		})
	}

	t.Run("no image left in the project's count", func(t *testing.T) {
		full := waitFor(t, cl)(cl.CreateProject(ctx(), tn.Entity.ID, &api.ProjectCreateSpec{Name: "full", Quota: &api.QuotaSpec{
			QuotaItems: map[string]api.QuotaItem{images.QuotaImageCapacity: {Unit: "GB", Limit: 0.5}, images.QuotaImageCount: {Unit: "COUNT", Limit: 0}}}}))
		pr, pw := io.Pipe()
		defer pw.Close()
		status, e, read := postFile(t, c, "/v1/projects/"+full.Entity.ID+"/images", "a.qcow2", pr, 1<<20)
		if status != 400 || e.Code != api.CodeQuotaError || !strings.Contains(e.Message, "Not enough quota: image needs 1 COUNT, 0 COUNT free") || read != 0 {
			t.Errorf("= %d %+v after %d bytes, want QuotaError on image", status, e, read)
		}
	})

	t.Run("quota passed while streaming", func(t *testing.T) {
		status, e, read := postFile(t, c, projectPath, "big.qcow2", newGen(head, 48<<20, 7), -1)
		if status != 400 || e.Code != api.CodeQuotaError || !strings.Contains(e.Message, "Not enough quota: image.capacity") {
			t.Fatalf("= %d %+v, want 400 QuotaError", status, e)
		}
		t.Logf("refused after the client sent %d MiB: %s", read>>20, e.Message)
		l, err := cl.ListProjectImages(ctx(), pid)
		if err != nil || len(l) != 1 || l[0].State != api.ImageError {
			t.Fatalf("images = %+v, %v; want one ERROR", l, err)
		}
		noFiles(t)
		waitFor(t, cl)(cl.DeleteImage(ctx(), l[0].ID))
		if cap, n := usage(); cap != 0 || n != 0 {
			t.Errorf("usage = %v GB, %v images; want 0", cap, n)
		}
	})

	t.Run("charged when READY, released on delete", func(t *testing.T) {
		status, _, _ := postFile(t, c, projectPath, "a.qcow2", newGen(head, 8<<20, 8), -1)
		if status != 201 {
			t.Fatalf("upload = %d", status)
		}
		l, _ := cl.ListProjectImages(ctx(), pid)
		if len(l) != 1 || l[0].State != api.ImageReady || l[0].VirtualSize != 64<<20 {
			t.Fatalf("images = %+v", l)
		}
		if cap, n := usage(); cap != 8.0/1024 || n != 1 {
			t.Errorf("usage = %v GB, %v images; want %v GB, 1", cap, n, 8.0/1024)
		}
		// 8 MiB are left: 12 more do not fit, while streaming.
		status, e, _ := postFile(t, c, projectPath, "b.qcow2", newGen(head, 12<<20, 9), -1)
		if status != 400 || e.Code != api.CodeQuotaError {
			t.Errorf("second upload = %d %+v, want QuotaError", status, e)
		}
		if cap, n := usage(); cap != 8.0/1024 || n != 1 {
			t.Errorf("usage after the refused upload = %v GB, %v images", cap, n)
		}
		all, _ := cl.ListProjectImages(ctx(), pid)
		for _, img := range all {
			waitFor(t, cl)(cl.DeleteImage(ctx(), img.ID))
		}
		if cap, n := usage(); cap != 0 || n != 0 {
			t.Errorf("usage after delete = %v GB, %v images; want 0", cap, n)
		}
		noFiles(t)
	})

	t.Run("gzip bomb ova", func(t *testing.T) {
		// 512 MiB of zeros gzip to half a MiB: more than 100 times the upload.
		var gz bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&gz, gzip.BestCompression)
		zero := make([]byte, 1<<20)
		for range 512 {
			zw.Write(zero)
		}
		zw.Close()
		desc := strings.Replace(ovaDescriptor, `ovf:href="appliance-disk1.vmdk"`, `ovf:href="d.vmdk.gz" ovf:compression="gzip"`, 1)
		var b bytes.Buffer
		tw := tar.NewWriter(&b)
		for _, m := range []tarMember{{"x.ovf", []byte(desc)}, {"d.vmdk.gz", gz.Bytes()}} {
			tw.WriteHeader(&tar.Header{Name: m.name, Mode: 0o644, Size: int64(len(m.body)), Typeflag: tar.TypeReg})
			tw.Write(m.body)
		}
		tw.Close()
		start := time.Now()
		status, e, _ := postFile(t, c, "/v1/images", "bomb.ova", bytes.NewReader(b.Bytes()), -1)
		took := time.Since(start)
		if status != 400 || e.Code != images.CodeInvalidImage || !strings.Contains(e.Message, "decompression bomb") {
			t.Fatalf("= %d %+v, want InvalidImage naming a decompression bomb", status, e)
		}
		if took > 10*time.Second {
			t.Errorf("refused after %v", took)
		}
		t.Logf("a %d KiB OVA holding 512 MiB refused in %v: %s", b.Len()>>10, took, e.Message)
		noFiles(t)
	})
}

// TestImageFreeReserve: an upload that would leave less than the reserve
// free on the controller is refused, before (declared) and while streaming,
// with 503 saying what the controller keeps; nothing is left behind.
func TestImageFreeReserve(t *testing.T) {
	qemuImgOrSkip(t)
	c := photontest.NewController(t, "")
	var st syscall.Statfs_t
	if err := syscall.Statfs(c.DataDir, &st); err != nil {
		t.Fatal(err)
	}
	// 48 MiB may be written before the reserve is reached (set before
	// any upload; the controller's etcd has preallocated its files).
	c.Server.Images.Limits.FreeReserve = int64(st.Bavail)*st.Bsize - 48<<20
	head := qcow2Head(t)
	for _, tc := range []struct {
		name   string
		length int64
	}{
		{"declared", 256 << 20},
		{"while streaming", -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var body io.Reader = newGen(head, 256<<20, 1)
			if tc.length > 0 {
				pr, pw := io.Pipe() // the body never comes: the answer needs none
				defer pw.Close()
				body = pr
			}
			status, e, read := postFile(t, c, "/v1/images", "big.qcow2", body, tc.length)
			if status != 503 || e.Code != api.CodeUnavailable || !strings.Contains(e.Message, "the controller keeps") {
				t.Fatalf("= %d %+v, want 503 naming the reserve", status, e)
			}
			t.Logf("refused after the client sent %d MiB: %s", read>>20, e.Message)
			if tc.length > 0 && read != 0 {
				t.Errorf("read %d bytes of a declared upload", read)
			}
			waitUntil(t, "no file left", func() bool { return len(imageFiles(t, c)) == 0 })
		})
	}
}
