package images

import (
	"archive/tar"
	"bytes"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"hash"
	"io"
	"math/big"
	"os"
	"path"
	"strconv"
	"strings"

	"github.com/photon-cloud/photon/api"
)

// Image setting names carried from an OVF descriptor.
const (
	SettingCPU      = "cpu"
	SettingMemoryMB = "memoryMb"
)

// Limits of what an OVA's small members may hold.
const (
	maxOVFBytes      = 16 << 20
	maxManifestBytes = 1 << 20
)

// CIM resource types (rasd:ResourceType) the OVF reader uses.
const (
	resourceCPU    = "3"
	resourceMemory = "4"
	resourceDisk   = "17"
)

// ovaPlan is what an OVA holds for Photon: its boot disk (as tar members)
// and the OVF's CPU and memory hints.
type ovaPlan struct {
	ovfName  string
	diskFile string   // the OVF's href of the boot disk's file
	members  []string // tar members holding the file, in order (several if chunked)
	gzipped  bool     // ovf:compression="gzip"
	digest   *manifestDigest
	settings []api.ImageSetting
}

// OVF descriptor, as much of it as Photon reads (DSP0243). Elements and
// attributes match by local name, whatever their namespace prefix.
type ovfEnvelope struct {
	Files       []ovfFile       `xml:"References>File"`
	Disks       []ovfDisk       `xml:"DiskSection>Disk"`
	Systems     []ovfSystem     `xml:"VirtualSystem"`
	Collections []ovfCollection `xml:"VirtualSystemCollection"`
}

type ovfFile struct {
	ID          string `xml:"id,attr"`
	Href        string `xml:"href,attr"`
	Compression string `xml:"compression,attr"`
	ChunkSize   string `xml:"chunkSize,attr"`
}

type ovfDisk struct {
	DiskID  string `xml:"diskId,attr"`
	FileRef string `xml:"fileRef,attr"`
}

type ovfCollection struct {
	Systems     []ovfSystem     `xml:"VirtualSystem"`
	Collections []ovfCollection `xml:"VirtualSystemCollection"`
}

type ovfSystem struct {
	ID       string         `xml:"id,attr"`
	Hardware []ovfHWSection `xml:"VirtualHardwareSection"`
}

// ovfHWSection keeps its children in document order: Item, StorageItem,
// EthernetPortItem (and Info, System, which have no resource type).
type ovfHWSection struct {
	Items []ovfItem `xml:",any"`
}

type ovfItem struct {
	XMLName         xml.Name
	ResourceType    string   `xml:"ResourceType"`
	VirtualQuantity string   `xml:"VirtualQuantity"`
	AllocationUnits string   `xml:"AllocationUnits"`
	HostResource    []string `xml:"HostResource"`
}

// firstSystem is the first VirtualSystem in document order, also inside
// collections.
func (e *ovfEnvelope) firstSystem() *ovfSystem {
	if len(e.Systems) > 0 {
		return &e.Systems[0]
	}
	var walk func([]ovfCollection) *ovfSystem
	walk = func(cs []ovfCollection) *ovfSystem {
		for i := range cs {
			if len(cs[i].Systems) > 0 {
				return &cs[i].Systems[0]
			}
			if s := walk(cs[i].Collections); s != nil {
				return s
			}
		}
		return nil
	}
	return walk(e.Collections)
}

// badImage is the error of an image Photon cannot use.
func badImage(format string, args ...any) *api.Error {
	return api.Errorf(CodeInvalidImage, format, args...)
}

// tarMemberName normalizes a tar member's or an href's path.
func tarMemberName(name string) string {
	return strings.TrimPrefix(path.Clean("/"+strings.ReplaceAll(name, "\\", "/")), "/")
}

// memberHref says whether an OVF href names a member of the archive: a
// relative path that stays inside it (no URL, no absolute path, no "..",
// no NUL).
func memberHref(href string) bool {
	h := strings.ReplaceAll(href, "\\", "/")
	if h == "" || strings.Contains(h, "://") || strings.HasPrefix(h, "/") || strings.ContainsRune(h, 0) ||
		(len(h) >= 2 && h[1] == ':') {
		return false
	}
	for _, part := range strings.Split(h, "/") {
		if part == ".." {
			return false
		}
	}
	return true
}

