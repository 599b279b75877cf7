package images

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/internal/qemuimg"
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
	virtualSize  int64 // the size of the disk the image holds
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
// size, sha256 and settings of the result. Every disk is vetted first
// (vet): one that refers to other files or holds a disk larger than
// Limits.MaxVirtualSize is InvalidImage. What an OVA's disk extracts to and
// what a conversion writes are bounded by Limits.MaxExpansion times the
// upload, by quotaRoom bytes (-1: no quota) and by the free-space reserve.
// Conversion failures that are the image's fault are *api.Error
// InvalidImage with the reason; nothing but DIR/<id> is left on success,
// and the caller removes everything on failure.
func (s *Service) prepare(ctx context.Context, id, label string, up converted, quotaRoom int64) (converted, error) {
	up.sourceFormat = up.format
	labels := strings.NewReplacer(s.partPath(id), label, s.tempPath(id, "qcow2"), "the converted image",
		s.dir+string(filepath.Separator), "")
	if !needsConversion(up.format) {
		vsize, err := s.vet(ctx, s.partPath(id), up.format, label, labels)
		if err != nil {
			return up, err
		}
		up.virtualSize = vsize
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
	stepBudget := func(what string) *budget { return s.stepBudget(what, up.size, quotaRoom) }
	src, srcFormat, srcLabel := s.partPath(id), FormatVMDK, label
	out := converted{sourceFormat: up.format, format: FormatQCOW2, settings: []api.ImageSetting{}}
	if up.format == FormatOVA {
		plan, err := readOVA(src)
		if err != nil {
			return out, err
		}
		out.settings = plan.settings
		disk := s.tempPath(id, "disk")
		if err := s.extractDisk(src, plan, disk, stepBudget("the OVA's disk file "+plan.diskFile)); err != nil {
			return out, err
		}
		src, srcLabel = disk, plan.diskFile
		labels = strings.NewReplacer(disk, srcLabel, s.tempPath(id, "qcow2"), "the converted image", s.dir+string(filepath.Separator), "")
		if srcFormat, err = diskFormat(disk, plan.diskFile); err != nil {
			return out, err
		}
	}
	if _, err := s.vet(ctx, src, srcFormat, srcLabel, labels); err != nil {
		return out, err
	}
	dst := s.tempPath(id, "qcow2")
	if err := s.convert(ctx, labels, src, srcFormat, dst, stepBudget("the converted image")); err != nil {
		return out, err
	}
	size, sum, err := hashSync(dst)
	if err != nil {
		return out, err
	}
	out.size, out.sum = size, sum
	f, err := os.Open(dst)
	if err != nil {
		return out, err
	}
	h, err := checkQCOW2(f, size, "the converted image")
	f.Close()
	if err != nil {
		return out, err
	}
	out.virtualSize = int64(h.VirtualSize)
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

// stepBudget is what one step of a conversion (what: the file it writes)
// may write: MaxExpansion times the uploaded bytes, MaxUploadSize, the
// project's image quota left (quotaRoom, -1: none).
func (s *Service) stepBudget(what string, uploaded, quotaRoom int64) *budget {
	b := &budget{s: s, limit: s.maxUpload(), over: func(int64) error {
		return badImage("%s would be larger than %d bytes, the controller's limit", what, s.maxUpload())
	}}
	if exp := s.maxExpansion(); uploaded <= math.MaxInt64/exp {
		b.bound(max(uploaded, 1)*exp, func(int64) error {
			return badImage("%s would be more than %d times as large as the upload (%d bytes): refused as a decompression bomb",
				what, exp, uploaded)
		})
	}
	b.bound(quotaRoom, func(n int64) error { return quotaShort(n, quotaRoom) })
	return b
}

// vet refuses a disk Photon will not store or convert, and returns the
// size of the disk it holds. A qcow2 is read twice: by checkQCOW2 (no
// backing file, no external data file, known features), then, if that
// passed, by qemu-img info with the format pinned (inspect); a VMDK by
// checkVMDK, then inspect; a VHDX by inspect. Raw and ISO images hold
// their own length and name nothing. A disk larger than
// Limits.MaxVirtualSize is InvalidImage.
func (s *Service) vet(ctx context.Context, p, format, label string, labels *strings.Replacer) (int64, error) {
	f, err := os.Open(p)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	vsize := st.Size()
	switch format {
	case FormatQCOW2:
		h, err := checkQCOW2(f, st.Size(), label)
		if err != nil {
			return 0, err
		}
		if h.VirtualSize > uint64(s.maxVirtualSize()) {
			return 0, tooLarge(label, h.VirtualSize, s.maxVirtualSize())
		}
		info, err := s.inspect(ctx, p, format, label, labels)
		if err != nil {
			return 0, err
		}
		if uint64(info.VirtualSize) != h.VirtualSize {
			return 0, badImage("%s: qemu-img reads a virtual size of %d bytes, its header says %d", label, info.VirtualSize, h.VirtualSize)
		}
		vsize = info.VirtualSize
	case FormatVMDK:
		if err := checkVMDK(f, st.Size(), label); err != nil {
			return 0, err
		}
		fallthrough
	case FormatVHDX:
		info, err := s.inspect(ctx, p, format, label, labels)
		if err != nil {
			return 0, err
		}
		vsize = info.VirtualSize
	}
	if vsize > s.maxVirtualSize() {
		return 0, tooLarge(label, uint64(vsize), s.maxVirtualSize())
	}
	return vsize, nil
}

func tooLarge(label string, vsize uint64, limit int64) *api.Error {
	return badImage("%s holds a disk of %d bytes, more than the %d bytes this controller accepts", label, vsize, limit)
}

// convert runs qemu-img convert of src (format pinned) to a qcow2 at dst,
// stopped as soon as dst passes the budget (polled) or the filesystem's
// free space falls below the reserve.
func (s *Service) convert(ctx context.Context, labels *strings.Replacer, src, srcFormat, dst string, b *budget) error {
	cctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		t := time.NewTicker(convertPoll)
		defer t.Stop()
		for {
			select {
			case <-cctx.Done():
				return
			case <-t.C:
			}
			st, err := os.Stat(dst)
			if err != nil {
				continue
			}
			// Allocated bytes, not the length: a sparse output costs what it holds.
			used := st.Size()
			if sys, ok := st.Sys().(*syscall.Stat_t); ok {
				used = min(used, sys.Blocks*512)
			}
			if used > b.limit {
				cancel(b.over(used))
				return
			}
			if err := s.checkFree(0); err != nil {
				cancel(err)
				return
			}
		}
	}()
	_, err := s.qemuImg(cctx, labels, "convert", "-q", "-f", srcFormat, "-O", FormatQCOW2, src, dst)
	cancel(nil)
	<-watched
	if cause := context.Cause(cctx); cause != nil && !errors.Is(cause, context.Canceled) && !errors.Is(cause, context.DeadlineExceeded) {
		return cause
	}
	return err
}

// convertPoll is how often convert looks at its output.
var convertPoll = 100 * time.Millisecond

func (s *Service) syncDir() {
	if d, err := os.Open(s.dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
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
func (s *Service) extractDisk(ova string, plan *ovaPlan, out string, b *budget) error {
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
	g := b.writer()
	if _, err := io.CopyBuffer(io.MultiWriter(g, w), r, make([]byte, 1<<20)); err != nil {
		var ae *api.Error
		switch {
		case errors.As(err, &ae):
			return ae
		case errors.Is(err, errOVARead), !plan.gzipped:
			return err
		}
		return badImage("the OVA's disk file %s: gunzip: %v", plan.diskFile, err)
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

// inspect refuses a disk that qemu-img cannot open (with its format
// pinned) or that refers to other files (a backing file, VMDK extents, a
// qcow2 data file): converting it would read files of the controller into
// the image, and a host would open them. It returns what qemu-img read.
func (s *Service) inspect(ctx context.Context, p, format, label string, labels *strings.Replacer) (*qemuimg.Info, error) {
	b, err := s.qemuImg(ctx, labels, "info", "--output=json", "-f", format, p)
	if err != nil {
		return nil, err
	}
	info, err := qemuimg.Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	if err := checkInfo(info, p, label); err != nil {
		return nil, err
	}
	return info, nil
}

// checkInfo refuses what inspect refuses of qemu-img's answer about the
// disk at p: another file named, or no content.
func checkInfo(info *qemuimg.Info, p, label string) error {
	if kind, name := info.Foreign(p); kind != "" {
		return badImage("%s refers to %s (%s): upload a self-contained disk", label, kind, filepath.Base(name))
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
