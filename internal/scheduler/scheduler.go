// Package scheduler decides where a VM or disk goes. It is pure: it takes a
// view of the fleet and a request and returns a decision or an explanation
// of why nothing fits, per constraint. Committing a decision is the
// caller's business, re-checking with the same Fit function on the
// revisions it read.
package scheduler

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"

	"github.com/photon-cloud/photon/api"
)

// Datastore is a datastore as a host sees it.
type Datastore struct {
	ID     string
	FreeGB float64
	Tags   []string
}

// Host is one host of the fleet view.
type Host struct {
	ID, Address, Zone string
	Tags              []string
	// State is the host's API state; only READY takes new VMs.
	State                 string
	CPUTotal, CPUFree     int
	MemTotalMB, MemFreeMB int64
	Datastores            []Datastore
	// VMs on the host, for VM-to-VM affinity.
	VMs map[string]bool
}

// Request is what one placement needs.
type Request struct {
	CPU      int
	MemoryMB int64
	// DiskGB must fit on one datastore of the host (ephemeral disks; the
	// VM's reservation holds it).
	DiskGB float64
	// PersistentGB must fit on the same datastore too (persistent disks
	// made with the VM; each disk holds its own space).
	PersistentGB float64 `json:"persistentGb,omitempty"`
	// Affinities, e.g. {"kind": "vm", "id": "..."} (same host as that VM),
	// {"kind": "host", "id": ID or address}, {"kind": "datastore", "id": ...}
	// (the host sees that datastore).
	Affinities []api.LocalitySpec
}

// Decision is where a request goes.
type Decision struct {
	HostID      string
	DatastoreID string
}

// Reasons a host does not fit.
const (
	ReasonState     = "not READY"
	ReasonCPU       = "lacked cpu"
	ReasonMemory    = "lacked memory"
	ReasonDatastore = "lacked datastore capacity"
	ReasonAffinity  = "failed affinity"
)

// Fit reports whether h can take r and on which datastore its disks go; a
// non-empty reason says why not. Placement and commit both use it.
func Fit(h *Host, r *Request) (datastoreID, reason string) {
	if h.State != api.HostReady {
		return "", ReasonState + " (" + strings.ToLower(h.State) + ")"
	}
	for _, a := range r.Affinities {
		switch a.Kind {
		case "vm":
			if !h.VMs[a.ID] {
				return "", ReasonAffinity
			}
		case "host":
			if a.ID != h.ID && a.ID != h.Address {
				return "", ReasonAffinity
			}
		case "datastore", "disk", "persistent-disk":
			if !slices.ContainsFunc(h.Datastores, func(d Datastore) bool { return d.ID == a.ID }) {
				return "", ReasonAffinity
			}
		}
	}
	if h.CPUFree < r.CPU {
		return "", ReasonCPU
	}
	if h.MemFreeMB < r.MemoryMB {
		return "", ReasonMemory
	}
	// The datastore with the most room that fits (a datastore affinity
	// names the one to use).
	best := -1
	for i, d := range h.Datastores {
		if d.FreeGB+1e-9 < r.DiskGB+r.PersistentGB {
			continue
		}
		if pinned := datastoreAffinity(r); pinned != "" && d.ID != pinned {
			continue
		}
		if best < 0 || d.FreeGB > h.Datastores[best].FreeGB {
			best = i
		}
	}
	if best < 0 {
		return "", ReasonDatastore
	}
	return h.Datastores[best].ID, ""
}

func datastoreAffinity(r *Request) string {
	for _, a := range r.Affinities {
		if a.Kind == "datastore" || a.Kind == "disk" || a.Kind == "persistent-disk" {
			return a.ID
		}
	}
	return ""
}

// Place chooses a host for r among hosts, spreading load: it prefers the
// host left with the most free share of CPU and memory, picking at random
// among near-equal candidates so that concurrent placements spread out.
// When no host fits, the error explains why per reason.
func Place(hosts []Host, r *Request) (Decision, error) {
	type cand struct {
		d     Decision
		score float64
	}
	var cands []cand
	why := map[string]int{}
	for i := range hosts {
		h := &hosts[i]
		ds, reason := Fit(h, r)
		if reason != "" {
			why[reason]++
			continue
		}
		cpu := float64(h.CPUFree-r.CPU) / float64(max(h.CPUTotal, 1))
		mem := float64(h.MemFreeMB-r.MemoryMB) / float64(max(h.MemTotalMB, 1))
		cands = append(cands, cand{Decision{h.ID, ds}, min(cpu, mem)})
	}
	if len(cands) == 0 {
		return Decision{}, Explain(len(hosts), why)
	}
	sort.Slice(cands, func(i, j int) bool { return cands[i].score > cands[j].score })
	n := 1
	for n < len(cands) && n < 4 && cands[0].score-cands[n].score < 0.05 {
		n++
	}
	return cands[rand.IntN(n)].d, nil
}

// Explain builds the refusal for a placement that fits nowhere: "no host
// fits: 3 lacked memory, 1 not READY (suspended)". Its code names the
// reason that eliminated most hosts.
func Explain(total int, why map[string]int) *api.Error {
	if total == 0 {
		return api.Errorf("NoHostAvailable", "no host fits: there are no hosts")
	}
	reasons := make([]string, 0, len(why))
	for r := range why {
		reasons = append(reasons, r)
	}
	sort.Slice(reasons, func(i, j int) bool {
		if why[reasons[i]] != why[reasons[j]] {
			return why[reasons[i]] > why[reasons[j]]
		}
		return reasons[i] < reasons[j]
	})
	parts := make([]string, len(reasons))
	data := map[string]string{}
	for i, r := range reasons {
		parts[i] = fmt.Sprintf("%d %s", why[r], r)
		data[r] = fmt.Sprint(why[r])
	}
	code := "NoHostAvailable"
	switch {
	case strings.HasPrefix(reasons[0], ReasonCPU):
		code = "NotEnoughCpuResource"
	case strings.HasPrefix(reasons[0], ReasonMemory):
		code = "NotEnoughMemoryResource"
	case strings.HasPrefix(reasons[0], ReasonDatastore):
		code = "NotEnoughDatastoreCapacity"
	case strings.HasPrefix(reasons[0], ReasonAffinity):
		code = "UnfullfillableAffinities"
	}
	e := api.Errorf(code, "no host fits: %s (of %d hosts)", strings.Join(parts, ", "), total)
	e.Data = data
	return e
}
