package store_test

import (
	"encoding/json"
	"math"
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

// TestEncodeMatchesEncodingJSON: store.Encode writes what encoding/json
// writes, byte for byte (a record's bytes are compared: the desired state
// is rewritten only when they change, and pending reads are conditioned on
// them), on every record kind and on what differs between encoders: map
// key order, HTML and line-separator escapes, invalid UTF-8, control
// characters, float formats, nil and empty slices and maps; and both
// refuse what JSON cannot hold.
func TestEncodeMatchesEncodingJSON(t *testing.T) {
	cases := []struct {
		name string
		v    any
	}{
		{"floats", map[string]any{"b": 1e21, "a": 1e-7, "c": 0.000001, "d": 123456789012345680000.0, "e": 1.5e300, "f": 5e-324, "g": float32(0.1)}},
		{"strings", map[string]string{"z": "<a&b>", "y": "\u2028\u2029", "x": "bad\xffutf8", "w": "\x00\x1f\"\\/", "é": "ü"}},
		{"empties", struct {
			A []int          `json:"a"`
			B []int          `json:"b,omitempty"`
			C map[string]int `json:"c"`
			D *int           `json:"d"`
			E []string       `json:"e"`
		}{E: []string{}}},
		{"slice of floats", []float64{0.1, 0.2, 1.0 / 3, 100, 1e20, 1e-6}},
	}
	cases = append(cases, decodeCases()...)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			want, err := json.Marshal(tc.v)
			if err != nil {
				t.Fatal(err)
			}
			got, err := store.Encode(tc.v)
			if err != nil || string(got) != string(want) {
				t.Fatalf("Encode = %s, %v\nwant %s", got, err, want)
			}
		})
	}
	for _, bad := range []any{math.NaN(), math.Inf(1), make(chan int)} {
		if _, err := store.Encode(bad); err == nil {
			t.Errorf("Encode(%T %v) did not fail", bad, bad)
		}
	}
}

// BenchmarkEncode compares store.Encode with encoding/json on a stored VM.
func BenchmarkEncode(b *testing.B) {
	vm := decodeCases()[0].v
	for _, e := range []struct {
		name string
		fn   func(any) ([]byte, error)
	}{{"encoding-json", json.Marshal}, {"store.Encode", store.Encode}} {
		b.Run(e.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := e.fn(vm); err != nil {
					b.Fatal(err)
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
