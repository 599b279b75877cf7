package agent

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/photon-cloud/photon/api"
)

// TestChanges: a partial report lists the VMs whose observation differs
// from the last report's, new ones, and those gone (Gone), nothing else.
func TestChanges(t *testing.T) {
	a := api.VMObserved{ID: "a", State: api.VMStopped, Generation: 1}
	b := api.VMObserved{ID: "b", State: api.VMStarted, Generation: 2}
	started := a
	started.State, started.Generation = api.VMStarted, 2
	failed := b
	failed.Error = "boom"
	sent := map[string]api.VMObserved{"a": a, "b": b}
	for _, tc := range []struct {
		name string
		all  []api.VMObserved
		want []api.VMObserved
	}{
		{"nothing changed", []api.VMObserved{a, b}, []api.VMObserved{}},
		{"a started", []api.VMObserved{started, b}, []api.VMObserved{started}},
		{"b's error", []api.VMObserved{a, failed}, []api.VMObserved{failed}},
		{"a new VM", []api.VMObserved{a, b, {ID: "c", State: api.VMStopped}}, []api.VMObserved{{ID: "c", State: api.VMStopped}}},
		{"b gone", []api.VMObserved{a}, []api.VMObserved{{ID: "b", Gone: true}}},
		{"b gone, c new", []api.VMObserved{a, {ID: "c", State: api.VMStopped}}, []api.VMObserved{{ID: "b", Gone: true}, {ID: "c", State: api.VMStopped}}},
		{"all gone", nil, []api.VMObserved{{ID: "a", Gone: true}, {ID: "b", Gone: true}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := changes(sent, tc.all)
			slices.SortFunc(got, func(x, y api.VMObserved) int { return strings.Compare(x.ID, y.ID) })
			if !slices.Equal(got, tc.want) {
				t.Errorf("changes = %+v, want %+v", got, tc.want)
			}
		})
	}
}

// TestSentFollowsReports: what the controller holds (sent, which the next
// partial report is the changes against) is every VM of the last report
// accepted, full or partial (followed from its changes).
func TestSentFollowsReports(t *testing.T) {
	a := &Agent{}
	vm := func(id, state string, gen int64) api.VMObserved {
		return api.VMObserved{ID: id, State: state, Generation: gen}
	}
	for i, all := range [][]api.VMObserved{
		{vm("a", api.VMStopped, 1), vm("b", api.VMStarted, 1)},
		{vm("a", api.VMStarted, 2), vm("b", api.VMStarted, 1), vm("c", api.VMStopped, 1)},
		{vm("c", api.VMStarted, 2)},
		{vm("c", api.VMStarted, 2)},
		{},
		{vm("d", api.VMStopped, 1)},
	} {
		r := &api.HostStatusReport{VMs: all}
		if i > 0 {
			r = &api.HostStatusReport{VMs: changes(a.sent, all), Partial: true}
		}
		a.reportAccepted(r, all)
		if len(a.sent) != len(all) {
			t.Fatalf("report %d: sent holds %d VMs, want %d", i, len(a.sent), len(all))
		}
		for _, o := range all {
			if a.sent[o.ID] != o {
				t.Fatalf("report %d: sent holds %+v for %s, want %+v", i, a.sent[o.ID], o.ID, o)
			}
		}
	}
}

// TestApplyChanges: the stream's desired states, whole or of changes,
// applied in turn, make each whole: every VM desired once, by id, as a
// map of the VMs the states told (later wins) holds them, and the
// network each state brings (whole in every one). The first must be
// whole.
func TestApplyChanges(t *testing.T) {
	if _, err := applyChanges(nil, &api.HostDesiredState{Changes: true, Revision: 7}); err == nil {
		t.Fatal("changes as the stream's first desired state: taken")
	}
	rng := rand.New(rand.NewPCG(3, 4))
	vm := func() api.VMDesired {
		return api.VMDesired{ID: fmt.Sprintf("vm-%02d", rng.IntN(30)), Generation: rng.Int64N(100)}
	}
	var vms []api.VMDesired
	want := map[string]api.VMDesired{}
	for i := range 2000 {
		nets := &api.HostNetworkDesired{Subnets: []api.SubnetDesired{{ID: fmt.Sprintf("sn-%d", i)}}}
		ds := &api.HostDesiredState{Revision: int64(i + 1), Changes: i > 0 && rng.IntN(20) > 0, Networks: nets}
		if !ds.Changes {
			clear(want)
		}
		for range rng.IntN(4) {
			if ds.Changes && rng.IntN(3) == 0 {
				id := vm().ID
				ds.RemovedVMs = append(ds.RemovedVMs, id)
				delete(want, id)
			}
		}
		for range rng.IntN(6) {
			v := vm()
			ds.VMs = append(ds.VMs, v)
			want[v.ID] = v
		}
		var err error
		if vms, err = applyChanges(vms, ds); err != nil {
			t.Fatal(err)
		}
		if ds.Changes || ds.RemovedVMs != nil {
			t.Fatalf("state %d: still of changes", i)
		}
		if ds.Networks != nets {
			t.Fatalf("state %d: networks %+v, want the state's own (whole in every one)", i, ds.Networks)
		}
		wantVMs := slices.SortedFunc(maps.Values(want), func(a, b api.VMDesired) int { return strings.Compare(a.ID, b.ID) })
		if !slices.EqualFunc(vms, wantVMs, func(a, b api.VMDesired) bool { return a.ID == b.ID && a.Generation == b.Generation }) {
			t.Fatalf("state %d: the stream's VMs %v, want %v", i, vms, wantVMs)
		}
		got := slices.Clone(ds.VMs)
		slices.SortStableFunc(got, func(a, b api.VMDesired) int { return strings.Compare(a.ID, b.ID) })
		got = slices.CompactFunc(got, func(a, b api.VMDesired) bool { return a.ID == b.ID }) // a whole one as sent
		if len(got) != len(want) {
			t.Fatalf("state %d: made whole, it lists %d VMs, want %d", i, len(got), len(want))
		}
		for _, v := range got {
			if _, ok := want[v.ID]; !ok {
				t.Fatalf("state %d: lists %s, not desired", i, v.ID)
			}
		}
	}
}
