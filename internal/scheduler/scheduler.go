// Package scheduler decides where a VM or disk goes. It is pure: it takes a
// view of the fleet (a Fleet: hosts with their free capacity, tags, zone,
// datastores and cached images) and a request (resources, affinities, a
// placement group with its current members, a scoring strategy) and returns
// a decision or an explanation of why nothing fits, per constraint.
// Committing a decision is the caller's business, re-checking with the same
// Fit function on the revisions it read.
//
// Placement is filters then scores. Filters: host state (READY only),
// affinities (host, availabilityZone, hostTag, datastore, datastoreTag),
// strict placement groups (anti-affinity or affinity, per host or zone),
// CPU and memory (capacities already scaled by the host's overcommit
// ratios), and a datastore that holds the disks. Scores: spread (default:
// the host left with the largest free share) or pack (the smallest), image
// locality, soft placement-group penalties. On large fleets Place scores a
// bounded sample of feasible hosts (Fleet.Sample), visiting hosts in a
// random order and stopping once it has that many; since it stops only on
// feasible hosts, it finds one whenever one exists.
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
	ID string
	// Name is the name the host knows it by (its id without the host part).
	Name   string
	FreeGB float64
	Tags   []string
}

// Host is one host of the fleet view.
type Host struct {
	ID, Address, Zone string
	Tags              []string
	// State is the host's API state; only READY takes new VMs.
	State string
	// CPU and memory totals are the host's capacity times its overcommit
	// ratios; free is total less what is placed on it.
	CPUTotal, CPUFree     int
	MemTotalMB, MemFreeMB int64
	// roomiest sums up Datastores (SumDatastores): the fit of a request
	// without datastore constraints reads it, next to the free CPU and
	// memory, instead of Datastores, one more cache miss per host
	// visited (2.5% of the controller's CPU placing 100,000 VMs on 5,000
	// hosts).
	roomiest   dsSummary
	Datastores []Datastore
	// Images cached (or being cached) on the host, by image id.
	Images []string
	// VMs on the host, for VM-to-VM affinity (nil in the fleet index:
	// the controller resolves VM affinities to their host first).
	VMs map[string]bool
}

// dsSummary is the datastore with the most room of a host's.
type dsSummary struct {
	ok     bool    // summed (SumDatastores) since Datastores last changed
	none   bool    // the host has no datastore
	id     string  // the first with the most free space
	freeGB float64 // its free space
}

// SumDatastores records which of h.Datastores has the most room, for
// Fit and Place to read instead of the list: call it after every change
// to h.Datastores (a host built without it has them read instead).
func (h *Host) SumDatastores() {
	h.roomiest = dsSummary{ok: true, none: len(h.Datastores) == 0}
	for i, d := range h.Datastores {
		if i == 0 || d.FreeGB > h.roomiest.freeGB {
			h.roomiest.id, h.roomiest.freeGB = d.ID, d.FreeGB
		}
	}
}

// Fleet is an immutable (for the duration of a placement) view of hosts.
type Fleet struct {
	Hosts []Host
	// ByID maps a host id to its index in Hosts (optional: with it, host
	// and strict group-affinity constraints look hosts up directly).
	ByID map[string]int
	// Sample is how many feasible hosts Place scores before choosing
	// (<= 0: all of them).
	Sample int
	// Rand, when set, makes choices reproducible (tests); nil uses the
	// global source.
	Rand *rand.Rand
}

// DefaultSample is a good Fleet.Sample for large fleets: scoring 64
// random feasible hosts finds one within a few percent of the best.
const DefaultSample = 64

// Group policies and scopes.
const (
	AntiAffinity = "anti-affinity"
	Affinity     = "affinity"
	ScopeHost    = "host"
	ScopeZone    = "zone"
)

// Group is a placement group with its current members.
type Group struct {
	Name string `json:"name"`
	// Policy is anti-affinity (members apart) or affinity (together).
	Policy string `json:"policy"`
	// Scope is host or zone.
	Scope string `json:"scope"`
	// Strict groups refuse a placement that breaks the policy; soft ones
	// only score it lower.
	Strict bool `json:"strict"`
	// Members per host id and per zone (as read by the placement).
	Hosts map[string]int `json:"-"`
	Zones map[string]int `json:"-"`
}

func (g *Group) members(h *Host) int {
	if g.Scope == ScopeZone {
		return g.Zones[h.Zone]
	}
	return g.Hosts[h.ID]
}

