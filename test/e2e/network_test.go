package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/client"
	"github.com/photon-cloud/photon/internal/photontest"
	"golang.org/x/sys/unix"
)

// The multi-host network (198.51.100.0/24, TEST-NET-2: 192.0.2.0/24 may
// be the machine's own): a "fabric" namespace holds the physical
// bridge; three host namespaces and an "outside" one hang off it by a
// veth each (their uplink, which is also the underlay), and the root
// namespace by one more, where the controller listens.
const (
	controlIP  = "198.51.100.254"
	outsideIP  = "198.51.100.100"
	floatRange = "198.51.100.200-198.51.100.209"
)

func hostIP(i int) string { return fmt.Sprintf("198.51.100.%d", 11+i) }

// netTest is the test's namespaces and agents.
type netTest struct {
	t      *testing.T
	prefix string // of the namespaces' names (in /run/netns)
}

func (n *netTest) ns(name string) string { return n.prefix + "-" + name }

// ip runs ip(8) (the test builds its "physical" network with it; the
// product does not shell out).
func (n *netTest) ip(args ...string) {
	n.t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		n.t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// in runs a command in namespace name.
func (n *netTest) in(name string, args ...string) *exec.Cmd {
	return exec.Command("nsenter", append([]string{"--net=/run/netns/" + n.ns(name), "--"}, args...)...)
}

func requireNetE2E(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: network namespaces, bridges, VXLAN and nftables")
	}
	for _, b := range []string{"ip", "nsenter", "busybox", "qemu-system-x86_64", "qemu-img"} {
		if _, err := exec.LookPath(b); err != nil {
			t.Skipf("needs %s: %v", b, err)
		}
	}
}

