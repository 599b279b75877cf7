package scheduler

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/photon-cloud/photon/api"
)

func host(id string, cpu int, memMB int64, freeGB float64) Host {
	return Host{ID: id, Address: "addr-" + id, Zone: "z1", State: api.HostReady, CPUTotal: cpu, CPUFree: cpu,
		MemTotalMB: memMB, MemFreeMB: memMB, Datastores: []Datastore{{ID: id + ".local", Name: "local", FreeGB: freeGB}}}
}

func TestFit(t *testing.T) {
	base := host("h1", 8, 8192, 100)
	base.Tags = []string{"gpu", "CLOUD"}
	base.Zone = "zone-a"
	base.Datastores = append(base.Datastores, Datastore{ID: "shared.nfs", Name: "nfs", FreeGB: 500, Tags: []string{"ssd"}})
	aff := func(kind, id string) []api.LocalitySpec { return []api.LocalitySpec{{Kind: kind, ID: id}} }
	tests := []struct {
		name   string
		mod    func(h *Host)
		req    Request
		ds     string
		reason string
	}{
		{name: "fits on the roomiest datastore", req: Request{CPU: 2, MemoryMB: 1024, DiskGB: 10}, ds: "shared.nfs"},
		{name: "suspended", mod: func(h *Host) { h.State = api.HostSuspended }, req: Request{CPU: 1}, reason: "not READY (suspended)"},
		{name: "maintenance", mod: func(h *Host) { h.State = api.HostMaintenance }, req: Request{CPU: 1}, reason: "not READY (maintenance)"},
		{name: "cpu", req: Request{CPU: 9}, reason: ReasonCPU},
		{name: "memory", req: Request{CPU: 1, MemoryMB: 9000}, reason: ReasonMemory},
		{name: "overcommitted cpu fits", mod: func(h *Host) { h.CPUTotal, h.CPUFree = 32, 12 }, req: Request{CPU: 12}, ds: "shared.nfs"},
		{name: "disk", req: Request{DiskGB: 400, PersistentGB: 101}, reason: ReasonDatastore},
		{name: "host by id", req: Request{Affinities: aff("host", "h1")}, ds: "shared.nfs"},
		{name: "host by address", req: Request{Affinities: aff("host", "addr-h1")}, ds: "shared.nfs"},
		{name: "other host", req: Request{Affinities: aff("host", "h2")}, reason: ReasonAffinity},
		{name: "any of two hosts", req: Request{Affinities: []api.LocalitySpec{{Kind: "host", ID: "h2"}, {Kind: "host", ID: "h1"}}}, ds: "shared.nfs"},
		{name: "zone", req: Request{Affinities: aff("availabilityZone", "zone-a")}, ds: "shared.nfs"},
		{name: "other zone", req: Request{Affinities: aff("availabilityZone", "zone-b")}, reason: "not in zone zone-b"},
		{name: "host tag", req: Request{Affinities: aff("hostTag", "gpu")}, ds: "shared.nfs"},
		{name: "missing host tag", req: Request{Affinities: aff("hostTag", "fpga")}, reason: "lacked tag fpga"},
		{name: "datastore by name", req: Request{Affinities: aff("datastore", "local")}, ds: "h1.local"},
		{name: "datastore by id", req: Request{DiskGB: 50, Affinities: aff("datastore", "h1.local")}, ds: "h1.local"},
		{name: "datastore full", req: Request{DiskGB: 150, Affinities: aff("datastore", "h1.local")}, reason: ReasonDatastore},
		{name: "datastore elsewhere", req: Request{Affinities: aff("datastore", "h2.local")}, reason: ReasonAffinity},
		{name: "datastore tag", req: Request{Affinities: aff("datastoreTag", "ssd")}, ds: "shared.nfs"},
		{name: "missing datastore tag", req: Request{Affinities: aff("datastoreTag", "nvme")}, reason: "lacked datastore tag nvme"},
		{name: "vm affinity", mod: func(h *Host) { h.VMs = map[string]bool{"vm1": true} }, req: Request{Affinities: aff("vm", "vm1")}, ds: "shared.nfs"},
		{name: "vm elsewhere", req: Request{Affinities: aff("vm", "vm1")}, reason: ReasonAffinity},
		{name: "strict anti-affinity, member here", req: Request{Group: &Group{Name: "web", Policy: AntiAffinity, Scope: ScopeHost, Strict: true, Hosts: map[string]int{"h1": 1}}},
			reason: "placement group web (anti-affinity per host)"},
		{name: "strict anti-affinity, member elsewhere", req: Request{Group: &Group{Name: "web", Policy: AntiAffinity, Scope: ScopeHost, Strict: true, Hosts: map[string]int{"h2": 1}}}, ds: "shared.nfs"},
		{name: "strict zone anti-affinity", req: Request{Group: &Group{Name: "db", Policy: AntiAffinity, Scope: ScopeZone, Strict: true, Hosts: map[string]int{"h9": 1}, Zones: map[string]int{"zone-a": 1}}},
			reason: "placement group db (anti-affinity per zone)"},
		{name: "soft anti-affinity only scores", req: Request{Group: &Group{Name: "web", Policy: AntiAffinity, Scope: ScopeHost, Hosts: map[string]int{"h1": 1}}}, ds: "shared.nfs"},
		{name: "strict affinity elsewhere", req: Request{Group: &Group{Name: "app", Policy: Affinity, Scope: ScopeHost, Strict: true, Hosts: map[string]int{"h2": 1}}},
			reason: "placement group app (affinity per host)"},
		{name: "strict affinity, empty group", req: Request{Group: &Group{Name: "app", Policy: Affinity, Scope: ScopeHost, Strict: true}}, ds: "shared.nfs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := base
			h.Datastores = append([]Datastore(nil), base.Datastores...)
			if tt.mod != nil {
				tt.mod(&h)
			}
			ds, reason := Fit(&h, &tt.req)
			if ds != tt.ds || reason != tt.reason {
				t.Errorf("Fit = %q, %q; want %q, %q", ds, reason, tt.ds, tt.reason)
			}
		})
	}
}

