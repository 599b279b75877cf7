package hosts_test

import (
	"bytes"
	"encoding/json"
	"io"
	"reflect"
	"testing"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/internal/hosts"
	"github.com/photon-cloud/photon/internal/photontest"
	"github.com/photon-cloud/photon/internal/store"
)

// TestDesiredStateJSON: a desired state whose VMs are records as stored
// encodes as the api.HostDesiredState they make up would.
func TestDesiredStateJSON(t *testing.T) {
	vms := []api.VMDesired{
		{ID: "vm-1", Name: "a <b> & c", CPUCount: 2, MemoryMB: 2048, Power: api.VMStarted, Generation: 3,
			Disks:       []api.DiskDesired{{ID: "d-1", Kind: api.KindEphemeralDisk, CapacityGB: 1, BootDisk: true}},
			Environment: map[string]string{"k": "v"}},
		{ID: "vm-2", Name: "second", CPUCount: 1, MemoryMB: 512, Power: api.VMStopped, Generation: 1, Disks: []api.DiskDesired{}},
	}
	for _, tc := range []struct {
		name string
		want api.HostDesiredState
	}{
		{"no VMs", api.HostDesiredState{HostID: "h-1", Revision: 7, VMs: []api.VMDesired{}, Images: []string{}, PartialReports: true}},
		{"one VM", api.HostDesiredState{HostID: "h-1", Revision: 8, VMs: vms[:1], Images: []string{"img-1"}}},
		{"everything", api.HostDesiredState{HostID: "h-2", Revision: 9, VMs: vms, Images: []string{"img-1", "img-2"},
			Consoles:    []api.ConsoleSession{{Session: "s-1", VMID: "vm-1", Follow: true}},
			DeleteDisks: []api.DiskDesired{{ID: "d-9", Kind: api.KindPersistentDisk, CapacityGB: 5}}, PartialReports: true, ReportOnPoll: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := &hosts.DesiredState{HostDesiredState: tc.want}
			d.HostDesiredState.VMs = nil
			for _, v := range tc.want.VMs {
				b, err := json.Marshal(v) // a record as stored
				if err != nil {
					t.Fatal(err)
				}
				d.VMs = append(d.VMs, b)
			}
			b, err := d.AppendJSON([]byte("prefix:"))
			if err != nil {
				t.Fatal(err)
			}
			out, ok := bytes.CutPrefix(b, []byte("prefix:"))
			if !ok {
				t.Fatalf("AppendJSON overwrote what it appends to: %q", b)
			}
			if !json.Valid(out) {
				t.Fatalf("not JSON: %s", out)
			}
			// Any encoder gives the same: encoding/json through MarshalJSON.
			if viaJSON, err := json.Marshal(d); err != nil || !bytes.Equal(viaJSON, out) {
				t.Fatalf("json.Marshal = %s, %v\nAppendJSON    %s", viaJSON, err, out)
			}
			var got api.HostDesiredState
			if err := json.Unmarshal(out, &got); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("decoded %+v\nwant    %+v\nfrom %s", got, tc.want, out)
			}
		})
	}
}

// BenchmarkDesiredStateJSON: a host's answer with 20 VMs, its records
// spliced in as stored (AppendJSON) against decoding them and encoding
// the api.HostDesiredState with encoding/json, as answers were made before.
func BenchmarkDesiredStateJSON(b *testing.B) {
	d := &hosts.DesiredState{HostDesiredState: api.HostDesiredState{HostID: "h-1", Revision: 5, Images: []string{}, PartialReports: true}}
	for _, v := range photontest.DesiredVMs(20) {
		rec, _ := json.Marshal(v)
		d.VMs = append(d.VMs, rec)
	}
	b.Run("AppendJSON", func(b *testing.B) {
		for b.Loop() {
			if _, err := d.AppendJSON(nil); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decode+encoding-json", func(b *testing.B) {
		for b.Loop() {
			ds := d.HostDesiredState
			ds.VMs = make([]api.VMDesired, len(d.VMs))
			for i, rec := range d.VMs {
				if err := store.Decode(rec, &ds.VMs[i]); err != nil {
					b.Fatal(err)
				}
			}
			if err := json.NewEncoder(io.Discard).Encode(&ds); err != nil {
				b.Fatal(err)
			}
		}
	})
}
