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
