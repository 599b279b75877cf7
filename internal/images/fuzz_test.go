package images

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"io"
	"mime/multipart"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/photon-cloud/photon/api"
)

// Fuzz targets for the parsers of uploads (untrusted input); scripts/fuzz.sh
// runs each in make test. Seeds are added here; inputs that failed once
// live in testdata/fuzz/.

// qcow2Seed is a minimal qcow2 header: version, cluster bits 16, virtual
// size, header length 104 (v3), then the end of extensions.
func qcow2Seed(version uint32, backing uint64, incompat uint64, ext ...[]byte) []byte {
	b := make([]byte, 4096)
	copy(b, "QFI\xfb")
	be := binary.BigEndian
	be.PutUint32(b[4:], version)
	be.PutUint64(b[8:], backing)
	be.PutUint32(b[20:], 16)
	be.PutUint64(b[24:], 1<<30)
	off := 72
	if version >= 3 {
		be.PutUint64(b[72:], incompat)
		be.PutUint32(b[96:], 4)
		be.PutUint32(b[100:], 104)
		off = 104
	}
	for _, e := range ext {
		off += copy(b[off:], e)
	}
	return b
}

func qcow2Ext(typ uint32, data string) []byte {
	b := make([]byte, 8+(len(data)+7)&^7)
	binary.BigEndian.PutUint32(b, typ)
	binary.BigEndian.PutUint32(b[4:], uint32(len(data)))
	copy(b[8:], data)
	return b
}

func FuzzDetectFormat(f *testing.F) {
	iso := make([]byte, sniffBytes)
	copy(iso[32769:], "CD001")
	tarHead := make([]byte, 512)
	copy(tarHead[257:], "ustar")
	for _, s := range [][]byte{nil, []byte("QFI\xfb"), []byte("KDMV"), []byte("# Disk DescriptorFile\n"), []byte("vhdxfile"), iso, tarHead, []byte("raw")} {
		f.Add(s)
	}
	known := map[string]bool{FormatQCOW2: true, FormatVMDK: true, FormatISO: true, FormatVHDX: true, FormatOVA: true, FormatRaw: true}
	f.Fuzz(func(t *testing.T, head []byte) {
		got := DetectFormat(head)
		if !known[got] {
			t.Fatalf("DetectFormat = %q", got)
		}
		// Only the first sniffBytes count.
		if len(head) > sniffBytes && DetectFormat(head[:sniffBytes]) != got {
			t.Fatalf("DetectFormat reads past sniffBytes")
		}
	})
}

func FuzzCheckQCOW2(f *testing.F) {
	f.Add(qcow2Seed(3, 0, 0))
	f.Add(qcow2Seed(2, 0, 0))
	f.Add(qcow2Seed(3, 0x1000, 0))
	f.Add(qcow2Seed(3, 0, qcow2DataFile))
	f.Add(qcow2Seed(3, 0, 1<<40))
	f.Add(qcow2Seed(3, 0, 0, qcow2Ext(qcow2ExtDataFileName, "/etc/shadow")))
	f.Add(qcow2Seed(3, 0, 0, qcow2Ext(0x6803f857, strings.Repeat("x", 48)), qcow2Ext(qcow2ExtBackingFmt, "raw")))
	f.Add(qcow2Seed(4, 0x1000, 0))
	f.Add([]byte("QFI\xfb\x00\x00\x00\x03"))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := checkQCOW2(bytes.NewReader(b), int64(len(b)), "x")
		if err != nil {
			var ae *api.Error
			if !errors.As(err, &ae) || ae.Code != CodeInvalidImage {
				t.Fatalf("error %v is not InvalidImage", err)
			}
			return
		}
		be := binary.BigEndian
		switch {
		case h.Version != 2 && h.Version != 3:
			t.Fatalf("accepted version %d", h.Version)
		case be.Uint64(b[8:]) != 0 || be.Uint32(b[16:]) != 0:
			t.Fatal("accepted a backing file")
		case h.Version == 3 && be.Uint64(b[72:])&(qcow2DataFile|qcow2Corrupt) != 0:
			t.Fatal("accepted an external data file or a corrupt image")
		case h.ClusterBits < qcow2MinClusterBits || h.ClusterBits > qcow2MaxClusterBits:
			t.Fatalf("accepted cluster_bits %d", h.ClusterBits)
		}
	})
}