// readOVA reads the OVA at p: it finds the OVF descriptor (the first .ovf
// member), picks the boot disk and reads the CPU and memory hints. Member
// contents other than the descriptor and the manifest are skipped, not read.
func readOVA(p string) (*ovaPlan, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	tr := tar.NewReader(f) // an io.Seeker: tar skips members by seeking
	members := map[string]bool{}
	var ovfName, mfName string
	var ovf, mf []byte
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, badImage("not a valid OVA: reading its tar archive: %v", err)
		}
		if h.Typeflag != tar.TypeReg && h.Typeflag != tar.TypeRegA {
			continue
		}
		name := tarMemberName(h.Name)
		members[name] = true
		lower := strings.ToLower(name)
		switch {
		case ovfName == "" && strings.HasSuffix(lower, ".ovf"):
			if h.Size > maxOVFBytes {
				return nil, badImage("the OVA's OVF descriptor %s is larger than %d bytes", name, maxOVFBytes)
			}
			if ovf, err = io.ReadAll(tr); err != nil {
				return nil, badImage("not a valid OVA: reading %s: %v", name, err)
			}
			ovfName = name
		case mfName == "" && strings.HasSuffix(lower, ".mf") && h.Size <= maxManifestBytes:
			if mf, err = io.ReadAll(tr); err != nil {
				return nil, badImage("not a valid OVA: reading %s: %v", name, err)
			}
			mfName = name
		}
	}
	if ovfName == "" {
		return nil, badImage("not a valid OVA: the tar archive has no OVF descriptor (.ovf)")
	}
	plan, err := parseOVF(ovf, ovfName)
	if err != nil {
		return nil, err
	}
	plan.ovfName = ovfName
	manifest := parseManifest(mf)
	if d := manifest[ovfName]; d != nil && !d.matches(ovf) {
		return nil, badImage("the OVA's manifest %s does not match its descriptor %s (%s)", mfName, ovfName, d.algo)
	}
	member := tarMemberName(plan.diskFile)
	if plan.members == nil {
		if !members[member] {
			return nil, badImage("the OVF descriptor %s names disk file %q, which the OVA does not contain", ovfName, plan.diskFile)
		}
		plan.members = []string{member}
		plan.digest = manifest[plan.diskFile]
	} else {
		// Chunked: href.000000000, href.000000001, ...
		for i := 0; members[fmt.Sprintf("%s.%09d", member, i)]; i++ {
			plan.members = append(plan.members, fmt.Sprintf("%s.%09d", member, i))
		}
		if len(plan.members) == 0 {
			return nil, badImage("the OVF descriptor %s names chunked disk file %q, which the OVA does not contain", ovfName, plan.diskFile)
		}
	}
	return plan, nil
}

// parseOVF reads an OVF descriptor: the boot disk is the first disk drive
// (ResourceType 17) of the first VirtualSystem's hardware, in document
// order, else the DiskSection's first disk; the CPU count and memory come
// from its ResourceType 3 and 4 items.
func parseOVF(b []byte, name string) (*ovaPlan, error) {
	var env ovfEnvelope
	if err := xml.Unmarshal(b, &env); err != nil {
		return nil, badImage("the OVA's OVF descriptor %s is not valid XML: %v", name, err)
	}
	plan := &ovaPlan{settings: []api.ImageSetting{}}
	disks := map[string]*ovfDisk{}
	for i := range env.Disks {
		disks[env.Disks[i].DiskID] = &env.Disks[i]
	}
	files := map[string]*ovfFile{}
	for i := range env.Files {
		files[env.Files[i].ID] = &env.Files[i]
	}
	var items []ovfItem
	if sys := env.firstSystem(); sys != nil && len(sys.Hardware) > 0 {
		items = sys.Hardware[0].Items
	}

	var file *ovfFile
	what := ""
	for _, it := range items {
		if strings.TrimSpace(it.ResourceType) != resourceDisk {
			continue
		}
		for _, hr := range it.HostResource {
			hr = strings.TrimSpace(hr)
			hr = strings.TrimPrefix(strings.TrimPrefix(hr, "ovf:"), "/")
			switch {
			case strings.HasPrefix(hr, "disk/"):
				id := strings.TrimPrefix(hr, "disk/")
				d := disks[id]
				if d == nil {
					return nil, badImage("the OVF descriptor %s names disk %q, which its DiskSection does not list", name, id)
				}
				what = "disk " + id
				if file = files[d.FileRef]; file == nil {
					return nil, badImage("the OVF descriptor %s: boot disk %q has no file in References (fileRef %q)", name, id, d.FileRef)
				}
			case strings.HasPrefix(hr, "file/"):
				id := strings.TrimPrefix(hr, "file/")
				what = "file " + id
				if file = files[id]; file == nil {
					return nil, badImage("the OVF descriptor %s names file %q, which its References do not list", name, id)
				}
			}
			if file != nil {
				break
			}
		}
		if file != nil {
			break
		}
	}
	if file == nil {
		if len(env.Disks) == 0 {
			return nil, badImage("the OVF descriptor %s names no disk", name)
		}
		d := env.Disks[0]
		what = "disk " + d.DiskID
		if file = files[d.FileRef]; file == nil {
			return nil, badImage("the OVF descriptor %s: boot disk %q has no file in References (fileRef %q)", name, d.DiskID, d.FileRef)
		}
	}
	if !memberHref(file.Href) {
		return nil, badImage("the OVF descriptor %s: the file of %s (%q) is not inside the OVA", name, what, file.Href)
	}
	plan.diskFile = file.Href
	switch strings.ToLower(strings.TrimSpace(file.Compression)) {
	case "", "identity":
	case "gzip":
		plan.gzipped = true
	default:
		return nil, badImage("the OVF descriptor %s: disk file %q has unsupported compression %q", name, file.Href, file.Compression)
	}
	if c := strings.TrimSpace(file.ChunkSize); c != "" && c != "0" {
		plan.members = []string{} // chunked: readOVA lists the chunks
	}

	for _, it := range items {
		switch strings.TrimSpace(it.ResourceType) {
		case resourceCPU:
			if n, err := strconv.ParseUint(strings.TrimSpace(it.VirtualQuantity), 10, 32); err == nil && n > 0 && !hasSetting(plan.settings, SettingCPU) {
				plan.settings = append(plan.settings, api.ImageSetting{Name: SettingCPU, DefaultValue: strconv.FormatUint(n, 10)})
			}
		case resourceMemory:
			if mb, ok := memoryMB(it.VirtualQuantity, it.AllocationUnits); ok && !hasSetting(plan.settings, SettingMemoryMB) {
				plan.settings = append(plan.settings, api.ImageSetting{Name: SettingMemoryMB, DefaultValue: strconv.FormatUint(mb, 10)})
			}
		}
	}
	return plan, nil
}