// lockNetE2E serializes the multi-host tests of every worktree on the
// machine: they use the same addresses (controlIP in the root namespace).
func lockNetE2E(t *testing.T) {
	f, err := os.OpenFile(filepath.Join(os.TempDir(), "photon-e2e-net.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
}

// testImage is scripts/build-test-image.sh's image, built once per
// version of the script (kept in the temporary directory, as the qemu
// driver's tests do).
func testImage(t *testing.T) string {
	script, _ := filepath.Abs("../../scripts/build-test-image.sh")
	b, err := os.ReadFile(script)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	out := filepath.Join(os.TempDir(), "photon-test-image-"+hex.EncodeToString(sum[:6])+".qcow2")
	if _, err := os.Stat(out); err == nil {
		return out
	}
	tmp := fmt.Sprintf("%s.%d.qcow2", strings.TrimSuffix(out, ".qcow2"), os.Getpid())
	if b, err := exec.Command("bash", script, tmp).CombinedOutput(); err != nil {
		t.Fatalf("build-test-image.sh: %v\n%s", err, b)
	}
	if err := os.Rename(tmp, out); err != nil {
		t.Fatal(err)
	}
	return out
}

// fabric builds the namespaces and links.
func (n *netTest) fabric() {
	t := n.t
	names := []string{"fab", "h0", "h1", "h2", "out"}
	for _, name := range names {
		n.ip("netns", "add", n.ns(name))
		t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", n.ns(name)).Run() })
		n.ip("-n", n.ns(name), "link", "set", "lo", "up")
	}
	n.ip("-n", n.ns("fab"), "link", "add", "br0", "type", "bridge")
	n.ip("-n", n.ns("fab"), "link", "set", "br0", "up")
	attach := func(name, addr string) {
		port := "p-" + name
		n.ip("-n", n.ns("fab"), "link", "add", port, "type", "veth", "peer", "name", "uplink", "netns", n.ns(name))
		n.ip("-n", n.ns("fab"), "link", "set", port, "master", "br0", "up")
		n.ip("-n", n.ns(name), "addr", "add", addr+"/24", "dev", "uplink")
		n.ip("-n", n.ns(name), "link", "set", "uplink", "up")
	}
	for i := range 3 {
		attach(fmt.Sprintf("h%d", i), hostIP(i))
	}
	attach("out", outsideIP)
	// The controller's link, in the root namespace.
	root := n.prefix + "c"
	n.ip("link", "add", root, "type", "veth", "peer", "name", "p-ctl", "netns", n.ns("fab"))
	t.Cleanup(func() { _ = exec.Command("ip", "link", "del", root).Run() })
	n.ip("-n", n.ns("fab"), "link", "set", "p-ctl", "master", "br0", "up")
	n.ip("addr", "add", controlIP+"/24", "dev", root)
	n.ip("link", "set", root, "up")
}

// agent is a `photond agent` in a host namespace.
type agent struct {
	cmd   *exec.Cmd
	out   *lockedBuffer // this run's output
	done  chan struct{} // closed when this run exits
	nsDir string        // its --router-netns-dir
	start func()        // runs it (again)
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (n *netTest) startAgent(c *photontest.Controller, url string, i int, token string) *agent {
	t := n.t
	dir := t.TempDir()
	nsDir := filepath.Join(dir, "netns")
	name := fmt.Sprintf("h%d", i)
	a := &agent{nsDir: nsDir}
	a.start = func() {
		a.out, a.done = &lockedBuffer{}, make(chan struct{})
		a.cmd = n.in(name, photontest.Binary(t, "photond"), "agent", "--controller", url, "--ca-cert", c.CACert,
			"--data-dir", dir, "--join-token", token, "--address", hostIP(i), "--heartbeat", "1s",
			"--driver", "qemu", "--qemu-accel", "tcg", "--qemu-stop-timeout", "2s", "--qemu-reserved-memory-mb", "0",
			"--network-driver", "linux", "--underlay-ip", hostIP(i), "--uplink", "uplink", "--router-netns-dir", nsDir)
		a.cmd.Stdout, a.cmd.Stderr = a.out, a.out
		if os.Getenv("PHOTON_TEST_LOG") != "" {
			a.cmd.Stdout, a.cmd.Stderr = io.MultiWriter(a.out, os.Stderr), io.MultiWriter(a.out, os.Stderr)
		}
		if err := a.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmd, done := a.cmd, a.done
		go func() { _ = cmd.Wait(); close(done) }()
	}
	a.start()
	t.Cleanup(func() {
		_ = a.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-a.done:
		case <-time.After(15 * time.Second):
			_ = a.cmd.Process.Kill()
			<-a.done
		}
		// The QEMU processes outlive their agent by design: kill those
		// left in this host's namespace (the VMs were deleted unless the
		// test failed), then the router namespaces' mounts.
		killInNetns(t, "/run/netns/"+n.ns(name))
		es, _ := os.ReadDir(nsDir)
		for _, e := range es {
			_ = unix.Unmount(filepath.Join(nsDir, e.Name()), unix.MNT_DETACH)
		}
		if t.Failed() {
			t.Logf("agent %s output:\n%s", name, tail(a.out.String(), 6000))
		}
	})
	return a
}

// restart kills the agent with SIGKILL (no chance to tidy anything) and
// starts it again on the same data directory: its VMs, whose QEMU
// processes outlive it, are adopted again.
func (a *agent) restart(t *testing.T) {
	t.Helper()
	_ = a.cmd.Process.Kill()
	<-a.done
	a.start()
}

// killInNetns kills the processes whose network namespace is the one at
// path (the QEMU processes of a host's agent).
func killInNetns(t *testing.T, path string) {
	var want unix.Stat_t
	if err := unix.Stat(path, &want); err != nil {
		return
	}
	ps, _ := filepath.Glob("/proc/[0-9]*/ns/net")
	for _, p := range ps {
		var st unix.Stat_t
		if unix.Stat(p, &st) != nil || st.Ino != want.Ino || st.Dev != want.Dev {
			continue
		}
		var pid int
		if _, err := fmt.Sscanf(p, "/proc/%d/ns/net", &pid); err == nil && pid != os.Getpid() {
			t.Logf("killing pid %d left in %s", pid, path)
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// TestMultiHostNetwork: three hosts (a namespace and a `photond agent`
// with the qemu and linux drivers each), real guests from the test image,
// whose init pings the addresses of PHOTON_PING and prints the outcome on
// the console. Two VMs of one subnet on two hosts reach each other; a VM
// on another subnet of the router, on the third host, reaches both
// through the distributed router; another project's router on the same
// CIDR reaches its own VMs and not the first project's; a NAT subnet
// reaches the outside namespace, a NO_NAT one does not; the outside
// reaches a VM at its floating IP and not at its private address. Then a
// guest pings across hosts while both ends' agents are SIGKILLed and
// restarted (restartUnderTraffic: at most a second's packets lost; it
// logs the round-trip times on one host and on two), and once every VM,
// subnet and router is deleted through the API no host keeps anything of
// them (noLeftovers).
func TestMultiHostNetwork(t *testing.T) {
	requireNetE2E(t)
	lockNetE2E(t)
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	image := testImage(t)
	n := &netTest{t: t, prefix: fmt.Sprintf("pe%d", os.Getpid()%100000)}
	n.fabric()

	c := photontest.StartController(t, "", nil, "--listen", controlIP+":0", "--tls-san", controlIP,
		"--floating-ip-range", floatRange, "--heartbeat-timeout", "10s")
	cl, err := client.New(c.URL, client.WithCACertFile(c.CACert), client.WithToken(c.Token))
	if err != nil {
		t.Fatal(err)
	}
	wait := photontest.Done(t, ctx, cl)
	url := strings.Replace(c.URL, "127.0.0.1", controlIP, 1)
	var agents []*agent
	for i := range 3 {
		jt, err := cl.CreateJoinToken(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		agents = append(agents, n.startAgent(c, url, i, jt.Token))
	}
	hosts := map[string]bool{}
	for len(hosts) < 3 {
		if ctx.Err() != nil {
			t.Fatalf("hosts READY: %v", hosts)
		}
		for i, a := range agents {
			select {
			case <-a.done:
				t.Fatalf("agent h%d exited: %v\n%s", i, a.cmd.ProcessState, tail(a.out.String(), 4000))
			default:
			}
		}
		hs, err := cl.ListHosts(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range hs {
			if h.State == api.HostReady {
				hosts[h.Address] = true
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("%s: 3 hosts READY", time.Since(start).Round(100*time.Millisecond))

	// Two tenants' projects, flavors, the image.
	lim, _ := api.ParseLimits("vm 10 COUNT, vm.cpu 10 COUNT, vm.memory 10 GB, sdn.size 20 COUNT, sdn.floatingip.size 2 COUNT")
	project := func(name string) string {
		tt := wait(cl.CreateTenant(ctx, &api.TenantCreateSpec{Name: name, Quota: api.QuotaSpecFromItems(lim)}))
		return wait(cl.CreateProject(ctx, tt.Entity.ID, &api.ProjectCreateSpec{Name: name, Quota: api.QuotaSpecFromItems(lim)})).Entity.ID
	}
	pa, pb := project("a"), project("b")
	for _, f := range []api.FlavorCreateSpec{
		{Name: "tiny", Kind: "vm", Cost: []api.QuotaLineItem{{Key: "vm", Value: 1, Unit: "COUNT"}, {Key: "vm.cpu", Value: 1, Unit: "COUNT"}, {Key: "vm.memory", Value: 96, Unit: "MB"}}},
		{Name: "eph", Kind: "ephemeral-disk", Cost: []api.QuotaLineItem{{Key: "ephemeral-disk", Value: 1, Unit: "COUNT"}}},
	} {
		wait(cl.CreateFlavor(ctx, &f))
	}
	img := wait(cl.UploadImageFile(ctx, image, client.ImageUpload{Name: "test", ReplicationType: "ON_DEMAND"})).Entity.ID

	// Project a: router 10.10.0.0/16, web (NAT) and db (NO_NAT); project
	// b: router 10.10.0.0/16 too, web on the same /24.
	router := func(p string) string {
		return wait(cl.CreateRouter(ctx, p, &api.RouterCreateSpec{Name: "r", PrivateIPCidr: "10.10.0.0/16"})).Entity.ID
	}
	subnet := func(r, name, cidr, typ string) string {
		return wait(cl.CreateSubnet(ctx, r, &api.SubnetCreateSpec{Name: name, PrivateIPCidr: cidr, Type: typ})).Entity.ID
	}
	ra, rb := router(pa), router(pb)
	web, db := subnet(ra, "web", "10.10.1.0/24", "NAT"), subnet(ra, "db", "10.10.2.0/24", "NO_NAT")
	webB := subnet(rb, "web", "10.10.1.0/24", "NAT")

	var vmIDs []string
	t.Cleanup(func() {
		// Delete the VMs (their QEMU processes outlive the agents).
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		for _, id := range vmIDs {
			if task, err := cl.StopVM(ctx, id); err == nil {
				_, _ = cl.WaitTask(ctx, task)
			}
			if task, err := cl.DeleteVM(ctx, id); err == nil {
				_, _ = cl.WaitTask(ctx, task)
			}
		}
	})
	// create creates a VM on host i and subnet s with the given
	// environment and metadata; it returns its id and address.
	create := func(p, name string, i int, s string, env, meta map[string]string) (string, string) {
		spec := &api.VMCreateSpec{Name: name, Flavor: "tiny", SourceImageID: img, Subnets: []string{s},
			AttachedDisks: []api.AttachedDiskCreateSpec{{Name: "boot", Kind: "ephemeral-disk", Flavor: "eph", BootDisk: true}},
			Affinities:    []api.LocalitySpec{{Kind: "host", ID: hostIP(i)}}, Environment: env}
		id := wait(cl.CreateVM(ctx, p, spec)).Entity.ID
		vmIDs = append(vmIDs, id)
		conns, err := cl.VMNetworks(ctx, id)
		if err != nil || len(conns) != 1 || conns[0].IPAddress == "" {
			t.Fatalf("networks of %s: %+v, %v", name, conns, err)
		}
		if meta != nil {
			wait(cl.SetVMMetadata(ctx, id, meta))
		}
		wait(cl.StartVM(ctx, id))
		t.Logf("%s: %s on host %s at %s (%s)", time.Since(start).Round(100*time.Millisecond), name, hostIP(i), conns[0].IPAddress, conns[0].MacAddress)
		return id, conns[0].IPAddress
	}
	// vm creates and starts a VM on host i and subnet s that pings
	// targets (each up to tries times); it returns its id and address.
	vm := func(p, name string, i int, s string, tries int, targets ...string) (string, string) {
		var env map[string]string
		if len(targets) > 0 {
			env = map[string]string{"PHOTON_PING": strings.Join(targets, " "), "PHOTON_PING_TRIES": fmt.Sprint(tries)}
		}
		return create(p, name, i, s, env, nil)
	}
	a1, a1IP := vm(pa, "a1", 0, web, 60, outsideIP)
	_, b2IP := vm(pb, "b2", 1, webB, 0)
	a2, a2IP := vm(pa, "a2", 1, web, 60, a1IP)
	d1, d1IP := vm(pa, "d1", 2, db, 40, a1IP, a2IP, outsideIP)
	b1, _ := vm(pb, "b1", 0, webB, 40, b2IP, d1IP)
	if a1IP == a2IP {
		t.Fatalf("a1 and a2 share %s", a1IP)
	}

	// The consoles.
	console := func(id string) string {
		r, err := cl.VMConsole(ctx, id, false)
		if err != nil {
			return ""
		}
		defer r.Close()
		b, _ := io.ReadAll(io.LimitReader(r, 1<<20))
		return string(b)
	}
	type want struct {
		vm, name, line string
	}
	wants := []want{
		{a1, "a1", "photon-ping: OK " + outsideIP},   // NAT to the outside
		{a2, "a2", "photon-ping: OK " + a1IP},        // one subnet, two hosts
		{d1, "d1", "photon-ping: OK " + a1IP},        // through the router, third host
		{d1, "d1", "photon-ping: OK " + a2IP},        //
		{d1, "d1", "photon-ping: FAIL " + outsideIP}, // NO_NAT: not out
		{b1, "b1", "photon-ping: OK " + b2IP},        // project b's own, same CIDR
		{b1, "b1", "photon-ping: FAIL " + d1IP},      // not project a's
	}
	// The floating IP, once a1 is up.
	wait(cl.AcquireFloatingIP(ctx, a1, ""))
	v, err := cl.GetVM(ctx, a1)
	if err != nil || v.FloatingIP == "" {
		t.Fatalf("a1 after acquire_floating_ip: %+v, %v", v, err)
	}
	t.Logf("a1's floating IP %s", v.FloatingIP)

	pending := wants
	consoles := map[string]string{}
	deadline := time.Now().Add(150 * time.Second)
	for len(pending) > 0 && time.Now().Before(deadline) {
		var left []want
		for _, w := range pending {
			consoles[w.name] = console(w.vm)
			if strings.Contains(consoles[w.name], w.line) {
				t.Logf("%s: %s: %s", time.Since(start).Round(100*time.Millisecond), w.name, w.line)
				continue
			}
			left = append(left, w)
		}
		pending = left
		time.Sleep(time.Second)
	}
	for _, w := range pending {
		t.Errorf("%s: no %q on its console:\n%s", w.name, w.line, tail(netLines(consoles[w.name]), 3000))
	}

	// From the outside: the floating IP answers, the private address
	// (routed to a1's host) does not.
	n.ip("-n", n.ns("out"), "route", "add", "10.10.0.0/16", "via", hostIP(0))
	ping := func(addr string, tries int) bool {
		for range tries {
			if n.in("out", "busybox", "ping", "-c", "1", "-W", "1", addr).Run() == nil {
				return true
			}
		}
		return false
	}
	if !ping(v.FloatingIP, 20) {
		t.Errorf("outside: no answer from a1's floating IP %s", v.FloatingIP)
	} else {
		t.Logf("%s: outside: %s answers", time.Since(start).Round(100*time.Millisecond), v.FloatingIP)
	}
	if ping(a1IP, 3) {
		t.Errorf("outside: a1's private address %s answers", a1IP)
	}
	if t.Failed() {
		return
	}

	restartUnderTraffic(t, ctx, cl, agents, console, create, pa, web, a1IP, a2IP, start)
	t.Logf("%s: agents restarted under traffic", time.Since(start).Round(100*time.Millisecond))

	// Delete everything of the test's through the API, then look at every
	// host for what is left of it; what the hosts hold before, to see
	// that the inspection sees it.
	before := n.onHosts(agents)
	for _, kind := range []string{": link ", ": router namespace ", ": nftables ", ": route 198.51.100.200"} {
		k := 0
		for _, l := range before {
			if strings.Contains(l, kind) {
				k++
			}
		}
		t.Logf("before the deletes: %d of %q", k, kind)
		if k == 0 {
			t.Errorf("the hosts hold no %q before the deletes:\n%s", kind, strings.Join(before, "\n"))
		}
	}
	for _, id := range vmIDs {
		wait(cl.StopVM(ctx, id))
		wait(cl.DeleteVM(ctx, id))
	}
	vmIDs = nil
	for _, s := range []string{web, db, webB} {
		wait(cl.DeleteSubnet(ctx, s))
	}
	for _, r := range []string{ra, rb} {
		wait(cl.DeleteRouter(ctx, r))
	}
	n.noLeftovers(ctx, agents)
	t.Logf("%s: done", time.Since(start).Round(100*time.Millisecond))
}

// netLines are the console's photon-net and photon-ping lines, and the
// init's own.
func netLines(console string) string {
	var out []string
	for _, l := range strings.Split(console, "\n") {
		if strings.Contains(l, "photon-") {
			out = append(out, strings.TrimSpace(l))
		}
	}
	return strings.Join(out, "\n")
}
