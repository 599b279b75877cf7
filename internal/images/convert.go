package images

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/photon-cloud/photon/api"
)

// CodeInvalidImage ends the task of an upload Photon cannot use: an OVA
// without an OVF descriptor or without the disk it names, a VMDK qemu-img
// rejects (its message says why), a disk that refers to files outside
// itself.
const CodeInvalidImage = "InvalidImage"

// StepConvertImage is CREATE_IMAGE's second step: an OVA's boot disk or a
// VMDK becomes the qcow2 the hosts download. Raw and qcow2 images (and the
// formats Photon does not convert) pass unchanged.
const StepConvertImage = "CONVERT_IMAGE"

// DefaultConvertTimeout bounds one image's conversion unless
// Service.ConvertTimeout says otherwise.
const DefaultConvertTimeout = time.Hour

// converted is what prepare made of an upload.
type converted struct {
	size         int64
	sum, format  string
	sourceFormat string // what was uploaded, e.g. "ova"
	settings     []api.ImageSetting
}

// needsConversion says whether an uploaded format becomes qcow2.
func needsConversion(format string) bool { return format == FormatOVA || format == FormatVMDK }

// tempPath is a scratch file of image id's upload, DIR/<id>.<what>.part;
// removeFiles and the janitor know them by their id prefix.
func (s *Service) tempPath(id, what string) string {
	return filepath.Join(s.dir, id+"."+what+".part")
}

// tempKinds are the scratch files an upload may leave (see tempPath).
var tempKinds = []string{"disk", "qcow2"}

// prepare makes the stored upload DIR/<id>.part the image file DIR/<id>:
// as is (raw, qcow2, ...), or converted to qcow2 (OVA, VMDK) with the
// size, sha256 and settings of the result. Conversion failures that are the
// image's fault are *api.Error InvalidImage with the reason; nothing but
// DIR/<id> is left on success, and the caller removes everything on failure.
func (s *Service) prepare(ctx context.Context, id, label string, up converted) (converted, error) {
	up.sourceFormat = up.format
	if !needsConversion(up.format) {
		if err := os.Rename(s.partPath(id), s.Path(id)); err != nil {
			return up, err
		}
		s.syncDir()
		return up, nil
	}
	timeout := s.ConvertTimeout
	if timeout <= 0 {
		timeout = DefaultConvertTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	src, srcFormat, srcLabel := s.partPath(id), FormatVMDK, label
	out := converted{sourceFormat: up.format, format: FormatQCOW2, settings: []api.ImageSetting{}}
	if up.format == FormatOVA {
		plan, err := readOVA(src)
		if err != nil {
			return out, err
		}
		out.settings = plan.settings
		disk := s.tempPath(id, "disk")
		if err := s.extractDisk(src, plan, disk); err != nil {
			return out, err
		}
		src, srcLabel = disk, plan.diskFile
		if srcFormat, err = diskFormat(disk, plan.diskFile); err != nil {
			return out, err
		}
	} else if err := checkVMDKHead(src, label); err != nil {
		return out, err
	}
	dst := s.tempPath(id, "qcow2")
	labels := strings.NewReplacer(src, srcLabel, dst, "the converted image", s.dir+string(filepath.Separator), "")
	if err := s.inspect(ctx, src, srcFormat, srcLabel, labels); err != nil {
		return out, err
	}
	if _, err := s.qemuImg(ctx, labels, "convert", "-q", "-f", srcFormat, "-O", FormatQCOW2, src, dst); err != nil {
		return out, err
	}
	size, sum, err := hashSync(dst)
	if err != nil {
		return out, err
	}
	out.size, out.sum = size, sum
	for _, p := range []string{s.partPath(id), s.tempPath(id, "disk")} {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return out, err
		}
	}
	if err := os.Rename(dst, s.Path(id)); err != nil {
		return out, err
	}
	s.syncDir()
	return out, nil
}

func (s *Service) syncDir() {
	if d, err := os.Open(s.dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}

// checkVMDKHead accepts single-file VMDKs (sparse: monolithicSparse,
// streamOptimized) only: a text descriptor names its extents as other
// files, which an upload does not carry.
func checkVMDKHead(p, label string) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	head := make([]byte, 4)
	if _, err := io.ReadFull(f, head); err != nil {
		return badImage("%s: not a VMDK disk: %v", label, err)
	}
	if string(head) != "KDMV" && string(head) != "COWD" {
		return badImage("%s is a VMDK descriptor whose extents are separate files: upload a single-file VMDK (monolithicSparse or streamOptimized) or an OVA", label)
	}
	return nil
}

// diskFormat names the qemu-img format of an OVA's extracted boot disk, by
// content.
func diskFormat(p, label string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	head := make([]byte, sniffBytes)
	n, err := io.ReadFull(f, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return "", err
	}
	if n == 0 {
		return "", badImage("the OVA's disk file %s is empty", label)
	}
	switch format := DetectFormat(head[:n]); format {
	case FormatVMDK:
		return format, checkVMDKHead(p, label)
	case FormatQCOW2, FormatVHDX:
		return format, nil
	case FormatOVA:
		return "", badImage("the OVA's disk file %s is a tar archive, not a disk", label)
	}
	return FormatRaw, nil
}

