//go:build linux && amd64

package qemu

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/internal/driver"
	"github.com/photon-cloud/photon/internal/netplumb"
)

// testNet is a network namespace holding a bridge with an address, and
// busybox udhcpd answering on it: what a host's network driver gives a
// VM's tap, in miniature.
type testNet struct {
	ns     string
	bridge string
	gw     string
}

// newTestNet makes the namespace, its bridge (gw/24) and a DHCP server
// handing out static leases (MAC → address), or skips the test, saying
// why, where that is impossible (not root, no ip or busybox).
func newTestNet(t *testing.T, gw string, leases map[string]string) *testNet {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: network namespaces, bridges and taps")
	}
	for _, bin := range []string{"ip", "busybox"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("%s is not installed: %v", bin, err)
		}
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	n := &testNet{ns: "ptq" + hex.EncodeToString(b[:]), bridge: "br0", gw: gw}
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	run("ip", "netns", "add", n.ns)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", n.ns).Run() })
	in := func(args ...string) { t.Helper(); run(append([]string{"ip", "netns", "exec", n.ns}, args...)...) }
	in("ip", "link", "set", "lo", "up")
	in("ip", "link", "add", n.bridge, "type", "bridge")
	in("ip", "addr", "add", gw+"/24", "dev", n.bridge)
	in("ip", "link", "set", n.bridge, "up")

	dir := t.TempDir()
	prefix := gw[:strings.LastIndexByte(gw, '.')]
	conf := fmt.Sprintf("start %[1]s.100\nend %[1]s.120\ninterface %[2]s\nlease_file %[3]s/leases\npidfile %[3]s/pid\n"+
		"option subnet 255.255.255.0\noption router %[4]s\noption mtu 1450\noption lease 600\n", prefix, n.bridge, dir, gw)
	for mac, ip := range leases {
		conf += fmt.Sprintf("static_lease %s %s\n", mac, ip)
	}
	if err := os.WriteFile(filepath.Join(dir, "udhcpd.conf"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	_ = os.WriteFile(filepath.Join(dir, "leases"), nil, 0o600)
	dhcpd := exec.Command("ip", "netns", "exec", n.ns, "busybox", "udhcpd", "-f", filepath.Join(dir, "udhcpd.conf"))
	if err := dhcpd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = dhcpd.Process.Kill(); _ = dhcpd.Wait() })
	return n
}

// addTap makes the tap of a port on the bridge, as the host's network
// driver does.
func (n *testNet) addTap(t *testing.T, portID string) {
	t.Helper()
	tap := netplumb.TapName(portID)
	for _, args := range [][]string{
		{"ip", "tuntap", "add", "dev", tap, "mode", "tap"},
		{"ip", "link", "set", tap, "master", n.bridge},
		{"ip", "link", "set", tap, "up"},
	} {
		if out, err := exec.Command("ip", append([]string{"netns", "exec", n.ns}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
}

// ensureIn runs d.Ensure from a thread in the namespace (QEMU, which
// it starts, opens the tap there), on a thread discarded afterwards.
func (n *testNet) ensureIn(d *Driver, spec driver.VMSpec) (driver.VMStatus, error) {
	type result struct {
		st  driver.VMStatus
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		f, err := os.Open("/var/run/netns/" + n.ns)
		if err != nil {
			ch <- result{err: err}
			return
		}
		defer f.Close()
		if _, _, e := syscall.Syscall(sysSetns, f.Fd(), syscall.CLONE_NEWNET, 0); e != 0 {
			ch <- result{err: fmt.Errorf("setns: %v", e)}
			return
		}
		st, err := d.Ensure(context.Background(), spec)
		ch <- result{st, err}
	}()
	r := <-ch
	return r.st, r.err
}

// TestBootNIC boots the test image with a NIC on a tap on a bridge with a
// DHCP server: the guest loads virtio-net, takes its lease (the address
// the server holds for its MAC, the prefix, the MTU), prints it on the
// console, and pings the address its environment names (the bridge's).
// The seed carries the NIC's network-config. A VM whose tap is missing
// does not boot: the error names the tap, nothing is left behind.
func TestBootNIC(t *testing.T) {
	image := testImage(t)
	const mac, ip, gw = "fa:16:3e:00:10:05", "10.99.0.5", "10.99.0.1"
	n := newTestNet(t, gw, map[string]string{mac: ip})
	d := newTestDriver(t, t.TempDir())
	spec := bootSpec("vm-nic-1", "nic", image)
	spec.NICs = []api.NICDesired{{ID: "port-nic-1", SubnetID: "sn-test", MAC: mac, IP: ip}}
	spec.Subnets = map[string]api.SubnetDesired{"sn-test": {ID: "sn-test", CIDR: "10.99.0.0/24", Gateway: gw, MTU: 1450, DNS: []string{gw}}}
	spec.Environment = map[string]string{"PHOTON_PING": gw, "PHOTON_PING_TRIES": "10"}

	st, err := n.ensureIn(d, spec)
	if err == nil || !strings.Contains(err.Error(), netplumb.TapName("port-nic-1")+" is missing") {
		t.Fatalf("Ensure without the tap: %+v, %v; want an error naming the missing tap", st, err)
	}
	if left := leftovers(d, spec.ID); len(left) > 0 {
		t.Errorf("left behind by the refused boot: %v", left)
	}

	n.addTap(t, "port-nic-1")
	start := time.Now()
	if st, err := n.ensureIn(d, spec); err != nil || st.State != api.VMStarted {
		t.Fatalf("Ensure: %+v, %v", st, err)
	}
	t.Cleanup(func() { _ = d.Delete(context.Background(), spec.ID) })
	waitConsole(t, d, spec.ID, "photon-net: eth0 up "+mac, 60*time.Second)
	line := waitConsole(t, d, spec.ID, "photon-net: eth0 1", 30*time.Second)
	t.Logf("%q %s after Ensure was called", line, time.Since(start).Round(time.Millisecond))
	if !strings.HasSuffix(line, "photon-net: eth0 "+ip+"/24") {
		t.Errorf("console: %q, want eth0's lease %s/24", line, ip)
	}
	line = waitConsole(t, d, spec.ID, "photon-ping:", 30*time.Second)
	t.Logf("%q %s after Ensure was called", line, time.Since(start).Round(time.Millisecond))
	if !strings.HasSuffix(line, "photon-ping: OK "+gw) {
		t.Errorf("console: %q, want the gateway answering", line)
	}
	nc, err := readSeedFile(d.vmDir(spec.ID)+"/seed.iso", "network-config")
	if err != nil || !strings.Contains(string(nc), `macaddress: "`+mac+`"`) || !strings.Contains(string(nc), `"`+ip+`/24"`) {
		t.Errorf("seed network-config = %q, %v", nc, err)
	}
}

// sysSetns is setns(2)'s number on amd64 (the syscall package lacks it;
// the qemu driver runs x86_64 guests on x86_64 hosts).
const sysSetns = 308
