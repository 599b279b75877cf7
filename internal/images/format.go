package images

import "bytes"

// Image formats DetectFormat names.
const (
	FormatQCOW2 = "qcow2"
	FormatVMDK  = "vmdk"
	FormatISO   = "iso"
	FormatVHDX  = "vhdx"
	FormatOVA   = "ova"
	FormatRaw   = "raw"
)

// sniffBytes is how much of the start of an image DetectFormat needs: the
// ISO 9660 volume descriptor sits at 32769.
const sniffBytes = 32769 + 5

// DetectFormat names the format of an image from its first bytes (up to
// sniffBytes): qcow2 ("QFI\xfb"), vmdk (sparse extent "KDMV" or a text
// descriptor), iso (ISO 9660 "CD001" at 32769), vhdx, ova (a tar archive),
// else raw.
func DetectFormat(head []byte) string {
	switch {
	case bytes.HasPrefix(head, []byte("QFI\xfb")):
		return FormatQCOW2
	case bytes.HasPrefix(head, []byte("KDMV")), bytes.HasPrefix(head, []byte("COWD")),
		bytes.HasPrefix(head, []byte("# Disk DescriptorFile")):
		return FormatVMDK
	case len(head) >= 32769+5 && string(head[32769:32769+5]) == "CD001":
		return FormatISO
	case bytes.HasPrefix(head, []byte("vhdxfile")):
		return FormatVHDX
	case len(head) >= 262 && string(head[257:262]) == "ustar":
		return FormatOVA
	}
	return FormatRaw
}
