package photontest

import (
	"encoding/json"
	"fmt"
	"reflect"
	"testing"

	"github.com/photon-cloud/photon/api"
)

// JSONCase is a value of one of the API's types, named.
type JSONCase struct {
	Name string
	V    any // a pointer
}

// JSONCases are values of the API's types as the controller stores and
// sends them, with every kind of field they use: embedded structs, maps of
// strings, of structs and of any, slices of structs, omitted empties,
// numbers in interfaces.
func JSONCases() []JSONCase {
	vm := api.VM{Base: api.Base{ID: "01a214c9-f41e-7699-bc76-59b1110994a2", Kind: api.KindVM}, Name: "vm-1", Flavor: "small",
		State: api.VMStarted, Host: "10.0.0.2", AttachedDisks: []api.AttachedDisk{{ID: "d1", Name: "boot", Kind: api.KindEphemeralDisk, CapacityGB: 1.5, BootDisk: true}},
		Metadata: map[string]string{"owner": "alice", "é": "ünïcode \u2028"}, Tags: []string{"a", "b"},
		Cost: []api.QuotaLineItem{{Key: "vm.cpu", Value: 2, Unit: api.UnitCount}}, ProjectID: "p", Environment: map[string]string{"K": "V"}}
	project := api.Project{Base: api.Base{ID: "p", Kind: "project"}, Name: "bench", State: api.StateReady, TenantID: "t",
		Quota: api.Quota{QuotaItems: map[string]api.QuotaItem{"vm.cpu": {Unit: api.UnitCount, Limit: 100, Usage: 50.25}}}}
	task := api.Task{Base: api.Base{ID: "t1", Kind: "task"}, Operation: "CREATE_VM", State: api.TaskError, QueuedTime: 1795645108187,
		Entity: api.Entity{ID: "v", Kind: api.KindVM},
		Steps: []api.Step{{Operation: "RESERVE_RESOURCE", State: api.TaskError, Errors: []api.Error{{Code: "NotEnoughMemoryResource", Message: "no host fits",
			Data: map[string]string{"memory": "3"}}}, Options: map[string]string{"generation": "2"}}},
		ResourceProperties: map[string]any{"n": 1.5, "list": []any{"x", true, nil}, "obj": map[string]any{"k": "v"}}}
	desired := api.VMDesired{ID: "v", Name: "vm-1", CPUCount: 2, MemoryMB: 2048, Power: api.VMStarted, Generation: 7,
		Disks: []api.DiskDesired{{ID: "d1", Kind: api.KindEphemeralDisk, CapacityGB: 1, BootDisk: true, ImageID: "i"}}}
	return []JSONCase{
		{"vm", &vm}, {"project", &project}, {"task", &task}, {"desired", &desired},
		{"host desired state", &api.HostDesiredState{HostID: "h", Revision: 9, VMs: []api.VMDesired{desired, {ID: "w", Disks: []api.DiskDesired{}}},
			Images: []string{}, Consoles: []api.ConsoleSession{{Session: "s", VMID: "v", Follow: true}}, PartialReports: true, ReportOnPoll: true}},
		{"string", new(string)}, {"number", new(float64)}, {"any", &map[string]any{"a": []any{1.0, "2"}}},
	}
}

// CheckDecoder checks that decode gives what encoding/json gives on the
// JSON of each of JSONCases, and fails where encoding/json fails on
// malformed input.
func CheckDecoder(t *testing.T, decode func([]byte, any) error) {
	t.Helper()
	for _, tc := range JSONCases() {
		t.Run(tc.Name, func(t *testing.T) {
			b, err := json.Marshal(tc.V)
			if err != nil {
				t.Fatal(err)
			}
			typ := reflect.TypeOf(tc.V).Elem()
			want, got := reflect.New(typ).Interface(), reflect.New(typ).Interface()
			if err := json.Unmarshal(b, want); err != nil {
				t.Fatal(err)
			}
			if err := decode(b, got); err != nil {
				t.Fatalf("decode(%s): %v", b, err)
			}
			if !reflect.DeepEqual(want, got) {
				t.Fatalf("decode(%s)\n got %#v\nwant %#v", b, got, want)
			}
			for _, bad := range [][]byte{b[:len(b)/2], append([]byte("x"), b...), []byte(`{"id": 5}`)} {
				if typ.Kind() != reflect.Struct {
					break
				}
				e1 := json.Unmarshal(bad, reflect.New(typ).Interface())
				e2 := decode(bad, reflect.New(typ).Interface())
				if (e1 == nil) != (e2 == nil) {
					t.Errorf("malformed %q: encoding/json %v, decode %v", bad, e1, e2)
				}
			}
		})
	}
}

// DesiredVMs is n VMs' desired states as a host with n VMs gets them,
// e.g. for benchmarks of its answer.
func DesiredVMs(n int) []api.VMDesired {
	vms := make([]api.VMDesired, n)
	for i := range vms {
		vms[i] = api.VMDesired{ID: fmt.Sprintf("0193c9b2-7d1e-7c4a-9f00-3b5e2a1c%04d", i), Name: fmt.Sprintf("vm-%06d", i),
			CPUCount: 1, MemoryMB: 1024, Power: api.VMStarted, Generation: 2,
			Disks: []api.DiskDesired{{ID: fmt.Sprintf("0193c9b2-7d1e-7c4a-9f00-3b5e2a1d%04d", i), Kind: api.KindEphemeralDisk, CapacityGB: 1, BootDisk: true, Datastore: "local"}}}
	}
	return vms
}
