// Package images owns the controller's image store: uploads streamed to
// DATA_DIR/images while their sha256 is computed, the image records in
// etcd, their use counts, and the files agents pull into their per-datastore
// caches (see internal/imagecache).
//
// An upload is multipart/form-data with a file part and the fields name and
// replicationType, in any order. The image record (CREATING) and the task
// (CREATE_IMAGE, one step UPLOAD_IMAGE) are written in one transaction when
// the file part begins; the bytes go to DIR/<id>.part through a sha256 hash,
// are fsynced and renamed to DIR/<id>, and a second transaction makes the
// image READY with its size, sha256 and format. The task's step completes
// once the image is READY.
//
// A failed or aborted upload leaves no file: the image record stays, in
// state ERROR (so the failure is visible and its task listable), and its
// task ends ERROR with the reason. DELETE removes an ERROR image.
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
