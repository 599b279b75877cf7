// Package images owns the controller's image store: uploads streamed to
// DATA_DIR/images while their sha256 is computed, the image records in
// etcd, their use counts, and the files agents pull into their per-datastore
// caches (see internal/imagecache).
//
// An upload is multipart/form-data with a file part and the fields name and
// replicationType, in any order. The image record (CREATING) and the task
// (CREATE_IMAGE: steps UPLOAD_IMAGE, CONVERT_IMAGE) are written in one
// transaction when the file part begins; the bytes go to DIR/<id>.part
// through a sha256 hash and are fsynced (UPLOAD_IMAGE completes), the file
// becomes DIR/<id>, and a second transaction makes the image READY with its
// size, sha256 and format (CONVERT_IMAGE completes).
//
// Formats are detected by content (DetectFormat), never by file name. Raw,
// qcow2 (and ISO, VHDX) are stored as uploaded. The formats Photon Platform
// users hold are converted with qemu-img to the qcow2 the hosts download,
// streaming through files, never memory (convert.go):
//
//   - an OVA (a tar archive with an OVF descriptor, ova.go): the descriptor
//     (the first .ovf member) names the boot disk, the first disk drive
//     (ResourceType 17) of the first VirtualSystem's hardware, else the
//     DiskSection's first disk; its file (gunzipped if ovf:compression says
//     so, chunks joined, checked against the .mf manifest if listed) is
//     extracted to DIR/<id>.disk.part and converted. The hardware's CPU
//     count and memory (ResourceType 3 and 4, AllocationUnits such as
//     "byte * 2^20") become the image's settings "cpu" and "memoryMb".
//   - a VMDK: single-file (monolithicSparse, streamOptimized) only; a text
//     descriptor names its extents as other files.
//
// Every disk is vetted before it is stored or converted (vet): a disk that
// refers to other files (a backing file, VMDK extents or a parent, a qcow2
// external data file) is InvalidImage, since a host opening it, or a
// conversion, would read the controller's or the host's files. A qcow2 is
// read by a header parser of its own (qcow2.go) and then by qemu-img info
// with the format pinned; a VMDK by checkVMDK (vmdk.go), then qemu-img
// info; a VHDX by qemu-img info. An OVF's disk file must be inside the
// archive. The image records its VirtualSize (the qcow2's, or the raw or
// ISO file's length); more than Limits.MaxVirtualSize is refused. The
// converted DIR/<id>.qcow2.part is hashed, fsynced and renamed to DIR/<id>;
// the image records its size, sha256 and format qcow2, and keeps the
// uploaded name.
//
// Uploads are bounded (limits.go): a declared Content-Length above
// MaxUploadSize (RequestTooLarge) or above what the project's
// image.capacity quota has left (QuotaError) is refused before the body is
// read, and the stream stops as soon as it passes either; an upload that
// would leave less than Limits.FreeReserve free on the image dir's
// filesystem is ServiceUnavailable, before and while streaming; an OVA's
// gunzipped disk and a conversion's output are bounded by
// Limits.MaxExpansion times the upload (and the quota left). A project's
// image is charged image.capacity (its size in GB) and image (1 COUNT) in
// the transaction that makes it READY, and released in the one that
// deletes it, so usage is what exists.
//
// A failed or aborted upload leaves no file: the image record stays, in
// state ERROR (so the failure is visible and its task listable), and its
// task ends ERROR with the reason, in the step that failed. Input Photon
// cannot use (an OVA without an OVF descriptor or without the disk file it
// names, a disk qemu-img rejects) is InvalidImage with the reason, for
// qemu-img's refusals its message. DELETE removes an ERROR image.
//
// While a controller receives an upload it holds a lease-bound key
// (image-uploads/<id>); a CREATING image with no such key was being received
// by a controller that died, and its task ends ERROR when resumed.
//
// An image in use (Users > 0, counted by AcquireImage and ReleaseImage in the
// transactions of the objects that use it) goes PENDING_DELETE on delete and
// disappears with its last user. Files of deleted or failed images are
// removed by Loop, which follows the image records by watch.
//
// Keys (under store.Prefix):
//
//	images/<id>                   the image (api.Image)
//	image-names/<name>/<id>       name index (names need not be unique)
//	project-images/<project>/<id> project-scoped images
//	image-uploads/<id>            present while an upload is received (leased)
package images
