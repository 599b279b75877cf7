package agent

import (
	"bufio"
	"bytes"
	"slices"
	"strings"
	"testing"

	"github.com/photon-cloud/photon/api"
)

// FuzzStreamMessages feeds the agent's reading of the controller's side
// of a host's stream (readMessage, then applyChanges for desired states)
// hostile bytes: it must never panic, and the VMs it keeps stay sorted by
// id, each once, equal to what the desired state it made whole lists.
func FuzzStreamMessages(f *testing.F) {
	for _, s := range []string{
		`{"ack":1}` + "\n",
		`{"ack":0,"error":{"code":"InvalidJson","message":"no"}}` + "\n",
		`{"desired":{"hostId":"h","revision":5,"vms":[{"id":"b","generation":1},{"id":"a","generation":2},{"id":"b","generation":3}]}}` + "\n" +
			`{"desired":{"hostId":"h","revision":6,"changes":true,"vms":[{"id":"c"}],"removedVms":["a","zz"]}}` + "\n",
		`{"desired":{"hostId":"h","revision":2,"changes":true,"vms":[{"id":"x"}]}}` + "\n",
		`{"desired":null}` + "\n" + `{"ack":-1}`,
		`{"desired":{"vms":[{"id":""},{"id":""}]}}` + "\n",
		"\n\n{\n",
		`{"ack":1}{"ack":2}` + "\n",
		strings.Repeat("[", 4096) + "\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		br := bufio.NewReaderSize(bytes.NewReader(b), 16)
		var vms []api.VMDesired
		for range 64 {
			m, err := readMessage(br)
			if err != nil {
				return
			}
			if m.Desired == nil {
				continue
			}
			ds := m.Desired
			changes := ds.Changes
			out, err := applyChanges(vms, ds)
			if err != nil {
				if vms != nil || !changes {
					t.Fatalf("applyChanges(%d VMs, changes=%v): %v", len(vms), changes, err)
				}
				continue
			}
			if out == nil {
				t.Fatal("applyChanges kept nil VMs (later changes would be refused)")
			}
			for i := 1; i < len(out); i++ {
				if out[i-1].ID >= out[i].ID {
					t.Fatalf("VMs not sorted by id, each once: %q then %q", out[i-1].ID, out[i].ID)
				}
			}
			if changes {
				if ds.Changes || ds.RemovedVMs != nil {
					t.Fatalf("the desired state is not made whole: changes=%v removed=%v", ds.Changes, ds.RemovedVMs)
				}
				if !slices.EqualFunc(ds.VMs, out, func(a, b api.VMDesired) bool { return a.ID == b.ID }) {
					t.Fatalf("made whole as %v, kept %v", ds.VMs, out)
				}
			}
			vms = out
		}
	})
}

// A line longer than the bound is refused before it is read whole.
func TestReadMessageBound(t *testing.T) {
	r := &countingReader{}
	_, err := readMessage(bufio.NewReader(r))
	if err == nil || !strings.Contains(err.Error(), "over") {
		t.Fatalf("a line with no end = %v, want refused for its size", err)
	}
	if r.n > maxStreamLine+64<<10 {
		t.Errorf("read %d bytes of it, want at most about %d", r.n, maxStreamLine)
	}
}

// countingReader is an endless line of 'x'.
type countingReader struct{ n int }

func (r *countingReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'x'
	}
	r.n += len(p)
	return len(p), nil
}
