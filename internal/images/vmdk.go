package images

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"os"
)

// Where QEMU's VMDK driver looks: the sparse extent header (512 bytes,
// little-endian), and a descriptor it reads for parentFileNameHint at byte
// 512 of every sparse file, whatever the header says (block/vmdk.c,
// vmdk_parent_open), up to its first NUL.
const (
	vmdkSectorSize     = 512
	vmdkParentDescAt   = 0x200
	vmdkParentDescSize = 2048
	// vmdkMaxDescBytes bounds an embedded descriptor that is read.
	vmdkMaxDescBytes = 1 << 20
)

// checkVMDKHead accepts single-file VMDKs (sparse: monolithicSparse,
// streamOptimized) that name no other file; see checkVMDK.
func checkVMDKHead(p, label string) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	return checkVMDK(f, st.Size(), label)
}

// checkVMDK accepts a VMDK that is one sparse extent ("KDMV", "COWD") and
// names no other file, and refuses as InvalidImage: a text descriptor (its
// extents are separate files, which an upload does not carry), a sparse
// header with no capacity (QEMU then opens its embedded descriptor as a
// descriptor file, whose extents may be any file of the controller), and a
// parent disk named by parentFileNameHint (a backing file). qemu-img info
// checks again (inspect).
func checkVMDK(r io.ReaderAt, size int64, label string) error {
	head := make([]byte, vmdkSectorSize)
	n, err := r.ReadAt(head, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	head = head[:n]
	if n < 4 {
		return badImage("%s: not a VMDK disk: it is %d bytes long", label, n)
	}
	switch string(head[:4]) {
	case "KDMV":
		if n < 64 {
			return badImage("%s: not a VMDK disk: its sparse header is cut short", label)
		}
		le := binary.LittleEndian
		capacity := le.Uint64(head[12:])
		descOff, descSize := le.Uint64(head[28:]), le.Uint64(head[36:])
		if capacity == 0 {
			return badImage("%s has a sparse header without capacity: its descriptor would name separate extent files; upload a single-file VMDK (monolithicSparse or streamOptimized) or an OVA", label)
		}
		if descOff != 0 && descSize != 0 && descOff < uint64(size)/vmdkSectorSize+1 {
			dl := min(descSize*vmdkSectorSize, vmdkMaxDescBytes)
			if err := checkVMDKDescriptor(r, int64(descOff)*vmdkSectorSize, int64(dl), label); err != nil {
				return err
			}
		}
	case "COWD":
	default:
		return badImage("%s is a VMDK descriptor whose extents are separate files: upload a single-file VMDK (monolithicSparse or streamOptimized) or an OVA", label)
	}
	return checkVMDKDescriptor(r, vmdkParentDescAt, vmdkParentDescSize, label)
}

// checkVMDKDescriptor refuses a descriptor at off (at most n bytes, up to
// its first NUL) that names a parent disk.
func checkVMDKDescriptor(r io.ReaderAt, off, n int64, label string) error {
	b := make([]byte, n)
	got, err := r.ReadAt(b, off)
	if err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	b = b[:got]
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	if parentHint(b) {
		return badImage("%s refers to a backing file (its parentFileNameHint names a parent disk): upload a self-contained disk", label)
	}
	return nil
}

// parentHint says whether a VMDK descriptor names a parent file as QEMU
// reads it: the text after the first "parentFileNameHint" and two more
// bytes, up to a '"', is the name; QEMU fails on a missing quote.
func parentHint(desc []byte) bool {
	const key = "parentFileNameHint"
	i := bytes.Index(desc, []byte(key))
	if i < 0 {
		return false
	}
	rest := desc[min(len(desc), i+len(key)+2):]
	j := bytes.IndexByte(rest, '"')
	return j != 0 // a name, or no closing quote (refused either way)
}
