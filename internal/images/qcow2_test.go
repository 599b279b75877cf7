package images

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/photon-cloud/photon/api"
)

// TestCheckQCOW2 reads qcow2 images qemu-img makes with every option that
// shapes the header: accepted when self-contained, refused (naming why)
// when they refer to other files.
func TestCheckQCOW2(t *testing.T) {
	if _, err := exec.LookPath("qemu-img"); err != nil {
		t.Skip("qemu-img not installed (scripts/install-deps.sh installs qemu-utils):", err)
	}
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		args []string // to qemu-img create, before the file and size
		size string
		want string // in the refusal; "" accepts
	}{
		{"compat 0.10 (version 2)", []string{"-o", "compat=0.10"}, "1G", ""},
		{"compat 1.1 (version 3)", []string{"-o", "compat=1.1"}, "1G", ""},
		{"512-byte clusters", []string{"-o", "cluster_size=512"}, "64M", ""},
		{"2 MiB clusters", []string{"-o", "cluster_size=2M"}, "1G", ""},
		{"lazy refcounts", []string{"-o", "lazy_refcounts=on"}, "1G", ""},
		{"extended L2", []string{"-o", "extended_l2=on"}, "1G", ""},
		{"zstd compression type", []string{"-o", "compression_type=zstd"}, "1G", ""},
		{"1 PiB", nil, "1P", ""},
		{"backing file", []string{"-u", "-b", "/etc/passwd", "-F", "raw"}, "1M", "refers to a backing file"},
		{"backing file, version 2", []string{"-u", "-o", "compat=0.10", "-b", "/etc/passwd", "-F", "raw"}, "1M", "refers to a backing file"},
		{"external data file", []string{"-o", "data_file=" + filepath.Join(dir, "data")}, "1M", "refers to an external data file"},
		{"external raw data file", []string{"-o", "data_file=" + filepath.Join(dir, "data2") + ",data_file_raw=on"}, "1M", "refers to an external data file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_")+".qcow2")
			args := append(append([]string{"create", "-q", "-f", "qcow2"}, tc.args...), p, tc.size)
			if out, err := exec.Command("qemu-img", args...).CombinedOutput(); err != nil {
				if strings.Contains(string(out), "Invalid parameter") || strings.Contains(string(out), "not supported") {
					t.Skipf("this qemu-img cannot make it: %s", out)
				}
				t.Fatalf("qemu-img %v: %v: %s", args, err, out)
			}
			f, err := os.Open(p)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			st, _ := f.Stat()
			h, err := checkQCOW2(f, st.Size(), "x.qcow2")
			if tc.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if h.Version != 2 && h.Version != 3 || h.VirtualSize == 0 {
					t.Errorf("header %+v", h)
				}
				return
			}
			var ae *api.Error
			if !errors.As(err, &ae) || ae.Code != CodeInvalidImage || !strings.Contains(ae.Message, tc.want) {
				t.Fatalf("= %v, want InvalidImage with %q", err, tc.want)
			}
		})
	}
}