func FuzzCheckVMDK(f *testing.F) {
	sparse := make([]byte, 4096)
	copy(sparse, "KDMV")
	binary.LittleEndian.PutUint32(sparse[4:], 1)
	binary.LittleEndian.PutUint64(sparse[12:], 2048)
	binary.LittleEndian.PutUint64(sparse[28:], 1)
	binary.LittleEndian.PutUint64(sparse[36:], 1)
	f.Add(bytes.Clone(sparse))
	copy(sparse[512:], "# Disk DescriptorFile\nparentFileNameHint=\"/etc/shadow\"\n")
	f.Add(bytes.Clone(sparse))
	binary.LittleEndian.PutUint64(sparse[12:], 0)
	f.Add(bytes.Clone(sparse))
	f.Add([]byte("COWD"))
	f.Add([]byte("# Disk DescriptorFile\nRW 2048 FLAT \"/etc/passwd\" 0\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		err := checkVMDK(bytes.NewReader(b), int64(len(b)), "x")
		if err != nil {
			var ae *api.Error
			if !errors.As(err, &ae) || ae.Code != CodeInvalidImage {
				t.Fatalf("error %v is not InvalidImage", err)
			}
			return
		}
		if !bytes.HasPrefix(b, []byte("KDMV")) && !bytes.HasPrefix(b, []byte("COWD")) {
			t.Fatal("accepted a VMDK that is not one sparse extent")
		}
		if bytes.HasPrefix(b, []byte("KDMV")) && binary.LittleEndian.Uint64(b[12:]) == 0 {
			t.Fatal("accepted a sparse header without capacity")
		}
		if len(b) > vmdkParentDescAt {
			desc := b[vmdkParentDescAt:min(len(b), vmdkParentDescAt+vmdkParentDescSize)]
			if i := bytes.IndexByte(desc, 0); i >= 0 {
				desc = desc[:i]
			}
			if parentHint(desc) {
				t.Fatal("accepted a parent disk")
			}
		}
	})
}

func FuzzParseOVF(f *testing.F) {
	f.Add([]byte(testOVF("byte * 2^20", "2048")))
	f.Add([]byte(strings.Replace(testOVF("", "1"), `ovf:href="boot.vmdk"`, `ovf:href="../../etc/passwd"`, 1)))
	f.Add([]byte(`<Envelope><References><File id="f" href="/etc/shadow"/></References><DiskSection><Disk diskId="d" fileRef="f"/></DiskSection></Envelope>`))
	f.Fuzz(func(t *testing.T, b []byte) {
		plan, err := parseOVF(b, "x.ovf")
		if err != nil {
			var ae *api.Error
			if !errors.As(err, &ae) || ae.Code != CodeInvalidImage {
				t.Fatalf("error %v is not InvalidImage", err)
			}
			return
		}
		if !memberHref(plan.diskFile) {
			t.Fatalf("disk file %q leaves the archive", plan.diskFile)
		}
	})
}

func FuzzParseManifest(f *testing.F) {
	f.Add([]byte("SHA256(x.ovf)= " + strings.Repeat("ab", 32) + "\nSHA1(d.vmdk)= " + strings.Repeat("00", 20) + "\n"))
	f.Add([]byte("SHA512(../a)=zz\n(\n)"))
	f.Fuzz(func(t *testing.T, b []byte) {
		for name, d := range parseManifest(b) {
			if d == nil || (d.algo != "SHA1" && d.algo != "SHA256" && d.algo != "SHA512") {
				t.Fatalf("%q: digest %+v", name, d)
			}
		}
	})
}