// Scoring strategies.
const (
	Spread = "spread"
	Pack   = "pack"
)

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
	// {"kind": "host", "id": ID or address}, {"kind": "availabilityZone",
	// "id": "zone-a"}, {"kind": "hostTag", "id": "gpu"}, {"kind":
	// "datastore", "id": id or name} (the disks go there), {"kind":
	// "datastoreTag", "id": "ssd"}. Several of kind host, availabilityZone
	// or datastore mean any of them; several tags mean all of them.
	Affinities []api.LocalitySpec
	// ImageID prefers hosts that have this image cached.
	ImageID string `json:"imageId,omitempty"`
	// Strategy is spread (default) or pack.
	Strategy string `json:"strategy,omitempty"`
	// Group is the VM's placement group, with its members.
	Group *Group `json:"group,omitempty"`
	// Explain asks Place to return its scoring (a dry run).
	Explain bool `json:"-"`
	// Exclude lists hosts not to choose (found full at commit).
	Exclude []string `json:"-"`
	// Seed, when not 0, makes the random choices a function of it (and
	// the fleet): the same request placed twice on the same view lands on
	// the same host.
	Seed uint64 `json:"-"`
}

// Decision is where a request goes.
type Decision struct {
	HostID      string
	DatastoreID string
	// Score of the chosen host (higher is better).
	Score float64
	// Scoring is set when the request asked for an explanation.
	Scoring *Scoring
}

// Scoring explains a decision: how many hosts were looked at, how many
// fit, why the others did not, and the best candidates.
type Scoring struct {
	Hosts      int            `json:"hosts"`
	Considered int            `json:"considered"`
	Feasible   int            `json:"feasible"`
	Eliminated map[string]int `json:"eliminated"`
	Top        []Candidate    `json:"top"`
}

// Candidate is one scored host.
type Candidate struct {
	HostID      string  `json:"hostId"`
	DatastoreID string  `json:"datastoreId"`
	Score       float64 `json:"score"`
}

// Reasons a host does not fit (some are followed by what was missing).
const (
	ReasonState     = "not READY"
	ReasonCPU       = "lacked cpu"
	ReasonMemory    = "lacked memory"
	ReasonDatastore = "lacked datastore capacity"
	ReasonAffinity  = "failed affinity"
	ReasonZone      = "not in zone"
	ReasonTag       = "lacked tag"
	ReasonDSTag     = "lacked datastore tag"
	ReasonGroup     = "placement group"
	ReasonExcluded  = "changed since read"
)

// compiled is a request prepared for evaluating many hosts: the reason
// strings are built once, not per host.
type compiled struct {
	r                *Request
	hosts, zones     []string // any of (empty: no constraint)
	hostTags         []string // all of
	dss, dsTags      []string // datastore any-of ids or names; all-of tags
	vms              []string // VM-to-VM (needs Host.VMs)
	need             float64
	reasonZone       string
	reasonTag        []string
	reasonDSTag      string
	reasonGroup      string
	groupN           int
	strictAnti       bool
	strictAff        bool
	softAnti, softAf bool
}

func compile(r *Request) compiled {
	c := compiled{r: r, need: r.DiskGB + r.PersistentGB}
	for _, a := range r.Affinities {
		switch a.Kind {
		case "vm":
			c.vms = append(c.vms, a.ID)
		case "host":
			c.hosts = append(c.hosts, a.ID)
		case "availabilityZone", "zone":
			c.zones = append(c.zones, a.ID)
		case "hostTag", "tag":
			c.hostTags = append(c.hostTags, a.ID)
			c.reasonTag = append(c.reasonTag, ReasonTag+" "+a.ID)
		case "datastore", "disk", "persistent-disk":
			c.dss = append(c.dss, a.ID)
		case "datastoreTag":
			c.dsTags = append(c.dsTags, a.ID)
		}
	}
	if len(c.zones) > 0 {
		c.reasonZone = ReasonZone + " " + strings.Join(c.zones, " or ")
	}
	if len(c.dsTags) > 0 {
		c.reasonDSTag = ReasonDSTag + " " + strings.Join(c.dsTags, ", ")
	}
	if g := r.Group; g != nil {
		c.groupN = len(g.Hosts) // hosts with members: > 0 when it has any
		switch {
		case g.Policy == AntiAffinity && g.Strict:
			c.strictAnti = true
			c.reasonGroup = fmt.Sprintf("%s %s (anti-affinity per %s)", ReasonGroup, g.Name, g.Scope)
		case g.Policy == Affinity && g.Strict && c.groupN > 0:
			c.strictAff = true
			c.reasonGroup = fmt.Sprintf("%s %s (affinity per %s)", ReasonGroup, g.Name, g.Scope)
		case g.Policy == AntiAffinity:
			c.softAnti = true
		case g.Policy == Affinity:
			c.softAf = true
		}
	}
	return c
}

// Fit reports whether h can take r and on which datastore its disks go; a
// non-empty reason says why not. Placement and commit both use it.
func Fit(h *Host, r *Request) (datastoreID, reason string) {
	c := compile(r)
	return c.fit(h)
}

