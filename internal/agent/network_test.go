package agent_test

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/internal/agent"
	"github.com/photon-cloud/photon/internal/driver"
	"github.com/photon-cloud/photon/internal/driver/fake"
	"github.com/photon-cloud/photon/internal/netplumb"
	"github.com/photon-cloud/photon/internal/photontest"
)

// hostController is a controller's agent routes for one host, as far as
// an agent that polls needs them: the desired state the test sets (long
// polled) and the last status report.
type hostController struct {
	t      *testing.T
	mu     sync.Mutex
	ds     api.HostDesiredState
	change chan struct{} // closed when ds changes
	last   *api.HostStatusReport
}

func (hc *hostController) set(vms []api.VMDesired, nets *api.HostNetworkDesired) {
	hc.mu.Lock()
	defer hc.mu.Unlock()
	hc.ds.Revision++
	hc.ds.VMs, hc.ds.Networks = vms, nets
	close(hc.change)
	hc.change = make(chan struct{})
}

func (hc *hostController) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/desired"):
		after, _ := strconv.ParseInt(r.URL.Query().Get("after"), 10, 64)
		for {
			hc.mu.Lock()
			ds, ch := hc.ds, hc.change
			hc.mu.Unlock()
			if ds.Revision > after {
				_ = json.NewEncoder(w).Encode(ds)
				return
			}
			select {
			case <-ch:
			case <-r.Context().Done():
				return
			case <-time.After(5 * time.Second):
				_ = json.NewEncoder(w).Encode(ds)
				return
			}
		}
	case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/status"):
		var rep api.HostStatusReport
		if err := json.NewDecoder(r.Body).Decode(&rep); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		hc.mu.Lock()
		hc.last = &rep
		hc.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	default:
		http.NotFound(w, r)
	}
}

// vm is what the host's last report says of VM id.
func (hc *hostController) vm(id string) (api.VMObserved, *api.HostStatusReport) {
	hc.mu.Lock()
	defer hc.mu.Unlock()
	if hc.last == nil {
		return api.VMObserved{}, nil
	}
	for _, o := range hc.last.VMs {
		if o.ID == id {
			return o, hc.last
		}
	}
	return api.VMObserved{}, hc.last
}

// failingNet is a fake network driver whose Ensure fails while fail is
// set (netplumb.Fake's Fail, set under a lock: the agent calls Ensure
// from its goroutines).
type failingNet struct {
	*netplumb.Fake
	mu      sync.Mutex
	fail    error
	ensures int
}

func (f *failingNet) Ensure(ctx context.Context, want netplumb.Desired) error {
	f.mu.Lock()
	fail := f.fail
	f.ensures++
	f.mu.Unlock()
	if fail != nil {
		return fail
	}
	return f.Fake.Ensure(ctx, want)
}

func (f *failingNet) setFail(err error) {
	f.mu.Lock()
	f.fail = err
	f.mu.Unlock()
}