// extractDisk copies the boot disk's members of the OVA at ova to out,
// in one pass, gunzipping it if compressed and checking it against the
// manifest if listed there.
func (s *Service) extractDisk(ova string, plan *ovaPlan, out string) error {
	f, err := os.Open(ova)
	if err != nil {
		return err
	}
	defer f.Close()
	pr, pw := io.Pipe()
	written := make(chan struct{})
	go func() {
		defer close(written)
		pw.CloseWithError(writeMembers(f, plan, pw))
	}()
	defer func() {
		pr.Close()
		<-written
	}()
	var r io.Reader = pr
	if plan.gzipped {
		zr, err := gzip.NewReader(pr)
		if err != nil {
			return badImage("the OVA's disk file %s is not gzip-compressed as its OVF says: %v", plan.diskFile, err)
		}
		defer zr.Close()
		r = zr
	}
	w, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	defer w.Close()
	limit := s.MaxUploadSize
	if limit <= 0 {
		limit = DefaultMaxUploadSize
	}
	n, err := io.CopyBuffer(w, io.LimitReader(r, limit+1), make([]byte, 1<<20))
	if err != nil {
		var ae *api.Error
		switch {
		case errors.As(err, &ae):
			return ae
		case errors.Is(err, errOVARead), !plan.gzipped:
			return err
		}
		return badImage("the OVA's disk file %s: gunzip: %v", plan.diskFile, err)
	}
	if n > limit {
		return badImage("the OVA's disk file %s is larger than %d bytes", plan.diskFile, limit)
	}
	return w.Close()
}

// errOVARead tags read failures of the stored OVA (the controller's, not the image's).
var errOVARead = errors.New("reading the stored OVA")

// writeMembers writes the plan's members, in order, from the tar at r to w.
func writeMembers(r io.Reader, plan *ovaPlan, w io.Writer) error {
	var h hash.Hash
	if plan.digest != nil {
		h = plan.digest.newHash()
		w = io.MultiWriter(w, h)
	}
	want := map[string]int{}
	for i, m := range plan.members {
		want[m] = i
	}
	next := 0
	tr := tar.NewReader(r)
	for next < len(plan.members) {
		hd, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return badImage("not a valid OVA: reading its tar archive: %v", err)
		}
		if hd.Typeflag != tar.TypeReg && hd.Typeflag != tar.TypeRegA {
			continue
		}
		i, ok := want[tarMemberName(hd.Name)]
		if !ok || i < next {
			continue
		}
		if i > next {
			return badImage("the OVA's disk file %s: chunk %s comes before %s", plan.diskFile, plan.members[i], plan.members[next])
		}
		if _, err := io.Copy(w, tr); err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) {
				return badImage("not a valid OVA: the archive ends within %s", plan.members[i])
			}
			return fmt.Errorf("%w: %w", errOVARead, err)
		}
		next++
	}
	if next < len(plan.members) {
		return badImage("the OVA's disk file %s is missing from the archive", plan.members[next])
	}
	if h != nil && !bytes.Equal(h.Sum(nil), plan.digest.sum) {
		return badImage("the OVA's disk file %s does not match its manifest (%s)", plan.diskFile, plan.digest.algo)
	}
	return nil
}

// qemuImgInfo is what inspect reads of qemu-img info.
type qemuImgInfo struct {
	Format          string `json:"format"`
	VirtualSize     int64  `json:"virtual-size"`
	BackingFilename string `json:"backing-filename"`
	FormatSpecific  struct {
		Type string `json:"type"`
		Data struct {
			DataFile string `json:"data-file"`
			Extents  []struct {
				Filename string `json:"filename"`
			} `json:"extents"`
		} `json:"data"`
	} `json:"format-specific"`
}

// inspect refuses a disk that qemu-img cannot open or that refers to other
// files (a backing file, VMDK extents, a qcow2 data file): converting it
// would read files of the controller into the image.
func (s *Service) inspect(ctx context.Context, p, format, label string, labels *strings.Replacer) error {
	b, err := s.qemuImg(ctx, labels, "info", "--output=json", "-f", format, p)
	if err != nil {
		return err
	}
	var info qemuImgInfo
	if err := json.Unmarshal(b, &info); err != nil {
		return fmt.Errorf("qemu-img info of %s: %w", p, err)
	}
	if info.BackingFilename != "" {
		return badImage("%s refers to a backing file (%s): upload a self-contained disk", label, filepath.Base(info.BackingFilename))
	}
	if info.FormatSpecific.Data.DataFile != "" {
		return badImage("%s refers to an external data file: upload a self-contained disk", label)
	}
	for _, e := range info.FormatSpecific.Data.Extents {
		if e.Filename != p {
			return badImage("%s refers to another file as an extent (%s): upload a single-file VMDK", label, filepath.Base(e.Filename))
		}
	}
	if info.VirtualSize <= 0 {
		return badImage("%s is an empty disk", label)
	}
	return nil
}

// qemuImg runs qemu-img. A refusal is InvalidImage with qemu-img's message
// (paths of the controller replaced by labels); a missing qemu-img is
// ServiceUnavailable.
func (s *Service) qemuImg(ctx context.Context, labels *strings.Replacer, args ...string) ([]byte, error) {
	bin := s.QEMUImg
	if bin == "" {
		bin = "qemu-img"
	}
	path, err := exec.LookPath(bin)
	if err != nil {
		return nil, api.Errorf(api.CodeUnavailable, "converting this image needs qemu-img on the controller: %v", err)
	}
	cmd := exec.CommandContext(ctx, path, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("qemu-img %s: %w", args[0], ctx.Err())
		}
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = err.Error()
		}
		return nil, badImage("%s", labels.Replace(msg))
	}
	return stdout.Bytes(), nil
}

// hashSync returns the size and hex sha256 of the file at p and syncs it to disk.
func hashSync(p string) (int64, string, error) {
	f, err := os.Open(p)
	if err != nil {
		return 0, "", err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.CopyBuffer(h, f, make([]byte, 1<<20))
	if err != nil {
		return 0, "", err
	}
	if err := f.Sync(); err != nil {
		return 0, "", err
	}
	return n, hex.EncodeToString(h.Sum(nil)), nil
}
