package fault_test

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/internal/photontest"
	"github.com/photon-cloud/photon/internal/store"
)

// quick are the store's bounds in the suite: a request waits for etcd at
// most 3 s (10 s by default), etcd is checked every 500 ms.
var quick = store.Limits{OpTimeout: 3 * time.Second, ProbeInterval: 500 * time.Millisecond, ProbeTimeout: time.Second}

// slack is what a request may take past the store's bound (TLS, HTTP,
// the handler's own work on a loaded 2-core machine).
const slack = 2 * time.Second

// rawAnswer is one request made without the SDK: its status, header and
// body as sent.
type rawAnswer struct {
	status  int
	header  http.Header
	body    api.Error
	latency time.Duration
	err     error
}

func (r *rig) raw(method, path, body string) rawAnswer {
	pem, _ := os.ReadFile(r.c.CACert)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	hc := &http.Client{Timeout: 90 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}}
	defer hc.CloseIdleConnections()
	req, _ := http.NewRequest(method, r.c.URL+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+r.c.Token)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	start := time.Now()
	resp, err := hc.Do(req)
	a := rawAnswer{err: err}
	if err == nil {
		b, rerr := io.ReadAll(resp.Body)
		resp.Body.Close()
		a.status, a.header, a.err = resp.StatusCode, resp.Header, rerr
		_ = json.Unmarshal(b, &a.body)
	}
	a.latency = time.Since(start)
	return a
}

// TestOutageAnswers: while etcd answers nothing (the process stopped),
// a GET, a POST and the status each get, within the store's bound, a 503
// with Retry-After and a body saying the store is unavailable; the log
// says "etcd unreachable" once and "etcd reachable again" once; requests
// succeed soon after etcd is back.
func TestOutageAnswers(t *testing.T) {
	r := newRig(t, rigConfig{heartbeat: 3 * time.Second, limits: quick, hosts: 1})
	rp := &report{name: "outage answers"}
	if err := r.etcd.Pause(); err != nil {
		t.Fatal(err)
	}
	rp.faults++
	reqs := []struct{ method, path, body string }{
		{"GET", "/v1/tenants", ""},
		{"POST", "/v1/tenants", `{"name": "during"}`},
		{"GET", "/v1/system/status", ""},
		{"GET", "/v1/infrastructure/hosts", ""},
	}
	check := func(round int) {
		answers := make([]rawAnswer, len(reqs))
		var wg sync.WaitGroup
		for i, q := range reqs {
			wg.Add(1)
			go func() { defer wg.Done(); answers[i] = r.raw(q.method, q.path, q.body) }()
		}
		wg.Wait()
		for i, a := range answers {
			q := reqs[i]
			rp.requests++
			rp.maxLatency = max(rp.maxLatency, a.latency)
			if a.status == http.StatusServiceUnavailable {
				rp.unavai++
			}
			t.Logf("round %d: %s %s: %d in %v, Retry-After %q, %+v %v", round, q.method, q.path, a.status, a.latency.Round(time.Millisecond), a.header.Get("Retry-After"), a.body, a.err)
			if a.err != nil || a.status != http.StatusServiceUnavailable || a.header.Get("Retry-After") == "" ||
				a.body.Code != api.CodeUnavailable || !strings.Contains(a.body.Message, "etcd") {
				t.Errorf("%s %s while etcd is away: %d %+v %v, Retry-After %q; want 503 ServiceUnavailable naming etcd, with Retry-After",
					q.method, q.path, a.status, a.body, a.err, a.header.Get("Retry-After"))
			}
			if bound := quick.OpTimeout + slack; a.latency > bound {
				t.Errorf("%s %s answered after %v, want within %v", q.method, q.path, a.latency.Round(time.Millisecond), bound)
			}
		}
	}
	check(1)
	check(2) // etcd known away now: at once
	if n := r.log.count("etcd unreachable"); n != 1 {
		t.Errorf("the log says \"etcd unreachable\" %d times, want once", n)
	}
	if err := r.etcd.Resume(); err != nil {
		t.Fatal(err)
	}
	rp.recover = append(rp.recover, r.untilAnswered(t, 30*time.Second, func() error { _, err := r.cl.ListTenants(ctx, ""); return err }))
	deadline := time.Now().Add(5 * time.Second)
	for r.log.count("etcd reachable again") != 1 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if n := r.log.count("etcd reachable again"); n != 1 {
		t.Errorf("the log says \"etcd reachable again\" %d times, want once", n)
	}
	if n := r.log.count("request failed"); n != 0 {
		t.Errorf("%d requests logged as internal failures", n)
	}
	if st, err := r.cl.SystemStatus(ctx); err != nil || st.Status != "READY" {
		t.Errorf("status after etcd returned: %+v %v", st, err)
	}
	rp.publish(t)
}