func TestPlaceSpreadAndPack(t *testing.T) {
	hosts := []Host{host("a", 8, 8192, 100), host("b", 8, 8192, 100), host("c", 8, 8192, 100)}
	hosts[0].CPUFree, hosts[0].MemFreeMB = 2, 2048 // a is the fullest
	hosts[1].CPUFree, hosts[1].MemFreeMB = 6, 6144
	f := &Fleet{Hosts: hosts, Rand: rand.New(rand.NewPCG(1, 2))}
	for _, tt := range []struct {
		strategy, want string
	}{{"", "c"}, {Spread, "c"}, {Pack, "a"}} {
		d, err := Place(f, &Request{CPU: 1, MemoryMB: 1024, Strategy: tt.strategy})
		if err != nil || d.HostID != tt.want {
			t.Errorf("%q: placed on %q, %v; want %s", tt.strategy, d.HostID, err, tt.want)
		}
	}
	// Image locality tips a tie.
	hosts[2].CPUFree, hosts[2].MemFreeMB = 6, 6144
	hosts[1].Images = []string{"img"}
	d, err := Place(&Fleet{Hosts: hosts, Rand: rand.New(rand.NewPCG(1, 2))}, &Request{CPU: 1, ImageID: "img"})
	if err != nil || d.HostID != "b" {
		t.Errorf("image locality: %q %v", d.HostID, err)
	}
}

// TestStrictAntiAffinityGroup: a strict anti-affinity group of 10 on 8
// hosts: 8 placed on distinct hosts, 2 refused with the reason.
func TestStrictAntiAffinityGroup(t *testing.T) {
	var hosts []Host
	for i := range 8 {
		hosts = append(hosts, host(fmt.Sprint("h", i), 16, 16384, 100))
	}
	f := &Fleet{Hosts: hosts, Sample: 3}
	g := &Group{Name: "web", Policy: AntiAffinity, Scope: ScopeHost, Strict: true, Hosts: map[string]int{}}
	placed := 0
	for i := range 10 {
		d, err := Place(f, &Request{CPU: 1, MemoryMB: 512, Group: g})
		if i < 8 {
			if err != nil {
				t.Fatalf("replica %d: %v", i, err)
			}
			if g.Hosts[d.HostID] > 0 {
				t.Fatalf("replica %d shares host %s", i, d.HostID)
			}
			g.Hosts[d.HostID]++
			placed++
			continue
		}
		var ae *api.Error
		if err == nil || !asErr(err, &ae) || ae.Code != "UnfullfillableAffinities" || !strings.Contains(ae.Message, "8 placement group web (anti-affinity per host)") {
			t.Fatalf("replica %d: %v, want a refusal naming the group", i, err)
		}
	}
	if placed != 8 {
		t.Fatalf("placed %d", placed)
	}
}

func asErr(err error, ae **api.Error) bool {
	e, ok := err.(*api.Error)
	*ae = e
	return ok
}

// TestSampleFindsLoneFeasibleHost: with a small sample on a large fleet,
// the only host that fits is still found.
func TestSampleFindsLoneFeasibleHost(t *testing.T) {
	var hosts []Host
	for i := range 5000 {
		h := host(fmt.Sprint("h", i), 16, 16384, 100)
		if i != 4321 {
			h.CPUFree = 0
		}
		hosts = append(hosts, h)
	}
	for seed := range uint64(20) {
		d, err := Place(&Fleet{Hosts: hosts, Sample: 8, Rand: rand.New(rand.NewPCG(seed, 9))}, &Request{CPU: 4})
		if err != nil || d.HostID != "h4321" {
			t.Fatalf("seed %d: %q %v", seed, d.HostID, err)
		}
	}
}

