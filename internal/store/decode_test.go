package store_test

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/internal/store"
)

// decodeCases are records as the controller stores them, with every kind
// of field they use: embedded structs, maps of strings, of structs and of
// any, slices of structs, omitted empties, numbers in interfaces.
func decodeCases() []struct {
	name string
	v    any
} {
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
	return []struct {
		name string
		v    any
	}{
		{"vm", &vm}, {"project", &project}, {"task", &task},
		{"desired", &api.VMDesired{ID: "v", Name: "vm-1", CPUCount: 2, MemoryMB: 2048, Power: api.VMStarted, Generation: 7,
			Disks: []api.DiskDesired{{ID: "d1", Kind: api.KindEphemeralDisk, CapacityGB: 1, BootDisk: true, ImageID: "i"}}}},
		{"string", new(string)}, {"number", new(float64)}, {"any", &map[string]any{"a": []any{1.0, "2"}}},
	}
}

// TestDecodeMatchesEncodingJSON: store.Decode gives what encoding/json
// gives, on records as Put writes them and on malformed input (an error
// from both).
func TestDecodeMatchesEncodingJSON(t *testing.T) {
	for _, tc := range decodeCases() {
		t.Run(tc.name, func(t *testing.T) {
			b, err := json.Marshal(tc.v)
			if err != nil {
				t.Fatal(err)
			}
			typ := reflect.TypeOf(tc.v).Elem()
			want, got := reflect.New(typ).Interface(), reflect.New(typ).Interface()
			if err := json.Unmarshal(b, want); err != nil {
				t.Fatal(err)
			}
			if err := store.Decode(b, got); err != nil {
				t.Fatalf("Decode(%s): %v", b, err)
			}
			if !reflect.DeepEqual(want, got) {
				t.Fatalf("Decode(%s)\n got %#v\nwant %#v", b, got, want)
			}
			for _, bad := range [][]byte{b[:len(b)/2], append([]byte("x"), b...), []byte(`{"id": 5}`)} {
				if typ.Kind() != reflect.Struct {
					break
				}
				e1 := json.Unmarshal(bad, reflect.New(typ).Interface())
				e2 := store.Decode(bad, reflect.New(typ).Interface())
				if (e1 == nil) != (e2 == nil) {
					t.Errorf("malformed %q: encoding/json %v, Decode %v", bad, e1, e2)
				}
			}
		})
	}
}

// BenchmarkDecode compares store.Decode with encoding/json on a stored VM.
func BenchmarkDecode(b *testing.B) {
	vm := decodeCases()[0].v
	raw, _ := json.Marshal(vm)
	for _, d := range []struct {
		name string
		fn   func([]byte, any) error
	}{{"encoding-json", json.Unmarshal}, {"store.Decode", store.Decode}} {
		b.Run(d.name, func(b *testing.B) {
			b.SetBytes(int64(len(raw)))
			for b.Loop() {
				var v api.VM
				if err := d.fn(raw, &v); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
