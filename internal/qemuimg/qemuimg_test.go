package qemuimg

import "testing"

func TestForeign(t *testing.T) {
	for _, tc := range []struct {
		name, json, kind, file string
	}{
		{"self-contained qcow2", `{"format":"qcow2","virtual-size":1048576}`, "", ""},
		{"backing file", `{"format":"qcow2","backing-filename":"/etc/shadow"}`, BackingFile, "/etc/shadow"},
		{"data file", `{"format":"qcow2","format-specific":{"type":"qcow2","data":{"data-file":"/dev/sda"}}}`, DataFile, "/dev/sda"},
		{"its own extent", `{"format":"vmdk","format-specific":{"type":"vmdk","data":{"extents":[{"filename":"/d/img/./x"}]}}}`, "", ""},
		{"an extent elsewhere", `{"format":"vmdk","format-specific":{"type":"vmdk","data":{"extents":[{"filename":"/d/img/x"},{"filename":"/etc/passwd"}]}}}`, Extent, "/etc/passwd"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			info, err := Parse([]byte(tc.json))
			if err != nil {
				t.Fatal(err)
			}
			kind, file := info.Foreign("/d/img/x")
			if kind != tc.kind || file != tc.file {
				t.Errorf("Foreign = %q, %q; want %q, %q", kind, file, tc.kind, tc.file)
			}
		})
	}
	if _, err := Parse([]byte("not json")); err == nil {
		t.Error("Parse accepted a non-JSON answer")
	}
}
