// Package qemuimg owns what Photon reads of `qemu-img info --output=json`
// and the one rule both the controller's image store and the hosts' QEMU
// driver apply to it: an image must be self-contained, naming no other
// file (a backing file, a qcow2 external data file, a VMDK extent
// elsewhere), since QEMU would open that file for the guest.
package qemuimg

import (
	"encoding/json"
	"fmt"
	"path/filepath"
)

// Info is what `qemu-img info --output=json -f FORMAT` says of a file.
// With the format pinned qemu-img opens no backing file.
type Info struct {
	Format          string `json:"format"`
	VirtualSize     int64  `json:"virtual-size"`
	BackingFilename string `json:"backing-filename"`
	// BackingFormat is the format an overlay names for its backing file.
	BackingFormat  string `json:"backing-filename-format"`
	FormatSpecific struct {
		Type string `json:"type"`
		Data struct {
			// DataFile: a qcow2's external data file.
			DataFile string `json:"data-file"`
			// Extents: a VMDK's extent files.
			Extents []struct {
				Filename string `json:"filename"`
			} `json:"extents"`
		} `json:"data"`
	} `json:"format-specific"`
}

// Parse decodes qemu-img info's JSON answer.
func Parse(b []byte) (*Info, error) {
	var info Info
	if err := json.Unmarshal(b, &info); err != nil {
		return nil, fmt.Errorf("qemu-img info: %w", err)
	}
	return &info, nil
}

// Kinds of other files an image may name (Foreign's answer).
const (
	BackingFile = "a backing file"
	DataFile    = "an external data file"
	Extent      = "an extent in another file"
)

// Foreign says which other file the image at path names, if any: the
// kind (BackingFile, DataFile, Extent) and the name as the image has it;
// "" if the image is self-contained.
func (i *Info) Foreign(path string) (kind, name string) {
	if i.BackingFilename != "" {
		return BackingFile, i.BackingFilename
	}
	if f := i.FormatSpecific.Data.DataFile; f != "" {
		return DataFile, f
	}
	for _, e := range i.FormatSpecific.Data.Extents {
		if filepath.Clean(e.Filename) != filepath.Clean(path) {
			return Extent, e.Filename
		}
	}
	return "", ""
}