func hasSetting(l []api.ImageSetting, name string) bool {
	for _, s := range l {
		if s.Name == name {
			return true
		}
	}
	return false
}

// memoryMB converts a memory quantity in OVF allocation units ("byte *
// 2^20", "MegaBytes", "byte * 1024", ...; default MiB) to MiB, rounded up.
func memoryMB(quantity, units string) (uint64, bool) {
	q, ok := new(big.Int).SetString(strings.TrimSpace(quantity), 10)
	if !ok || q.Sign() <= 0 {
		return 0, false
	}
	unit, ok := unitBytes(units)
	if !ok {
		return 0, false
	}
	b := q.Mul(q, unit)
	mib := big.NewInt(1 << 20)
	b.Add(b, big.NewInt(1<<20-1))
	b.Quo(b, mib)
	if !b.IsUint64() || b.Sign() == 0 {
		return 0, false
	}
	return b.Uint64(), true
}

// unitBytes is the size in bytes of an OVF allocation unit: a programmatic
// unit (DSP0004 annex C: "byte * 2^20", "byte * 10^6", "byte*1024") or a
// common name ("MegaBytes", "MB", "GiB"). Empty means MiB.
func unitBytes(units string) (*big.Int, bool) {
	u := strings.ToLower(strings.Join(strings.Fields(units), ""))
	switch u {
	case "":
		return big.NewInt(1 << 20), true
	case "kilobytes", "kb", "kib", "kbytes":
		return big.NewInt(1 << 10), true
	case "megabytes", "mb", "mib", "mbytes":
		return big.NewInt(1 << 20), true
	case "gigabytes", "gb", "gib", "gbytes":
		return big.NewInt(1 << 30), true
	case "byte", "bytes":
		return big.NewInt(1), true
	}
	n := big.NewInt(1)
	sawByte := false
	for _, f := range strings.Split(u, "*") {
		switch {
		case f == "byte" || f == "bytes":
			if sawByte {
				return nil, false
			}
			sawByte = true
		case strings.Contains(f, "^"):
			b, e, _ := strings.Cut(f, "^")
			base, err1 := strconv.ParseInt(b, 10, 64)
			exp, err2 := strconv.ParseInt(e, 10, 64)
			if err1 != nil || err2 != nil || base < 1 || exp < 0 || exp > 80 {
				return nil, false
			}
			n.Mul(n, new(big.Int).Exp(big.NewInt(base), big.NewInt(exp), nil))
		default:
			v, err := strconv.ParseInt(f, 10, 64)
			if err != nil || v < 1 {
				return nil, false
			}
			n.Mul(n, big.NewInt(v))
		}
	}
	return n, sawByte
}

// manifestDigest is one line of an OVA manifest: ALGO(file)= hex.
type manifestDigest struct {
	algo string
	sum  []byte
}

func (d *manifestDigest) newHash() hash.Hash {
	switch d.algo {
	case "SHA1":
		return sha1.New()
	case "SHA512":
		return sha512.New()
	}
	return sha256.New()
}

func (d *manifestDigest) matches(b []byte) bool {
	h := d.newHash()
	h.Write(b)
	return bytes.Equal(h.Sum(nil), d.sum)
}

// parseManifest reads an OVA manifest (.mf); lines it does not understand
// are ignored.
func parseManifest(b []byte) map[string]*manifestDigest {
	m := map[string]*manifestDigest{}
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		algo, rest, ok := strings.Cut(line, "(")
		if !ok {
			continue
		}
		file, sum, ok := strings.Cut(rest, ")")
		if !ok {
			continue
		}
		sum = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(sum), "="))
		algo = strings.ToUpper(strings.TrimSpace(algo))
		raw, err := hex.DecodeString(sum)
		if err != nil {
			continue
		}
		switch algo {
		case "SHA1", "SHA256", "SHA512":
			m[tarMemberName(file)] = &manifestDigest{algo: algo, sum: raw}
			m[file] = m[tarMemberName(file)]
		}
	}
	return m
}
