package netplumb

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// inNS runs fn on an OS thread moved into ns, and moves the thread back
// after: what needs the calling thread's namespace (opening /dev/net/tun,
// /proc/sys/net, binding a socket to a device). The thread is locked for
// the duration; if it cannot be moved back it is left locked so that Go
// retires it.
func inNS(ns netns.NsHandle, fn func() error) error {
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("current netns: %w", err)
	}
	defer orig.Close()
	if err := netns.Set(ns); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("enter netns: %w", err)
	}
	ferr := fn()
	if err := netns.Set(orig); err != nil {
		// Leave the thread locked: it dies with this goroutine.
		return fmt.Errorf("leave netns: %w", err)
	}
	runtime.UnlockOSThread()
	return ferr
}

// createNamedNS makes a new network namespace kept by a bind mount at
// dir/name (as `ip netns add` does at /run/netns/name) and returns a
// handle to it. The calling thread's namespace is unchanged.
func createNamedNS(dir, name string) (netns.NsHandle, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return -1, err
	}
	path := filepath.Join(dir, name)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_RDONLY, 0o444)
	if err != nil {
		return -1, err
	}
	f.Close()
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		os.Remove(path)
		return -1, err
	}
	defer orig.Close()
	if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		os.Remove(path)
		return -1, fmt.Errorf("unshare: %w", err)
	}
	src := fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid())
	merr := unix.Mount(src, path, "none", unix.MS_BIND, "")
	if err := netns.Set(orig); err != nil {
		// This thread is stuck in the new namespace: leave it locked.
		return -1, fmt.Errorf("leave new netns: %w", err)
	}
	runtime.UnlockOSThread()
	if merr != nil {
		os.Remove(path)
		return -1, fmt.Errorf("bind mount %s: %w", path, merr)
	}
	h, err := netns.GetFromPath(path)
	if err != nil {
		deleteNamedNS(dir, name)
		return -1, err
	}
	return h, nil
}

// deleteNamedNS unmounts and removes dir/name; the namespace goes when
// nothing else holds it.
func deleteNamedNS(dir, name string) error {
	path := filepath.Join(dir, name)
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil && err != unix.EINVAL && err != unix.ENOENT {
		return fmt.Errorf("unmount %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
		return err
	}
	return nil
}

// writeSysctl writes value to /proc/sys/<key> as seen from ns.
func writeSysctl(ns netns.NsHandle, key, value string) error {
	return inNS(ns, func() error {
		p := "/proc/sys/" + key
		cur, err := os.ReadFile(p)
		if err == nil && string(cur) == value+"\n" {
			return nil
		}
		return os.WriteFile(p, []byte(value), 0o644)
	})
}
