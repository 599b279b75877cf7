package store_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/photon-cloud/photon/internal/photontest"
	"github.com/photon-cloud/photon/internal/store"
)

// listeningTCP lists this process's TCP sockets in LISTEN state, as
// "address:port" (from /proc/net/tcp{,6} and the inodes of /proc/self/fd).
func listeningTCP(t *testing.T) []string {
	t.Helper()
	ours := map[string]bool{}
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	for _, fd := range fds {
		l, err := os.Readlink("/proc/self/fd/" + fd.Name())
		if inode, ok := strings.CutPrefix(l, "socket:["); err == nil && ok {
			ours[strings.TrimSuffix(inode, "]")] = true
		}
	}
	var out []string
	for _, file := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		f, err := os.Open(file)
		if err != nil {
			continue
		}
		s := bufio.NewScanner(f)
		s.Scan() // header
		for s.Scan() {
			// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
			fields := strings.Fields(s.Text())
			if len(fields) < 10 || fields[3] != "0A" || !ours[fields[9]] {
				continue
			}
			out = append(out, file+" "+fields[1])
		}
		f.Close()
	}
	return out
}

// TestEmbeddedOnlyItsUser: the embedded etcd listens on no TCP port
// (issue 26: any local user reached it on 127.0.0.1 and became
// system-admin); its client socket is 0600 in a 0700 directory, a client
// of the same user works through Endpoint, and another local user
// (nobody) is refused.
func TestEmbeddedOnlyItsUser(t *testing.T) {
	before := listeningTCP(t)
	// A parent any user can traverse: only the modes StartEmbedded
	// sets keep other users out.
	parent, err := os.MkdirTemp("", "photon-embed-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(parent) })
	if err := os.Chmod(parent, 0o755); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(parent, "etcd")
	e, err := store.StartEmbedded(context.Background(), dir, photontest.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	if after := listeningTCP(t); len(after) > len(before) {
		t.Errorf("TCP listeners: %v before the embedded etcd, %v after; want none new", before, after)
	}
	sock, ok := strings.CutPrefix(e.Endpoint, "unix://")
	if !ok {
		t.Fatalf("Endpoint %q: want a unix socket", e.Endpoint)
	}
	for _, c := range []struct {
		path string
		want os.FileMode
	}{{sock, 0o600}, {filepath.Dir(sock), 0o700}, {dir, 0o700}} {
		fi, err := os.Stat(c.path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != c.want {
			t.Errorf("%s: mode %v, want %v", c.path, fi.Mode().Perm(), c.want)
		}
	}

	// The same user, through the endpoint (as tools and other controllers).
	cl, err := clientv3.New(clientv3.Config{Endpoints: []string{e.Endpoint}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := cl.Put(ctx, "/k", "v"); err != nil {
		t.Fatalf("put through %s: %v", e.Endpoint, err)
	}

	// Another local user.
	if os.Geteuid() != 0 {
		t.Skip("not root: cannot run a client as another user")
	}
	out, err := asNobody(t, "TestEmbeddedHelperDial", "PHOTON_DIAL_ETCD="+e.Endpoint)
	t.Logf("as nobody: %s (%v)", out, err)
	if err != nil {
		t.Fatalf("dial helper as nobody: %v: %s", err, out)
	}
	if !strings.Contains(out, "refused:") || !strings.Contains(out, "permission denied") {
		t.Errorf("nobody's client: %q; want permission denied", out)
	}
}

// asNobody runs this test binary's test named run as uid/gid 65534 with
// env, from a copy nobody can execute, and returns its output.
func asNobody(t *testing.T, run string, env ...string) (string, error) {
	t.Helper()
	bin, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "photon-nobody-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cp := filepath.Join(dir, "store.test")
	src, err := os.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(cp, os.O_WRONLY|os.O_CREATE, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	dst.Close()
	cmd := exec.Command(cp, "-test.run=^"+run+"$", "-test.v")
	cmd.Dir = dir
	cmd.Env = append([]string{"PATH=/usr/bin:/bin", "HOME=" + dir}, env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	b, err := cmd.CombinedOutput()
	return string(b), err
}

// TestEmbeddedHelperDial is run by TestEmbeddedOnlyItsUser as another
// user: it tries the endpoint and prints what happened.
func TestEmbeddedHelperDial(t *testing.T) {
	ep := os.Getenv("PHOTON_DIAL_ETCD")
	if ep == "" {
		t.Skip("helper of TestEmbeddedOnlyItsUser")
	}
	fmt.Println("uid", strconv.Itoa(os.Getuid()))
	c, err := net.DialTimeout("unix", strings.TrimPrefix(ep, "unix://"), 5*time.Second)
	if err != nil {
		fmt.Println("refused:", err)
		return
	}
	c.Close()
	fmt.Println("connected")
}