func TestExplainCountsEveryHost(t *testing.T) {
	hosts := []Host{host("a", 1, 1024, 10), host("b", 8, 512, 10), host("c", 8, 8192, 10), host("d", 8, 8192, 10)}
	hosts[2].State = api.HostSuspended
	hosts[3].Tags = []string{"x"}
	hosts[3].CPUFree = 1
	_, err := Place(&Fleet{Hosts: hosts, Sample: 1}, &Request{CPU: 2, MemoryMB: 1024, Affinities: []api.LocalitySpec{{Kind: "hostTag", ID: "x"}}})
	want := "no host fits: 2 lacked tag x, 1 lacked cpu, 1 not READY (suspended) (of 4 hosts)"
	if err == nil || !strings.HasSuffix(err.Error(), want) {
		t.Fatalf("err = %v\nwant %s", err, want)
	}
}

// randomFleet makes n hosts with random capacity, usage, zones, tags,
// states and datastores.
func randomFleet(r *rand.Rand, n int) []Host {
	zones, tags := []string{"z1", "z2", "z3"}, []string{"gpu", "ssd", "big"}
	states := []string{api.HostReady, api.HostReady, api.HostReady, api.HostSuspended, api.HostError}
	hs := make([]Host, n)
	for i := range hs {
		cpu, mem := 1+r.IntN(32), int64(1024*(1+r.IntN(64)))
		h := Host{ID: fmt.Sprint("h", i), Address: fmt.Sprint("10.0.0.", i), Zone: zones[r.IntN(3)], State: states[r.IntN(len(states))],
			CPUTotal: cpu, CPUFree: r.IntN(cpu + 1), MemTotalMB: mem, MemFreeMB: r.Int64N(mem + 1)}
		for _, t := range tags {
			if r.IntN(2) == 0 {
				h.Tags = append(h.Tags, t)
			}
		}
		for j := range 1 + r.IntN(2) {
			d := Datastore{ID: fmt.Sprintf("h%d.ds%d", i, j), Name: fmt.Sprint("ds", j), FreeGB: float64(r.IntN(200))}
			if r.IntN(2) == 0 {
				d.Tags = []string{"ssd"}
			}
			h.Datastores = append(h.Datastores, d)
		}
		if r.IntN(4) == 0 {
			h.Images = []string{"img"}
		}
		hs[i] = h
	}
	return hs
}

func randomRequest(r *rand.Rand, hs []Host) *Request {
	req := &Request{CPU: 1 + r.IntN(8), MemoryMB: int64(512 * (1 + r.IntN(16))), DiskGB: float64(r.IntN(50))}
	kinds := []func() api.LocalitySpec{
		func() api.LocalitySpec {
			return api.LocalitySpec{Kind: "availabilityZone", ID: []string{"z1", "z2", "z3"}[r.IntN(3)]}
		},
		func() api.LocalitySpec {
			return api.LocalitySpec{Kind: "hostTag", ID: []string{"gpu", "ssd", "big"}[r.IntN(3)]}
		},
		func() api.LocalitySpec { return api.LocalitySpec{Kind: "datastoreTag", ID: "ssd"} },
		func() api.LocalitySpec { return api.LocalitySpec{Kind: "host", ID: hs[r.IntN(len(hs))].ID} },
	}
	for range r.IntN(3) {
		req.Affinities = append(req.Affinities, kinds[r.IntN(len(kinds))]())
	}
	if r.IntN(2) == 0 {
		req.Strategy = Pack
	}
	if r.IntN(2) == 0 {
		req.ImageID = "img"
	}
	if r.IntN(2) == 0 {
		g := &Group{Name: "g", Policy: []string{AntiAffinity, Affinity}[r.IntN(2)], Scope: []string{ScopeHost, ScopeZone}[r.IntN(2)],
			Strict: r.IntN(2) == 0, Hosts: map[string]int{}, Zones: map[string]int{}}
		for range r.IntN(4) {
			h := hs[r.IntN(len(hs))]
			g.Hosts[h.ID]++
			g.Zones[h.Zone]++
		}
		req.Group = g
	}
	return req
}

