package agent

import (
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
