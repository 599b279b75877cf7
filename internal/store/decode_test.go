package store_test

import (
	"encoding/json"
	"math"
	"testing"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/internal/photontest"
	"github.com/photon-cloud/photon/internal/store"
)

// TestDecodeMatchesEncodingJSON: store.Decode gives what encoding/json
// gives, on records as Put writes them and on malformed input (an error
// from both).
func TestDecodeMatchesEncodingJSON(t *testing.T) {
	photontest.CheckDecoder(t, store.Decode)
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
	for _, c := range photontest.JSONCases() {
		cases = append(cases, struct {
			name string
			v    any
		}{c.Name, c.V})
	}
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
	vm := photontest.JSONCases()[0].V
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
	vm := photontest.JSONCases()[0].V
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