// startHost runs an agent, already joined as host-1, against hc, with the
// fake VM driver and net as its network driver.
func startHost(t *testing.T, hc *hostController, net netplumb.Driver) *fake.Driver {
	t.Helper()
	srv := httptest.NewTLSServer(hc)
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.crt")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	id, _ := json.Marshal(agent.Identity{HostID: "host-1", Credential: "secret", Controller: srv.URL})
	if err := os.WriteFile(filepath.Join(dir, "agent.json"), id, 0o600); err != nil {
		t.Fatal(err)
	}
	drv, err := fake.New(fake.Config{CPUCount: 8, MemoryMB: 16384, DataDir: filepath.Join(dir, "fake")})
	if err != nil {
		t.Fatal(err)
	}
	a, err := agent.New(agent.Config{ControllerURL: srv.URL, CACertFile: ca, DataDir: dir, Driver: drv, Network: net,
		Address: "10.0.9.1", UnderlayIP: "192.0.2.11", HeartbeatInterval: 100 * time.Millisecond, Log: photontest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return drv
}

// TestNetwork: the agent programs the host's network from every desired
// state (its routers and subnets, a port per NIC of its VMs) before it
// ensures the VMs, which get their NICs' subnets in their specs; it
// reports its underlay address. A network that fails to program leaves
// the VMs that need it unensured, reported ERROR with the reason, and is
// tried again until it works, when they are ensured; a VM's port goes
// with the VM; a VM with a NIC on a subnet the desired network lacks is
// refused alone. Without a network driver VMs run without NICs.
func TestNetwork(t *testing.T) {
	web := api.SubnetDesired{ID: "sn-web", RouterID: "r1", CIDR: "10.10.1.0/24", Gateway: "10.10.1.1", VNI: 101, NAT: true, MTU: 1450}
	db := api.SubnetDesired{ID: "sn-db", RouterID: "r1", CIDR: "10.10.2.0/24", Gateway: "10.10.2.1", VNI: 102}
	r1 := api.RouterDesired{ID: "r1", CIDR: "10.10.0.0/16"}
	boot := func(id string) []api.DiskDesired {
		return []api.DiskDesired{{ID: id + "-boot", Kind: api.KindEphemeralDisk, Datastore: "local", CapacityGB: 1, BootDisk: true}}
	}
	vm := func(id string, gen int64, nics ...api.NICDesired) api.VMDesired {
		return api.VMDesired{ID: id, Name: id, CPUCount: 1, MemoryMB: 512, Power: api.VMStarted, Disks: boot(id), NICs: nics, Generation: gen}
	}
	p1 := api.NICDesired{ID: "port-1", SubnetID: web.ID, MAC: "fa:16:3e:00:00:01", IP: "10.10.1.5"}
	p3 := api.NICDesired{ID: "port-3", SubnetID: db.ID, MAC: "fa:16:3e:00:00:03", IP: "10.10.2.5"}
	p4 := api.NICDesired{ID: "port-4", SubnetID: "sn-unknown", MAC: "fa:16:3e:00:00:04", IP: "10.10.9.5"}

	hc := &hostController{t: t, ds: api.HostDesiredState{HostID: "host-1"}, change: make(chan struct{})}
	net := &failingNet{Fake: netplumb.NewFake()}
	drv := startHost(t, hc, net)
	eventually := func(what string, ok func() bool) {
		t.Helper()
		for start := time.Now(); !ok(); time.Sleep(20 * time.Millisecond) {
			if time.Since(start) > 15*time.Second {
				_, last := hc.vm("")
				t.Fatalf("%s: not after 15 s; last report %+v; network %+v", what, last, net.Last())
			}
		}
	}
	state := func(id, want string) func() bool {
		return func() bool { o, _ := hc.vm(id); return o.State == want && o.Error == "" }
	}
	ports := func(want ...string) func() bool {
		return func() bool {
			var got []string
			for _, p := range net.Last().Ports {
				got = append(got, p.VMID+"/"+p.ID)
			}
			slices.Sort(got)
			return slices.Equal(got, want)
		}
	}

	// vm-1 on web, vm-2 without a NIC.
	nets := &api.HostNetworkDesired{Routers: []api.RouterDesired{r1}, Subnets: []api.SubnetDesired{web}}
	hc.set([]api.VMDesired{vm("vm-1", 1, p1), vm("vm-2", 1)}, nets)
	eventually("vm-1 and vm-2 STARTED", func() bool { return state("vm-1", api.VMStarted)() && state("vm-2", api.VMStarted)() })
	if got := net.Last(); !ports("vm-1/port-1")() || len(got.Subnets) != 1 || got.Subnets[0].ID != web.ID || len(got.Routers) != 1 {
		t.Errorf("network programmed: %+v; want router r1, subnet web, port-1 of vm-1", got)
	}
	if nics, err := drv.NICs(context.Background(), "vm-1"); err != nil || len(nics) != 1 || nics[0] != p1 {
		t.Errorf("vm-1's NICs on the host: %+v, %v; want port-1", nics, err)
	}
	if _, last := hc.vm(""); last.UnderlayIP != "192.0.2.11" {
		t.Errorf("report's underlay IP %q, want 192.0.2.11", last.UnderlayIP)
	}

	// vm-3 on db, which the host fails to program: vm-3 is not made and
	// is reported ERROR with the driver's reason; vm-1 keeps running.
	net.setFail(errors.New("netplumb: bridge for subnet sn-db: operation not permitted"))
	nets = &api.HostNetworkDesired{Routers: []api.RouterDesired{r1}, Subnets: []api.SubnetDesired{web, db}}
	hc.set([]api.VMDesired{vm("vm-1", 1, p1), vm("vm-2", 1), vm("vm-3", 1, p3)}, nets)
	eventually("vm-3 ERROR with the network's reason", func() bool {
		o, _ := hc.vm("vm-3")
		return o.State == api.VMError && strings.Contains(o.Error, "host network: netplumb: bridge for subnet sn-db: operation not permitted")
	})
	if vms, _ := drv.List(context.Background()); slices.ContainsFunc(vms, func(v driver.VMStatus) bool { return v.ID == "vm-3" }) {
		t.Error("vm-3 was made on a host whose network failed")
	}
	if o, _ := hc.vm("vm-1"); o.State != api.VMStarted {
		t.Errorf("vm-1 is %+v after the network failed; want it left running", o)
	}

	// The network heals: the agent's retry programs it and makes vm-3.
	net.setFail(nil)
	eventually("vm-3 STARTED once the network works", state("vm-3", api.VMStarted))
	if !ports("vm-1/port-1", "vm-3/port-3")() {
		t.Errorf("ports %+v, want port-1 and port-3", net.Last().Ports)
	}

	// vm-1 removed: its port goes with it. vm-4's NIC names a subnet the
	// desired network lacks: vm-4 alone is refused, the rest programmed.
	hc.set([]api.VMDesired{vm("vm-2", 1), vm("vm-3", 1, p3), vm("vm-4", 1, p4)}, nets)
	eventually("vm-1's port gone", ports("vm-3/port-3"))
	eventually("vm-4 ERROR naming its subnet", func() bool {
		o, _ := hc.vm("vm-4")
		return o.State == api.VMError && strings.Contains(o.Error, `NIC port-4: subnet "sn-unknown" is not in the host's desired network`)
	})
	eventually("vm-1 deleted", func() bool { o, last := hc.vm("vm-1"); return last != nil && o.ID == "" })

	// Every VM and network gone: the host's network is empty.
	hc.set(nil, nil)
	eventually("no port, subnet or router left", func() bool {
		l := net.Last()
		return len(l.Ports) == 0 && len(l.Subnets) == 0 && len(l.Routers) == 0
	})
}

// TestNoNetworkDriver: without a network driver, a VM with NICs runs
// without them.
func TestNoNetworkDriver(t *testing.T) {
	web := api.SubnetDesired{ID: "sn-web", RouterID: "r1", CIDR: "10.10.1.0/24", Gateway: "10.10.1.1", VNI: 101}
	hc := &hostController{t: t, ds: api.HostDesiredState{HostID: "host-1"}, change: make(chan struct{})}
	drv := startHost(t, hc, nil)
	hc.set([]api.VMDesired{{ID: "vm-1", Name: "vm-1", CPUCount: 1, MemoryMB: 512, Power: api.VMStarted, Generation: 1,
		Disks: []api.DiskDesired{{ID: "b", Kind: api.KindEphemeralDisk, Datastore: "local", CapacityGB: 1, BootDisk: true}},
		NICs:  []api.NICDesired{{ID: "port-1", SubnetID: web.ID, MAC: "fa:16:3e:00:00:01", IP: "10.10.1.5"}}}},
		&api.HostNetworkDesired{Subnets: []api.SubnetDesired{web}})
	for start := time.Now(); ; time.Sleep(20 * time.Millisecond) {
		if o, _ := hc.vm("vm-1"); o.State == api.VMStarted {
			break
		}
		if time.Since(start) > 15*time.Second {
			t.Fatal("vm-1 not STARTED after 15 s")
		}
	}
	if nics, err := drv.NICs(context.Background(), "vm-1"); err != nil || len(nics) != 0 {
		t.Errorf("vm-1's NICs: %+v, %v; want none (no network driver)", nics, err)
	}
}