// satisfies checks a decision against every constraint independently of Fit.
func satisfies(h *Host, dsID string, r *Request) string {
	if h.State != api.HostReady {
		return "state"
	}
	if h.CPUFree < r.CPU || h.MemFreeMB < r.MemoryMB {
		return "resources"
	}
	var hostsAny, zonesAny []string
	for _, a := range r.Affinities {
		switch a.Kind {
		case "host":
			hostsAny = append(hostsAny, a.ID)
		case "availabilityZone":
			zonesAny = append(zonesAny, a.ID)
		case "hostTag":
			if !contains(h.Tags, a.ID) {
				return "tag"
			}
		}
	}
	if len(hostsAny) > 0 && !contains(hostsAny, h.ID) {
		return "host"
	}
	if len(zonesAny) > 0 && !contains(zonesAny, h.Zone) {
		return "zone"
	}
	if g := r.Group; g != nil && g.Strict {
		n := g.Hosts[h.ID]
		if g.Scope == ScopeZone {
			n = g.Zones[h.Zone]
		}
		if g.Policy == AntiAffinity && n > 0 {
			return "anti-affinity"
		}
		if g.Policy == Affinity && len(g.Hosts) > 0 && n == 0 {
			return "affinity"
		}
	}
	for _, d := range h.Datastores {
		if d.ID != dsID {
			continue
		}
		if d.FreeGB < r.DiskGB {
			return "datastore space"
		}
		for _, a := range r.Affinities {
			if a.Kind == "datastoreTag" && !contains(d.Tags, a.ID) {
				return "datastore tag"
			}
		}
		return ""
	}
	return "datastore"
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

// TestPlaceProperty: on random fleets and requests, the chosen host
// satisfies every constraint; without sampling no feasible host scores
// better than the choice by more than the near-equal margin; a refusal
// means no host satisfies them; with sampling, a host is found whenever
// one fits.
func TestPlaceProperty(t *testing.T) {
	r := rand.New(rand.NewPCG(42, 7))
	placed, refused := 0, 0
	for i := range 3000 {
		hs := randomFleet(r, 1+r.IntN(60))
		req := randomRequest(r, hs)
		f := &Fleet{Hosts: hs, Rand: r}
		d, err := Place(f, req)
		anyFits := false
		c := compile(req)
		for j := range hs {
			if _, why := Fit(&hs[j], req); why == "" {
				anyFits = true
				if d.HostID != "" && c.score(&hs[j]) > d.Score+nearEqual+1e-9 {
					t.Fatalf("case %d: host %s scores %v > chosen %s %v", i, hs[j].ID, c.score(&hs[j]), d.HostID, d.Score)
				}
			}
		}
		if err != nil {
			refused++
			if anyFits {
				t.Fatalf("case %d: refused (%v) though a host fits", i, err)
			}
			continue
		}
		placed++
		var h *Host
		for j := range hs {
			if hs[j].ID == d.HostID {
				h = &hs[j]
			}
		}
		if why := satisfies(h, d.DatastoreID, req); why != "" {
			t.Fatalf("case %d: chosen host %s breaks %s: %+v for %+v", i, d.HostID, why, h, req)
		}
		// Sampling still finds a host.
		if _, err := Place(&Fleet{Hosts: hs, Sample: 1, Rand: r}, req); err != nil {
			t.Fatalf("case %d: sampled placement refused: %v", i, err)
		}
	}
	t.Logf("%d placed, %d refused", placed, refused)
	if placed < 300 || refused < 300 {
		t.Errorf("unbalanced cases: %d placed, %d refused", placed, refused)
	}
}

// TestSummedDatastores: a host whose datastores are summed up
// (SumDatastores, as the fleet index does) fits every request as one
// whose datastores are read: the same datastore, the same reason; Place
// then decides the same.
func TestSummedDatastores(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 42))
	for i := range 2000 {
		hs := randomFleet(r, 1+r.IntN(20))
		for j := range hs {
			switch r.IntN(5) {
			case 0:
				hs[j].Datastores = nil // none
			case 1:
				for k := range hs[j].Datastores {
					hs[j].Datastores[k].FreeGB = 40 // ties: the first wins
				}
			}
		}
		summed := slices.Clone(hs)
		for j := range summed {
			summed[j].SumDatastores()
		}
		req := randomRequest(r, hs)
		for j := range hs {
			ds, why := Fit(&hs[j], req)
			sds, swhy := Fit(&summed[j], req)
			if ds != sds || why != swhy {
				t.Fatalf("case %d: host %s fits %+v on %q (%q) read, on %q (%q) summed; datastores %+v",
					i, hs[j].ID, req, ds, why, sds, swhy, hs[j].Datastores)
			}
		}
		seed := r.Uint64()
		d, err := Place(&Fleet{Hosts: hs, Rand: rand.New(rand.NewPCG(seed, 1))}, req)
		sd, serr := Place(&Fleet{Hosts: summed, Rand: rand.New(rand.NewPCG(seed, 1))}, req)
		if d != sd || fmt.Sprint(err) != fmt.Sprint(serr) {
			t.Fatalf("case %d: Place chose %+v (%v) read, %+v (%v) summed", i, d, err, sd, serr)
		}
	}
}