// FuzzReadOVA reads a fuzzed archive as an OVA and extracts its boot disk
// within a small budget: no panic, no member read outside the plan, no
// more written than the budget.
func FuzzReadOVA(f *testing.F) {
	ovf := testOVF("byte * 2^20", "2048")
	seed := func(ms ...member) []byte {
		var b bytes.Buffer
		tw := tar.NewWriter(&b)
		for _, m := range ms {
			tw.WriteHeader(&tar.Header{Name: m.name, Mode: 0o644, Size: int64(len(m.body)), Typeflag: tar.TypeReg})
			tw.Write(m.body)
		}
		tw.Close()
		return b.Bytes()
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(make([]byte, 1<<20))
	zw.Close()
	f.Add(seed(member{"x.ovf", []byte(ovf)}, member{"boot.vmdk", []byte("KDMV disk")}))
	f.Add(seed(member{"x.ovf", []byte(strings.Replace(ovf, `ovf:href="boot.vmdk"`, `ovf:href="boot.vmdk" ovf:compression="gzip"`, 1))}, member{"boot.vmdk", gz.Bytes()}))
	f.Add(seed(member{"x.ovf", []byte(strings.Replace(ovf, `ovf:href="boot.vmdk"`, `ovf:href="boot.vmdk" ovf:chunkSize="4"`, 1))}, member{"boot.vmdk.000000000", []byte("KDMV")}, member{"boot.vmdk.000000001", []byte("disk")}))
	f.Add(seed(member{"x.ovf", []byte(strings.Replace(ovf, `ovf:href="boot.vmdk"`, `ovf:href="../boot.vmdk"`, 1))}, member{"../boot.vmdk", []byte("x")}))
	f.Add(seed(member{"x.mf", []byte("SHA256(x.ovf)= 00\n")}, member{"x.ovf", []byte(ovf)}))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		p := filepath.Join(dir, "f.ova")
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		plan, err := readOVA(p)
		if err != nil {
			var ae *api.Error
			if !errors.As(err, &ae) || ae.Code != CodeInvalidImage {
				t.Fatalf("error %v is not InvalidImage", err)
			}
			return
		}
		if !memberHref(plan.diskFile) || len(plan.members) == 0 {
			t.Fatalf("plan %+v", plan)
		}
		s := &Service{dir: dir, MaxUploadSize: 1 << 20}
		out := filepath.Join(dir, "disk")
		defer os.Remove(out)
		const budgetBytes = 64 << 10
		err = s.extractDisk(p, plan, out, &budget{s: s, limit: budgetBytes, over: func(int64) error { return badImage("over") }})
		if st, serr := os.Stat(out); serr == nil && st.Size() > budgetBytes {
			t.Fatalf("extracted %d bytes, budget %d", st.Size(), budgetBytes)
		}
		var ae *api.Error
		if err != nil && !errors.As(err, &ae) {
			t.Fatalf("extract: %v is not an API error", err)
		}
	})
}

// FuzzUploadForm runs a fuzzed multipart body through Upload's form
// handling (formHead, the file part drained, formTail): errors are API
// errors naming a field, accepted fields are valid.
func FuzzUploadForm(f *testing.F) {
	const boundary = "XyZ"
	bodyOf := func(parts ...string) []byte {
		var b bytes.Buffer
		for _, p := range parts {
			b.WriteString("--" + boundary + "\r\n" + p)
		}
		b.WriteString("--" + boundary + "--\r\n")
		return b.Bytes()
	}
	field := func(name, v string) string {
		return "Content-Disposition: form-data; name=\"" + name + "\"\r\n\r\n" + v + "\r\n"
	}
	file := "Content-Disposition: form-data; name=\"file\"; filename=\"../../d.qcow2\"\r\nContent-Type: application/octet-stream\r\n\r\nQFI\xfb data\r\n"
	f.Add(bodyOf(field("name", "ubuntu"), field("replicationType", "ON_DEMAND"), file))
	f.Add(bodyOf(file, field("name", "a b")))
	f.Add(bodyOf(file, file))
	f.Add(bodyOf(field("name", strings.Repeat("x", 2000))))
	f.Add([]byte("--XyZ\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nunterminated"))
	f.Fuzz(func(t *testing.T, body []byte) {
		mr := multipart.NewReader(bytes.NewReader(body), boundary)
		var fm form
		p, err := formHead(mr, &fm)
		if err == nil {
			if _, err = io.Copy(io.Discard, io.LimitReader(p, 1<<20)); err == nil {
				err = formTail(mr, &fm)
			}
		}
		if fm.name != "" && api.ValidateName("name", fm.name) != nil {
			t.Fatalf("accepted name %q", fm.name)
		}
		if fm.replication != "" && fm.replication != api.ReplicationEager && fm.replication != api.ReplicationOnDemand {
			t.Fatalf("accepted replicationType %q", fm.replication)
		}
		if name := NameFromFile(fm.fileName); api.ValidateName("name", name) != nil {
			t.Fatalf("NameFromFile(%q) = %q, not a valid name", fm.fileName, name)
		}
		var ae *api.Error
		if err != nil && !errors.As(err, &ae) && !errors.Is(err, errClientBody) {
			if p == nil {
				t.Fatalf("form error %v is not an API error", err)
			}
		}
	})
}
