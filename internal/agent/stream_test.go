package agent_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/client"
	"github.com/photon-cloud/photon/internal/agent"
	"github.com/photon-cloud/photon/internal/driver"
)

// TestHostStream: with a controller that takes the host's stream, the
// agent opens it and sends every report on it (no poll, no report on its
// own after the first), and the VMs' creates complete on it. The route
// itself: the desired state at once (after=0) and on every change (with
// changes=true, after the first, only the VMs that changed), each report
// acknowledged once recorded, a line that is not a report refused
// and the stream ended, another host's stream refused; and a controller
// shutting down ends the streams open on it at once.
func TestHostStream(t *testing.T) {
	ctx, c, wait := newController(t)
	cl := c.Client
	project := newProject(ctx, t, c, wait, 20)
	var drv driver.Driver
	a := startAgentBeating(t, c, t.TempDir(), "10.0.9.4", time.Hour, func(cfg *agent.Config) { drv = cfg.Driver })
	// The host is READY once it joined, maybe before its stream is up: a
	// VM created then is reported on its own.
	for start := time.Now(); a.Streams() == 0; time.Sleep(10 * time.Millisecond) {
		if time.Since(start) > 10*time.Second {
			t.Fatal("the agent opened no stream")
		}
	}
	const n = 8
	createOn(ctx, t, cl, wait, a, project, n)
	// The last create ends once its report is recorded, maybe before the
	// agent has its acknowledgement (and counts it).
	for start := time.Now(); a.StreamReports() < n && time.Since(start) < 5*time.Second; time.Sleep(10 * time.Millisecond) {
	}
	onPoll, alone := a.Reports()
	onStream := a.StreamReports()
	t.Logf("%d VMs created: %d reports on the stream, %d rode a poll, %d went alone", n, onStream, onPoll, alone)
	if onStream < n || onPoll > 1 || alone > 1 {
		t.Errorf("reports: %d on the stream, %d on polls, %d alone; want the %d VMs' on the stream (and at most the first before it)", onStream, onPoll, alone, n)
	}

	// The route, with the host's credential.
	host, err := client.New(c.URL, client.WithCACertFile(c.CACert), client.WithToken(a.Credential()))
	if err != nil {
		t.Fatal(err)
	}
	path := "/v1/agent/hosts/" + a.HostID() + "/stream"
	open := func(t *testing.T, path string) (*io.PipeWriter, *bufio.Reader, func()) {
		t.Helper()
		pr, pw := io.Pipe()
		sctx, cancel := context.WithCancel(ctx)
		resp, err := host.Stream(sctx, http.MethodPost, path, "application/x-ndjson", pr)
		if err != nil {
			cancel()
			t.Fatalf("open %s: %v", path, err)
		}
		return pw, bufio.NewReader(resp.Body), func() { cancel(); resp.Body.Close(); pw.Close() }
	}
	next := func(t *testing.T, br *bufio.Reader) api.HostStreamMessage {
		t.Helper()
		type read struct {
			line []byte
			err  error
		}
		got := make(chan read, 1)
		go func() { l, err := br.ReadBytes('\n'); got <- read{l, err} }()
		select {
		case r := <-got:
			var m api.HostStreamMessage
			if r.err != nil {
				t.Fatalf("stream read: %v", r.err)
			}
			if err := json.Unmarshal(r.line, &m); err != nil {
				t.Fatalf("stream message %q: %v", r.line, err)
			}
			return m
		case <-time.After(10 * time.Second):
			t.Fatal("no stream message in 10 s")
		}
		return api.HostStreamMessage{}
	}
	report := func(t *testing.T, pw *io.PipeWriter, line string) {
		t.Helper()
		if _, err := io.WriteString(pw, line+"\n"); err != nil {
			t.Fatal(err)
		}
	}

	pw, br, closeStream := open(t, path+"?after=0")
	m := next(t, br)
	if m.Desired == nil || len(m.Desired.VMs) != n || !m.Desired.Stream || m.Desired.Revision == 0 || m.Desired.HostID != a.HostID() {
		t.Fatalf("first message (after=0) = %+v; want the desired state with the %d VMs at once", m, n)
	}
	rev := m.Desired.Revision
	report(t, pw, `{"seq":1,"report":{"partial":true}}`)
	if m := next(t, br); m.Ack != 1 || m.Error != nil || m.Desired != nil {
		t.Fatalf("after report 1: %+v; want its acknowledgement", m)
	}
	wait(cl.DeleteVM(ctx, m.Desired.VMs[0].ID))
	for {
		m := next(t, br)
		if m.Desired != nil && m.Desired.Revision > rev && len(m.Desired.VMs) == n-1 {
			break
		}
		if m.Desired == nil || m.Desired.Revision <= rev {
			t.Fatalf("after a delete: %+v; want the desired state past revision %d", m, rev)
		}
	}
	report(t, pw, `{"seq":2,"report":{"vms":"all of them"}}`)
	if m := next(t, br); m.Ack != 0 || m.Error == nil || m.Error.Code != api.CodeInvalidJSON {
		t.Fatalf("after a line that is not a report: %+v; want InvalidJson", m)
	}
	if l, err := br.ReadBytes('\n'); !errors.Is(err, io.EOF) && err == nil {
		t.Fatalf("after a refused line the stream goes on (%q); want it ended", l)
	}
	closeStream()

	// ?changes=true (as the agent asks): the first desired state whole,
	// then each lists only what changed. The agent's own stream, taking
	// them too, deletes and starts the VMs and keeps the others.
	_, br, closeStream = open(t, path+"?changes=true&after=0")
	m = next(t, br)
	if d := m.Desired; d == nil || d.Changes || len(d.VMs) != n-1 || len(d.RemovedVMs) > 0 {
		t.Fatalf("first message with changes=true: %+v; want the whole desired state, %d VMs", m, n-1)
	}
	rev = m.Desired.Revision
	gone, started := m.Desired.VMs[0].ID, m.Desired.VMs[1].ID
	wait(cl.DeleteVM(ctx, gone))
	wait(cl.StartVM(ctx, started))
	for removed, on := false, false; !removed || !on; {
		d := next(t, br).Desired
		if d == nil || !d.Changes || d.Revision <= rev {
			t.Fatalf("next message: %+v; want changes past revision %d", d, rev)
		}
		rev = d.Revision
		for _, v := range d.VMs {
			if v.ID != gone && v.ID != started {
				t.Errorf("changes at revision %d list VM %s, which did not change", rev, v.ID)
			}
			on = on || v.ID == started && v.Power == api.VMStarted
		}
		if len(d.RemovedVMs) > 0 && !slices.Equal(d.RemovedVMs, []string{gone}) {
			t.Errorf("changes at revision %d remove %v; want only %s", rev, d.RemovedVMs, gone)
		}
		removed = removed || len(d.RemovedVMs) > 0
	}
	closeStream()
	vms, err := drv.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	running := 0
	for _, v := range vms {
		if v.ID == gone {
			t.Errorf("the host still has VM %s, deleted", gone)
		}
		if v.State == api.VMStarted {
			running++
		}
	}
	if len(vms) != n-2 || running != 1 {
		t.Errorf("the host has %d VMs, %d running; want %d, 1 running", len(vms), running, n-2)
	}

	for _, tc := range []struct {
		name, path string
		code       string
	}{
		{"bad after", path + "?after=-1", api.CodeInvalidQuery},
		{"bad changes", path + "?changes=yes", api.CodeInvalidQuery},
		{"another host", "/v1/agent/hosts/not-this-host/stream", "HostNotFound"},
	} {
		_, err := host.Stream(ctx, http.MethodPost, tc.path, "application/x-ndjson", http.NoBody)
		var ae *api.Error
		if !errors.As(err, &ae) || ae.Code != tc.code {
			t.Errorf("%s: %v; want %s", tc.name, err, tc.code)
		}
	}

	// A stream open at shutdown ends with it, at once.
	_, br, closeStream = open(t, path+"?after="+strconv.FormatInt(1<<40, 10))
	defer closeStream()
	ended := make(chan error, 1)
	go func() { _, err := br.ReadBytes('\n'); ended <- err }()
	start := time.Now()
	c.Close()
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the controller took %s to shut down with a host's stream open", d)
	}
	select {
	case err := <-ended:
		if err == nil {
			t.Error("a message on a stream at shutdown; want it ended")
		}
	case <-time.After(5 * time.Second):
		t.Error("a stream open at shutdown still open 5 s after")
	}
}