// TestEtcdStoppedUnderLoad: clients create tenants, projects and VMs
// while etcd is stopped (SIGSTOP) for 3 heartbeat timeouts
// (PHOTON_FAULT_OUTAGE: another duration), then killed and started again
// after as long: no 500, no answer without a status,
// none past the bound; after each return every host is READY within one
// heartbeat timeout; nothing acknowledged is lost, usage is exact, no
// task is left unfinished.
func TestEtcdStoppedUnderLoad(t *testing.T) {
	hb := 3 * time.Second
	outage := 3 * hb
	if d, err := time.ParseDuration(os.Getenv("PHOTON_FAULT_OUTAGE")); err == nil && d > 0 {
		outage = d // e.g. 75s, the outage of issue 26
	}
	r := newRig(t, rigConfig{heartbeat: hb, limits: quick, hosts: 3})
	rp := &report{name: fmt.Sprintf("etcd stopped and restarted under load (%v each)", outage)}
	l := r.startLoad(t, 4)
	time.Sleep(2 * time.Second)
	back := func() {
		rp.recover = append(rp.recover, r.untilAnswered(t, 30*time.Second, func() error { _, err := r.cl.ListTenants(ctx, ""); return err }))
		rp.hostsReady = append(rp.hostsReady, r.waitHostsReady(t, hb))
	}
	// Stopped: holds its connections, answers nothing.
	if err := r.etcd.Pause(); err != nil {
		t.Fatal(err)
	}
	rp.faults++
	time.Sleep(outage)
	if err := r.etcd.Resume(); err != nil {
		t.Fatal(err)
	}
	back()
	time.Sleep(2 * time.Second)
	// Killed: connections refused until it is started again.
	r.etcd.Kill()
	rp.faults++
	time.Sleep(outage)
	r.etcd.Start(t)
	back()
	time.Sleep(2 * time.Second)
	l.halt()
	l.check(t, quick.OpTimeout+slack, rp)
	if n := r.log.count("etcd unreachable"); n != rp.faults {
		t.Errorf("the log says \"etcd unreachable\" %d times in %d outages", n, rp.faults)
	}
	if n := r.log.count("etcd reachable again"); n != rp.faults {
		t.Errorf("the log says \"etcd reachable again\" %d times in %d outages", n, rp.faults)
	}
	rp.publish(t)
}

// TestEtcdSlow: every chunk between controller and etcd delayed by 1 s
// each way (a round trip of 2 s) for 10 s under load: requests succeed or
// get a clean 503 within the bound; after the delay ends every host is
// READY within a heartbeat timeout and the invariants hold.
func TestEtcdSlow(t *testing.T) {
	hb := 5 * time.Second
	limits := store.Limits{OpTimeout: 5 * time.Second, ProbeInterval: 500 * time.Millisecond, ProbeTimeout: 3 * time.Second}
	r := newRig(t, rigConfig{heartbeat: hb, limits: limits, hosts: 3, proxy: true})
	rp := &report{name: "etcd slowed (1 s per chunk each way)"}
	l := r.startLoad(t, 4)
	time.Sleep(2 * time.Second)
	r.proxy.SetDelay(time.Second)
	rp.faults++
	time.Sleep(10 * time.Second)
	r.proxy.SetDelay(0)
	rp.recover = append(rp.recover, r.untilAnswered(t, 30*time.Second, func() error { _, err := r.cl.ListTenants(ctx, ""); return err }))
	rp.hostsReady = append(rp.hostsReady, r.waitHostsReady(t, hb+2*time.Second))
	time.Sleep(time.Second)
	l.halt()
	// A commit merged with others (group commit) waits for etcd on its
	// own bound, past the request's.
	l.check(t, 2*limits.OpTimeout+slack, rp)
	rp.publish(t)
}