func stateReason(s string) string {
	switch s {
	case api.HostSuspended:
		return ReasonState + " (suspended)"
	case api.HostMaintenance:
		return ReasonState + " (maintenance)"
	case api.HostError:
		return ReasonState + " (error)"
	case api.HostNotProvisioned:
		return ReasonState + " (not_provisioned)"
	case api.HostCreating:
		return ReasonState + " (creating)"
	}
	return ReasonState + " (" + strings.ToLower(s) + ")"
}

func (c *compiled) fit(h *Host) (string, string) {
	r := c.r
	if h.State != api.HostReady {
		return "", stateReason(h.State)
	}
	if len(r.Exclude) > 0 && slices.Contains(r.Exclude, h.ID) {
		return "", ReasonExcluded
	}
	for _, id := range c.vms {
		if !h.VMs[id] {
			return "", ReasonAffinity
		}
	}
	if len(c.hosts) > 0 && !slices.ContainsFunc(c.hosts, func(id string) bool { return id == h.ID || id == h.Address }) {
		return "", ReasonAffinity
	}
	if len(c.zones) > 0 && !slices.Contains(c.zones, h.Zone) {
		return "", c.reasonZone
	}
	for i, t := range c.hostTags {
		if !slices.Contains(h.Tags, t) {
			return "", c.reasonTag[i]
		}
	}
	if c.strictAnti && r.Group.members(h) > 0 {
		return "", c.reasonGroup
	}
	if c.strictAff && r.Group.members(h) == 0 {
		return "", c.reasonGroup
	}
	if h.CPUFree < r.CPU {
		return "", ReasonCPU
	}
	if h.MemFreeMB < r.MemoryMB {
		return "", ReasonMemory
	}
	if h.roomiest.ok && len(c.dss) == 0 && len(c.dsTags) == 0 {
		// Any datastore will do: the roomiest, if it has room (what the
		// loop below finds too).
		if h.roomiest.none || h.roomiest.freeGB+1e-9 < c.need {
			return "", ReasonDatastore
		}
		return h.roomiest.id, ""
	}
	// The datastore with the most room that fits among those the
	// affinities allow.
	best, allowed := -1, 0
	for i := range h.Datastores {
		d := &h.Datastores[i]
		if len(c.dss) > 0 && !slices.ContainsFunc(c.dss, func(id string) bool { return id == d.ID || id == d.Name }) {
			continue
		}
		if !hasAll(d.Tags, c.dsTags) {
			continue
		}
		allowed++
		if d.FreeGB+1e-9 < c.need {
			continue
		}
		if best < 0 || d.FreeGB > h.Datastores[best].FreeGB {
			best = i
		}
	}
	if best < 0 {
		switch {
		case allowed > 0:
			return "", ReasonDatastore
		case len(c.dsTags) > 0 && len(c.dss) == 0:
			return "", c.reasonDSTag
		case len(c.dss) > 0 || len(c.dsTags) > 0:
			return "", ReasonAffinity
		}
		return "", ReasonDatastore
	}
	return h.Datastores[best].ID, ""
}

func hasAll(have, want []string) bool {
	for _, w := range want {
		if !slices.Contains(have, w) {
			return false
		}
	}
	return true
}

// score rates a feasible host: higher is better.
func (c *compiled) score(h *Host) float64 {
	r := c.r
	cpu := float64(h.CPUFree-r.CPU) / float64(max(h.CPUTotal, 1))
	mem := float64(h.MemFreeMB-r.MemoryMB) / float64(max(h.MemTotalMB, 1))
	s := min(cpu, mem)
	if r.Strategy == Pack {
		s = 1 - s
	}
	if r.ImageID != "" && slices.Contains(h.Images, r.ImageID) {
		s += 0.1
	}
	if c.softAnti {
		s -= 0.5 * float64(min(r.Group.members(h), 2))
	} else if c.softAf && c.groupN > 0 && r.Group.members(h) > 0 {
		s += 0.5
	}
	return s
}

// nearEqual: candidates within this much of the best score are chosen
// among at random, so that concurrent placements spread out.
const nearEqual = 0.05

const topN = 4

type why struct {
	reasons [12]string
	counts  [12]int
	more    map[string]int
	total   int
}

func (w *why) add(r string) {
	w.total++
	for i := range w.reasons {
		if w.reasons[i] == r {
			w.counts[i]++
			return
		}
		if w.reasons[i] == "" {
			w.reasons[i], w.counts[i] = r, 1
			return
		}
	}
	if w.more == nil {
		w.more = map[string]int{}
	}
	w.more[r]++
}

