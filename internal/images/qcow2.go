package images

import (
	"encoding/binary"
	"errors"
	"io"
)

// The qcow2 header (docs/interop/qcow2.txt of QEMU), as much as
// checkQCOW2 reads. Big-endian.
const (
	qcow2V2HeaderLen = 72
	qcow2V3HeaderLen = 104
	// Incompatible feature bits: dirty, corrupt, external data file,
	// compression type, extended L2 entries.
	qcow2Dirty         = 1 << 0
	qcow2Corrupt       = 1 << 1
	qcow2DataFile      = 1 << 2
	qcow2Compression   = 1 << 3
	qcow2ExtendedL2    = 1 << 4
	qcow2KnownIncompat = qcow2Dirty | qcow2Corrupt | qcow2DataFile | qcow2Compression | qcow2ExtendedL2
	// Header extension types.
	qcow2ExtEnd          = 0
	qcow2ExtBackingFmt   = 0xe2792aca
	qcow2ExtDataFileName = 0x44415441
	qcow2ExtCrypto       = 0x0537be77
	// Cluster sizes QEMU accepts: 512 bytes to 2 MiB.
	qcow2MinClusterBits = 9
	qcow2MaxClusterBits = 21
	// qcow2MaxExtensions bounds the header extensions walked.
	qcow2MaxExtensions = 1024
)

// qcow2Header is what checkQCOW2 learns of a qcow2 image.
type qcow2Header struct {
	Version     uint32
	ClusterBits uint32
	VirtualSize uint64
}

// checkQCOW2 reads the qcow2 header at the start of r (a file of fileSize
// bytes) and refuses, as InvalidImage naming the problem, an image that
// refers to other files or that Photon cannot vouch for: a bad magic, a
// version other than 2 or 3, a backing file, an external data file (the
// incompatible feature or the header extension naming it), encryption,
// incompatible features it does not know, a corrupt image, a cluster size
// outside 512 bytes..2 MiB, header extensions that do not fit the first
// cluster. label names the image in messages. The whole image is not
// checked (qemu-img info does more); this is the part an attacker needs.
func checkQCOW2(r io.ReaderAt, fileSize int64, label string) (*qcow2Header, error) {
	head := make([]byte, qcow2V3HeaderLen)
	n, err := r.ReadAt(head, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	head = head[:n]
	if len(head) < qcow2V2HeaderLen {
		return nil, badImage("%s: not a qcow2 image: its header is cut short (%d bytes)", label, len(head))
	}
	be := binary.BigEndian
	if string(head[:4]) != "QFI\xfb" {
		return nil, badImage("%s: not a qcow2 image (bad magic)", label)
	}
	h := &qcow2Header{Version: be.Uint32(head[4:]), ClusterBits: be.Uint32(head[20:]), VirtualSize: be.Uint64(head[24:])}
	if h.Version != 2 && h.Version != 3 {
		return nil, badImage("%s: unsupported qcow2 version %d (want 2 or 3)", label, h.Version)
	}
	if off, size := be.Uint64(head[8:]), be.Uint32(head[16:]); off != 0 || size != 0 {
		return nil, badImage("%s refers to a backing file: upload a self-contained disk (qemu-img convert -O qcow2 flattens it)", label)
	}
	if h.ClusterBits < qcow2MinClusterBits || h.ClusterBits > qcow2MaxClusterBits {
		return nil, badImage("%s: qcow2 cluster_bits %d is outside %d..%d", label, h.ClusterBits, qcow2MinClusterBits, qcow2MaxClusterBits)
	}
	if crypt := be.Uint32(head[32:]); crypt != 0 {
		return nil, badImage("%s is an encrypted qcow2 image (method %d): upload an unencrypted disk", label, crypt)
	}
	clusterSize := int64(1) << h.ClusterBits
	extStart := int64(qcow2V2HeaderLen)
	if h.Version == 3 {
		if len(head) < qcow2V3HeaderLen {
			return nil, badImage("%s: not a qcow2 image: its version 3 header is cut short (%d bytes)", label, len(head))
		}
		incompat := be.Uint64(head[72:])
		switch {
		case incompat&qcow2DataFile != 0:
			return nil, badImage("%s refers to an external data file: upload a self-contained disk", label)
		case incompat&qcow2Corrupt != 0:
			return nil, badImage("%s is marked corrupt: repair it with qemu-img check -r all first", label)
		case incompat&^qcow2KnownIncompat != 0:
			return nil, badImage("%s uses qcow2 incompatible features unknown to Photon (%#x)", label, incompat&^qcow2KnownIncompat)
		}
		hlen := int64(be.Uint32(head[100:]))
		if hlen < qcow2V3HeaderLen || hlen%8 != 0 || hlen > clusterSize {
			return nil, badImage("%s: qcow2 header_length %d is invalid", label, hlen)
		}
		extStart = hlen
	}
	// Header extensions: type, length, data padded to 8 bytes, up to the
	// end-of-extensions marker, within the first cluster.
	end := min(clusterSize, fileSize)
	off := extStart
	for i := 0; ; i++ {
		if i >= qcow2MaxExtensions {
			return nil, badImage("%s: more than %d qcow2 header extensions", label, qcow2MaxExtensions)
		}
		if off+8 > end {
			return nil, badImage("%s: qcow2 header extensions run past the first cluster", label)
		}
		var eh [8]byte
		if _, err := r.ReadAt(eh[:], off); err != nil {
			return nil, badImage("%s: reading qcow2 header extensions: %v", label, err)
		}
		typ, length := be.Uint32(eh[:]), int64(be.Uint32(eh[4:]))
		if typ == qcow2ExtEnd {
			break
		}
		switch typ {
		case qcow2ExtDataFileName:
			return nil, badImage("%s refers to an external data file: upload a self-contained disk", label)
		case qcow2ExtBackingFmt:
			return nil, badImage("%s refers to a backing file (it names a backing format): upload a self-contained disk", label)
		case qcow2ExtCrypto:
			return nil, badImage("%s is an encrypted qcow2 image: upload an unencrypted disk", label)
		}
		next := off + 8 + (length+7)&^7
		if next > end {
			return nil, badImage("%s: qcow2 header extension %#x runs past the first cluster", label, typ)
		}
		off = next
	}
	return h, nil
}