// TestTooLargeForEtcd: etcd takes requests of at most 32 KiB here: a VM
// create or a metadata change whose record is larger (its body within the
// API's 1 MiB) is a clean 413 or 400, not a 500; nothing is left of it.
func TestTooLargeForEtcd(t *testing.T) {
	r := newRig(t, rigConfig{heartbeat: 3 * time.Second, limits: quick, hosts: 1, etcdArgs: []string{"--max-request-bytes", "32768"}})
	rp := &report{name: "a transaction over etcd's size limit"}
	big := strings.Repeat("x", 40<<10)
	spec := vmSpec("big")
	spec.Environment = map[string]string{"BIG": big}
	body, _ := json.Marshal(spec)
	a := r.raw("POST", "/v1/projects/"+r.project+"/vms", string(body))
	rp.faults++
	rp.requests++
	t.Logf("VM create with a 40 KiB environment: %d %+v %v", a.status, a.body, a.err)
	if a.err != nil || (a.status != http.StatusRequestEntityTooLarge && a.status != http.StatusBadRequest) || a.body.Code == "" {
		t.Errorf("VM create over etcd's request limit: %d %+v %v; want 413 or 400 with an error body", a.status, a.body, a.err)
	}
	done := photontest.Done(t, ctx, r.cl)
	vm := done(r.cl.CreateVM(ctx, r.project, vmSpec("small")))
	meta, _ := json.Marshal(api.VMMetadata{Metadata: map[string]string{"big": big}})
	a = r.raw("POST", "/v1/vms/"+vm.Entity.ID+"/set_metadata", string(meta))
	rp.faults++
	rp.requests += 2
	t.Logf("set_metadata of 40 KiB: %d %+v %v", a.status, a.body, a.err)
	if a.err != nil || a.status >= 500 || a.body.Code == "" {
		t.Errorf("set_metadata over etcd's request limit: %d %+v %v; want a 4xx with an error body", a.status, a.body, a.err)
	}
	r.checkState(t, []ack{{kind: "vm", id: vm.Entity.ID, task: vm.ID}}, rp)
	if vms, err := r.cl.ListVMs(ctx, r.project, ""); err != nil || len(vms) != 1 {
		t.Errorf("VMs after the refused create: %d %v, want the one made after", len(vms), err)
	}
	rp.publish(t)
}

// TestNoSpace: etcd's space quota (--quota-backend-bytes) filled until
// it raises its NOSPACE alarm: under load, changes get a clean 503 saying
// the store is out of space and reads still work; once space is freed
// (the operator's steps: delete, compact, defragment, disarm the alarm)
// changes work again and the invariants hold.
func TestNoSpace(t *testing.T) {
	r := newRig(t, rigConfig{heartbeat: 3 * time.Second, limits: quick, hosts: 2, etcdArgs: []string{"--quota-backend-bytes", fmt.Sprint(24 << 20)}})
	rp := &report{name: "etcd out of space (NOSPACE)"}
	st := photontest.Store(t, r.etcd.Endpoint)
	l := r.startLoad(t, 4)
	time.Sleep(2 * time.Second)
	junk := strings.Repeat("j", 1<<20)
	full := false
	for i := 0; i < 64 && !full; i++ {
		_, err := st.Client().Put(ctx, fmt.Sprintf("/fault/junk/%03d", i), junk)
		switch {
		case errors.Is(err, store.ErrNoSpace):
			full = true
		case err != nil:
			t.Fatalf("fill etcd: %v", err)
		}
	}
	if !full {
		t.Fatal("etcd took 64 MiB over a 24 MiB quota without NOSPACE")
	}
	rp.faults++
	time.Sleep(5 * time.Second)
	// Reads work; changes are refused cleanly.
	if _, err := r.cl.ListTenants(ctx, ""); err != nil {
		t.Errorf("a read while etcd is out of space: %v", err)
	}
	_, err := r.cl.CreateTenant(ctx, &api.TenantCreateSpec{Name: "while-full"})
	var ae *api.Error
	if !errors.As(err, &ae) || ae.HTTPStatus != http.StatusServiceUnavailable || !strings.Contains(ae.Message, "space") {
		t.Errorf("a change while etcd is out of space: %v; want 503 saying the store is out of space", err)
	}
	// Free space as an operator would.
	if _, err := st.Client().Delete(ctx, "/fault/junk/", clientv3.WithPrefix()); err != nil {
		t.Fatalf("delete the junk: %v", err)
	}
	rev, err := st.Rev(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Client().Compact(ctx, rev, clientv3.WithCompactPhysical()); err != nil {
		t.Fatalf("compact: %v", err)
	}
	if _, err := st.Client().Defragment(ctx, r.etcd.Endpoint); err != nil {
		t.Fatalf("defragment: %v", err)
	}
	if _, err := st.Client().AlarmDisarm(ctx, &clientv3.AlarmMember{}); err != nil {
		t.Fatalf("disarm: %v", err)
	}
	n := 0
	rp.recover = append(rp.recover, r.untilAnswered(t, 30*time.Second, func() error {
		n++
		_, err := r.cl.CreateTenant(ctx, &api.TenantCreateSpec{Name: fmt.Sprintf("after-%d", n)})
		return err
	}))
	rp.hostsReady = append(rp.hostsReady, r.waitHostsReady(t, 3*time.Second))
	time.Sleep(time.Second)
	l.halt()
	l.check(t, quick.OpTimeout+slack, rp)
	if n := r.log.count("etcd out of space"); n != 1 {
		t.Errorf("the log says \"etcd out of space\" %d times, want once", n)
	}
	if n := r.log.count("etcd takes changes again"); n != 1 {
		t.Errorf("the log says \"etcd takes changes again\" %d times, want once", n)
	}
	rp.publish(t)
}
