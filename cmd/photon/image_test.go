package main

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/photon-cloud/photon/api"
)

func TestImageCommands(t *testing.T) {
	x := newInfraFake()
	var mu sync.Mutex
	got := map[string]string{}
	upload := x.task("CREATE_IMAGE", api.KindImage, "img-1")
	projImages := []api.Image{{Base: api.Base{ID: "img-p"}, Name: "ubuntu", State: api.ImageReady,
		Scope: api.ImageScope{Kind: "project", ID: "p-1"}}}
	f := newFake(t, map[string]http.HandlerFunc{
		"GET /v1/tasks/{id}":          x.getTask,
		"GET /v1/images":              list(append(append([]api.Image{}, testImages...), projImages...), func(i api.Image) string { return i.Name }),
		"GET /v1/projects/p-1/images": list(projImages, nil),
		"GET /v1/images/{id}":         byID(testImages, func(i api.Image) string { return i.ID }, codeImageNotFound),
		"DELETE /v1/images/{id}":      x.task("DELETE_IMAGE", api.KindImage, "img-1"),
		"GET /v1/projects/{id}":       byID([]api.Project{{Base: api.Base{ID: "p-1"}, Name: "p1", TenantID: "ten-1"}}, func(p api.Project) string { return p.ID }, api.CodeProjectNotFound),
		"POST /v1/images": func(w http.ResponseWriter, r *http.Request) {
			mr, err := r.MultipartReader()
			if err != nil {
				writeJSON(w, 400, api.Error{Code: api.CodeInvalidEntity, Message: err.Error()})
				return
			}
			mu.Lock()
			for {
				p, err := mr.NextPart()
				if err != nil {
					break
				}
				b, _ := io.ReadAll(p)
				got[p.FormName()] = string(b)
				if p.FormName() == "file" {
					got["filename"] = p.FileName()
				}
			}
			mu.Unlock()
			upload(w, r)
		},
	})
	file := filepath.Join(t.TempDir(), "cirros.img")
	content := strings.Repeat("x", 100000)
	if err := os.WriteFile(file, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, code := runCLI(t, f, "-n", "image", "create", file, "-n", "cirros", "-i", "on_demand")
	if code != 0 || stdout != "img-1\n" || stderr != "" {
		t.Fatalf("image create: %d %q %q", code, stdout, stderr)
	}
	mu.Lock()
	if got["name"] != "cirros" || got["replicationType"] != "ON_DEMAND" || got["file"] != content || got["filename"] != "cirros.img" {
		t.Errorf("upload form: name %q type %q file %d bytes %q", got["name"], got["replicationType"], len(got["file"]), got["filename"])
	}
	mu.Unlock()
	if _, stderr, code := runCLI(t, f, "image", "create", file, "-i", "LAZY"); code != exitUsage {
		t.Errorf("bad -i: %d %q", code, stderr)
	}
	if _, stderr, code := runCLI(t, f, "image", "create", filepath.Join(t.TempDir(), "missing.img")); code != exitError {
		t.Errorf("missing file: %d %q", code, stderr)
	}

	stdout, _, code = runCLI(t, f, "-n", "image", "list", "--name", "ubuntu")
	if code != 0 || stdout != "img-1\tubuntu\tREADY\t3.0 MB\tON_DEMAND\tinfrastructure\t0\nimg-p\tubuntu\tREADY\t0.0 MB\t-\tproject:p-1\t0\n" {
		t.Errorf("image list -n: %d %q", code, stdout)
	}
	// By name: the infrastructure image without a project, the project's own in one.
	stdout, _, code = runCLI(t, f, "-n", "image", "show", "ubuntu")
	if code != 0 || !strings.HasPrefix(stdout, "img-1\t") {
		t.Errorf("image show: %d %q", code, stdout)
	}
	stdout, _, code = runInProject(t, f, true, "-n", "image", "delete", "ubuntu")
	if calls := x.callList(); code != 0 || stdout != "img-p\n" || calls[len(calls)-1] != "DELETE /v1/images/img-p" {
		t.Errorf("image delete in project: %d %q %v", code, stdout, calls)
	}
	_, stderr, code = runCLI(t, f, "image", "show", "nosuch")
	if code != exitError || !strings.HasPrefix(stderr, "photon: ImageNotFound: ") {
		t.Errorf("unknown image: %d %q", code, stderr)
	}
}

func TestProgressBar(t *testing.T) {
	var buf bytes.Buffer
	now := time.Unix(0, 0)
	p := newProgressBar(&buf, "a.img", 4<<20)
	p.now = func() time.Time { return now }
	p.start = now
	now = now.Add(time.Second)
	p.update(1<<20, 4<<20)
	p.update(2<<20, 4<<20) // within progressEvery: not drawn
	now = now.Add(time.Second)
	p.update(4<<20, 4<<20)
	p.finish()
	p.finish()
	want := "\ra.img [=======>                      ]  25%  1.0 MB/4.0 MB  1.0 MB/s\x1b[K" +
		"\ra.img [==============================] 100%  4.0 MB/4.0 MB  2.0 MB/s\x1b[K\n"
	if buf.String() != want {
		t.Errorf("progress:\n%q\nwant\n%q", buf.String(), want)
	}
}

func TestProgressBarFinishDrawsUnshownState(t *testing.T) {
	var buf bytes.Buffer
	p := newProgressBar(&buf, "b.img", 0)
	p.finish()
	if !strings.HasPrefix(buf.String(), "\rb.img [>                             ]   0%  0.0 MB/0.0 MB") || !strings.HasSuffix(buf.String(), "\n") {
		t.Errorf("finish of an empty upload: %q", buf.String())
	}
}
