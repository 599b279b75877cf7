package images

import (
	"bytes"
	"testing"
)

func TestDetectFormat(t *testing.T) {
	iso := make([]byte, sniffBytes)
	copy(iso[32769:], "CD001")
	tar := make([]byte, 512)
	copy(tar, "photon.ovf")
	copy(tar[257:], "ustar\x0000")
	for _, tc := range []struct {
		name string
		head []byte
		want string
	}{
		{"qcow2", []byte("QFI\xfb\x00\x00\x00\x03"), FormatQCOW2},
		{"vmdk sparse", []byte("KDMV\x01\x00\x00\x00"), FormatVMDK},
		{"vmdk descriptor", []byte("# Disk DescriptorFile\nversion=1\n"), FormatVMDK},
		{"iso", iso, FormatISO},
		{"vhdx", []byte("vhdxfile\x00"), FormatVHDX},
		{"ova", tar, FormatOVA},
		{"raw zeros", make([]byte, 4096), FormatRaw},
		{"raw short", []byte("QF"), FormatRaw},
		{"empty", nil, FormatRaw},
		{"qcow2 magic later", append(bytes.Repeat([]byte{0}, 8), "QFI\xfb"...), FormatRaw},
	} {
		if got := DetectFormat(tc.head); got != tc.want {
			t.Errorf("%s: DetectFormat = %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestNameFromFile(t *testing.T) {
	for in, want := range map[string]string{
		"ubuntu.qcow2":           "ubuntu",
		"ubuntu-22.04.qcow2":     "ubuntu-22-04",
		"/tmp/dir/photon os.ova": "photon-os",
		`C:\images\kube.vmdk`:    "kube",
		"123-image.raw":          "image",
		"":                       "image",
		".qcow2":                 "qcow2",
		"noext":                  "noext",
		"a_b.c.d":                "a-b-c",
		string(bytes.Repeat([]byte("x"), 100)) + ".img": string(bytes.Repeat([]byte("x"), 63)),
	} {
		if got := NameFromFile(in); got != want {
			t.Errorf("NameFromFile(%q) = %q, want %q", in, got, want)
		}
	}
}