func (w *why) m() map[string]int {
	out := map[string]int{}
	for i, r := range w.reasons {
		if r != "" {
			out[r] = w.counts[i]
		}
	}
	for r, n := range w.more {
		out[r] += n
	}
	return out
}

// Place chooses a host for r in f. It scores feasible hosts (up to
// f.Sample of them, visited in a random order) and picks at random among
// the near-equal best. When no host fits, the error explains why per
// reason (every host was visited then).
func Place(f *Fleet, r *Request) (Decision, error) {
	if r.Seed != 0 && f.Rand == nil {
		g := *f
		g.Rand = rand.New(rand.NewPCG(r.Seed, uint64(len(f.Hosts))))
		f = &g
	}
	c := compile(r)
	n := len(f.Hosts)
	var w why
	var top [topN]Candidate
	ntop, feasible, considered := 0, 0, 0
	consider := func(h *Host) bool {
		considered++
		ds, reason := c.fit(h)
		if reason != "" {
			w.add(reason)
			return false
		}
		feasible++
		s := c.score(h)
		// Keep the topN best, sorted by score.
		if ntop < topN || s > top[ntop-1].Score {
			i := min(ntop, topN-1)
			for i > 0 && top[i-1].Score < s {
				if i < topN {
					top[i] = top[i-1]
				}
				i--
			}
			top[i] = Candidate{HostID: h.ID, DatastoreID: ds, Score: s}
			ntop = min(ntop+1, topN)
		}
		return f.Sample > 0 && feasible >= f.Sample
	}
	done := false
	switch {
	case f.ByID != nil && len(c.hosts) > 0 && allIn(c.hosts, f.ByID):
		// Host affinity by id: only those hosts can fit.
		for _, id := range c.hosts {
			consider(&f.Hosts[f.ByID[id]])
		}
		done = true
	case f.ByID != nil && c.strictAff && r.Group.Scope == ScopeHost && len(c.hosts) == 0:
		// Strict affinity to members' hosts: only those can fit.
		for id, k := range r.Group.Hosts {
			if i, ok := f.ByID[id]; ok && k > 0 {
				consider(&f.Hosts[i])
			}
		}
		done = true
	}
	if !done || feasible == 0 {
		// Scan (a refusal always scans everything, to explain it).
		ntop, feasible, considered, w = 0, 0, 0, why{}
		start, stride := 0, 1
		if f.Sample > 0 && n > f.Sample {
			start, stride = f.intn(n), coprimeStride(n, f.intn(len(strides)))
		}
		for k, i := 0, start; k < n; k, i = k+1, (i+stride)%n {
			if consider(&f.Hosts[i]) {
				break
			}
		}
	}
	if feasible == 0 {
		return Decision{}, Explain(n, w.m())
	}
	pick := 1
	for pick < ntop && top[0].Score-top[pick].Score < nearEqual {
		pick++
	}
	chosen := top[f.intn(pick)]
	d := Decision{HostID: chosen.HostID, DatastoreID: chosen.DatastoreID, Score: chosen.Score}
	if r.Explain {
		d.Scoring = &Scoring{Hosts: n, Considered: considered, Feasible: feasible, Eliminated: w.m(), Top: slices.Clone(top[:ntop])}
	}
	return d, nil
}

func allIn(ids []string, m map[string]int) bool {
	for _, id := range ids {
		if _, ok := m[id]; !ok {
			return false
		}
	}
	return true
}

func (f *Fleet) intn(n int) int {
	if n <= 1 {
		return 0
	}
	if f.Rand != nil {
		return f.Rand.IntN(n)
	}
	return rand.IntN(n)
}

// strides are primes; one that does not divide n visits every index of
// 0..n-1 once when stepping by it modulo n.
var strides = [...]int{7919, 104729, 1299709, 15485863, 179424673}

func coprimeStride(n, salt int) int {
	for k := range strides {
		s := strides[(k+salt)%len(strides)]
		if n%s != 0 {
			return s % n
		}
	}
	return 1
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
	if len(reasons) > 0 {
		switch r := reasons[0]; {
		case strings.HasPrefix(r, ReasonCPU):
			code = "NotEnoughCpuResource"
		case strings.HasPrefix(r, ReasonMemory):
			code = "NotEnoughMemoryResource"
		case strings.HasPrefix(r, ReasonDatastore):
			code = "NotEnoughDatastoreCapacity"
		case strings.HasPrefix(r, ReasonAffinity), strings.HasPrefix(r, ReasonZone), strings.HasPrefix(r, ReasonTag),
			strings.HasPrefix(r, ReasonDSTag), strings.HasPrefix(r, ReasonGroup):
			code = "UnfullfillableAffinities"
		}
	}
	e := api.Errorf(code, "no host fits: %s (of %d hosts)", strings.Join(parts, ", "), total)
	e.Data = data
	return e
}
