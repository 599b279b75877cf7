package hosts_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/client"
	"github.com/photon-cloud/photon/internal/controller"
	"github.com/photon-cloud/photon/internal/driver/fake"
	"github.com/photon-cloud/photon/internal/photontest"
)

var ctx = context.Background()

func code(err error) string {
	var ae *api.Error
	if errors.As(err, &ae) {
		return ae.Code
	}
	return ""
}

func waitState(t *testing.T, cl *client.Client, id, state string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		h, err := cl.GetHost(ctx, id)
		if err == nil && h.State == state {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("host %s: %+v %v, want %s", id, h, err, state)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func done(t *testing.T, cl *client.Client) func(*api.Task, error) *api.Task {
	return photontest.Done(t, ctx, cl)
}

// readyHost starts a controller whose hosts go ERROR after 2 s of silence
// and one fake host (4 CPUs, 8 GB), READY.
func readyHost(t *testing.T) (*photontest.Cloud, *photontest.Agent) {
	t.Helper()
	c := photontest.NewController(t, "", func(cfg *controller.Config) { cfg.HeartbeatTimeout = 2 * time.Second })
	a := photontest.NewAgent(t, c, fake.Config{CPUCount: 4, MemoryMB: 8192})
	waitState(t, c.Client, a.HostID(), api.HostReady)
	return c, a
}

// TestHostModes: suspend, maintenance (only from SUSPENDED and without
// VMs), exit, resume, and delete (only from MAINTENANCE), through the API.
func TestHostModes(t *testing.T) {
	c, a := readyHost(t)
	cl, id := c.Client, a.HostID()
	h, err := cl.GetHost(ctx, id)
	if err != nil || h.Capacity.CPUCount != 4 || h.Capacity.MemoryMB != 8192 || len(h.Datastores) != 1 || h.EsxVersion != "fake" {
		t.Fatalf("host = %+v, %v", h, err)
	}
	if _, err := cl.EnterHostMaintenance(ctx, id); code(err) != "InvalidHostState" {
		t.Errorf("maintenance from READY: %v", err)
	}
	if _, err := cl.DeleteHost(ctx, id); code(err) != "InvalidHostState" {
		t.Errorf("delete a READY host: %v", err)
	}
	for _, step := range []struct {
		op   func(context.Context, string) (*api.Task, error)
		want string
	}{
		{cl.SuspendHost, api.HostSuspended}, {cl.EnterHostMaintenance, api.HostMaintenance},
		{cl.ExitHostMaintenance, api.HostReady}, {cl.SuspendHost, api.HostSuspended}, {cl.ResumeHost, api.HostReady},
	} {
		done(t, cl)(step.op(ctx, id))
		waitState(t, cl, id, step.want)
	}
	dss, err := cl.ListDatastores(ctx)
	if err != nil || len(dss) != 1 || dss[0].CapacityGB != 1000 {
		t.Fatalf("datastores = %+v, %v", dss, err)
	}
	done(t, cl)(cl.SuspendHost(ctx, id))
	done(t, cl)(cl.EnterHostMaintenance(ctx, id))
	done(t, cl)(cl.DeleteHost(ctx, id))
	if _, err := cl.GetHost(ctx, id); code(err) != "HostNotFound" {
		t.Errorf("deleted host: %v", err)
	}
	// The deleted host's credential stops working at once.
	hc, err := client.New(c.URL, client.WithCACertFile(c.CACert), client.WithToken(credential(t, a)))
	if err != nil {
		t.Fatal(err)
	}
	err = hc.Do(ctx, http.MethodPost, "/v1/agent/hosts/"+id+"/status", &api.HostStatusReport{}, nil)
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Status() != http.StatusUnauthorized {
		t.Errorf("revoked host's report: %v, want 401", err)
	}
	if dss, _ := cl.ListDatastores(ctx); len(dss) != 0 {
		t.Errorf("datastores after the host left: %+v", dss)
	}
}

// TestHeartbeatRenewals: a host reporting every 200 ms keeps its 2 s
// liveness lease with a renewal at most every quarter TTL (not one per
// report), stays READY for several TTLs, and turns ERROR once silent.
func TestHeartbeatRenewals(t *testing.T) {
	c, a := readyHost(t)
	cl, id := c.Client, a.HostID()
	r0 := c.Server.Hosts.LeaseRenewals()
	for range 10 { // 5 s: 25 reports, 2.5 TTLs
		time.Sleep(500 * time.Millisecond)
		if h, err := cl.GetHost(ctx, id); err != nil || h.State != api.HostReady {
			t.Fatalf("host while reporting = %+v, %v; want READY", h, err)
		}
	}
	if n := c.Server.Hosts.LeaseRenewals() - r0; n < 5 || n > 12 {
		t.Errorf("%d lease renewals in 5 s of reports every 200 ms with a 2 s TTL; want one per 0.5 s (about 10)", n)
	}
	a.Stop()
	waitState(t, cl, id, api.HostError)
}

// credential reads the agent's stored identity.
func credential(t *testing.T, a *photontest.Agent) string {
	t.Helper()
	return a.Credential()
}

// TestJoinTokens: a join token works once; a pre-registered host joins by
// a token made for it and keeps its id.
func TestJoinTokens(t *testing.T) {
	c := photontest.NewController(t, "")
	cl := c.Client
	jt, err := cl.CreateJoinToken(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	req := &api.HostJoinRequest{JoinToken: jt.Token, Address: "10.1.1.1", Capacity: api.HostResources{CPUCount: 2, MemoryMB: 1024}, Hypervisor: "fake"}
	anon, _ := client.New(c.URL, client.WithCACertFile(c.CACert))
	var resp api.HostJoinResponse
	if err := anon.Do(ctx, http.MethodPost, "/v1/agent/join", req, &resp); err != nil || resp.HostID == "" || resp.Credential == "" {
		t.Fatalf("join: %+v, %v", resp, err)
	}
	if err := anon.Do(ctx, http.MethodPost, "/v1/agent/join", req, &resp); code(err) != api.CodeInvalidAuthToken {
		t.Errorf("second use of a join token: %v, want InvalidAuthToken", err)
	}
	// Pre-registered host.
	task := done(t, cl)(cl.CreateHost(ctx, &api.HostCreateSpec{Address: "10.1.1.2", UsageTags: []string{"CLOUD"}}))
	pre := task.Entity.ID
	if h, err := cl.GetHost(ctx, pre); err != nil || h.State != api.HostNotProvisioned {
		t.Fatalf("pre-registered host = %+v, %v", h, err)
	}
	if _, err := cl.CreateHost(ctx, &api.HostCreateSpec{Address: "10.1.1.2"}); code(err) != api.CodeNameTaken {
		t.Errorf("second host at one address: %v", err)
	}
	jt2, err := cl.CreateJoinToken(ctx, pre)
	if err != nil {
		t.Fatal(err)
	}
	req.JoinToken, req.Address = jt2.Token, "10.1.1.2"
	if err := anon.Do(ctx, http.MethodPost, "/v1/agent/join", req, &resp); err != nil || resp.HostID != pre {
		t.Fatalf("pre-registered join: %+v, %v (want host %s)", resp, err, pre)
	}
	if _, err := cl.CreateHost(ctx, &api.HostCreateSpec{Address: "bad address"}); code(err) != api.CodeInvalidEntity ||
		!strings.Contains(err.Error(), "address") {
		t.Errorf("bad address: %v", err)
	}
}

// TestJoinTokenExpiry: a join token past its lifetime is refused.
func TestJoinTokenExpiry(t *testing.T) {
	c := photontest.NewController(t, "", func(cfg *controller.Config) { cfg.JoinTokenTTL = 500 * time.Millisecond })
	jt, err := c.Client.CreateJoinToken(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	anon, _ := client.New(c.URL, client.WithCACertFile(c.CACert))
	req := &api.HostJoinRequest{JoinToken: jt.Token, Address: "10.1.1.9", Capacity: api.HostResources{CPUCount: 2, MemoryMB: 1024}}
	if err := anon.Do(ctx, http.MethodPost, "/v1/agent/join", req, nil); code(err) != api.CodeInvalidAuthToken {
		t.Errorf("expired join token: %v, want InvalidAuthToken", err)
	}
}
