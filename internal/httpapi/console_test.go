package httpapi_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/internal/controller"
	"github.com/photon-cloud/photon/internal/driver/fake"
	"github.com/photon-cloud/photon/internal/httpapi"
	"github.com/photon-cloud/photon/internal/photontest"
	"github.com/photon-cloud/photon/internal/store"
)

// TestVMConsole reads a VM's console through the real HTTPS server from an
// in-process agent on the fake driver (whose console is a line per change):
// a plain read, a follow that receives the lines of power changes as they
// happen and ends when the client goes (the session and the agent's
// stream end too) or when the VM is deleted, and the errors of a host
// that does not answer. Foreign tenants get 404 (TestIsolationMatrix).
func TestVMConsole(t *testing.T) {
	c := photontest.NewController(t, "", func(cfg *controller.Config) { cfg.HeartbeatTimeout = 2 * time.Second })
	cl := c.Client
	tt := waitFor(t, cl)(cl.CreateTenant(ctx(), &api.TenantCreateSpec{Name: "ct"}))
	pt := waitFor(t, cl)(cl.CreateProject(ctx(), tt.Entity.ID, &api.ProjectCreateSpec{Name: "cp"}))
	for _, f := range []api.FlavorCreateSpec{
		{Name: "csmall", Kind: "vm", Cost: []api.QuotaLineItem{{Key: "vm.cpu", Value: 1, Unit: "COUNT"}, {Key: "vm.memory", Value: 1, Unit: "GB"}}},
		{Name: "ceph", Kind: "ephemeral-disk", Cost: []api.QuotaLineItem{{Key: "ephemeral-disk", Value: 1, Unit: "COUNT"}}},
	} {
		waitFor(t, cl)(cl.CreateFlavor(ctx(), &f))
	}
	agent := photontest.NewAgent(t, c, fake.Config{})
	newVM := func(name string) string {
		return waitFor(t, cl)(cl.CreateVM(ctx(), pt.Entity.ID, &api.VMCreateSpec{Name: name, Flavor: "csmall",
			AttachedDisks: []api.AttachedDiskCreateSpec{{Name: "boot", Kind: "ephemeral-disk", Flavor: "ceph", CapacityGB: 1, BootDisk: true}}})).Entity.ID
	}
	vm := newVM("web-1")
	sessions := func() int {
		n, err := c.Server.Store.Count(ctx(), store.Prefix("consolereq"))
		if err != nil {
			t.Fatal(err)
		}
		return n
	}

	t.Run("read", func(t *testing.T) {
		start := time.Now()
		r, err := cl.VMConsole(ctx(), vm, false)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(r)
		r.Close()
		if err != nil {
			t.Fatal(err)
		}
		if s := string(b); !strings.Contains(s, "web-1: created") || !strings.Contains(s, "attached") {
			t.Fatalf("console:\n%s", s)
		}
		t.Logf("console of %d bytes read in %s", len(b), time.Since(start))
		waitUntil(t, "the session ends", func() bool { return sessions() == 0 })
	})

	t.Run("follow", func(t *testing.T) {
		fctx, cancel := context.WithCancel(ctx())
		defer cancel()
		r, err := cl.VMConsole(fctx, vm, true)
		if err != nil {
			t.Fatal(err)
		}
		lines := make(chan string, 100)
		go func() {
			defer close(lines)
			s := bufio.NewScanner(r)
			for s.Scan() {
				lines <- s.Text()
			}
		}()
		expect := func(want string) {
			t.Helper()
			deadline := time.After(5 * time.Second)
			for {
				select {
				case l, ok := <-lines:
					if !ok {
						t.Fatalf("console ended before %q", want)
					}
					if strings.Contains(l, want) {
						return
					}
				case <-deadline:
					t.Fatalf("no console line %q within 5 s", want)
				}
			}
		}
		expect("web-1: created") // the log so far first
		waitFor(t, cl)(cl.StartVM(ctx(), vm))
		expect("power STOPPED -> STARTED")
		waitFor(t, cl)(cl.StopVM(ctx(), vm))
		expect("power STARTED -> STOPPED")
		if sessions() != 1 {
			t.Errorf("%d console sessions while following, want 1", sessions())
		}
		// The client goes away: the session and the agent's stream end.
		cancel()
		r.Close()
		waitUntil(t, "the session ends after the client left", func() bool { return sessions() == 0 })
	})

	t.Run("follow ends when the VM is deleted", func(t *testing.T) {
		vm2 := newVM("web-2")
		r, err := cl.VMConsole(ctx(), vm2, true)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		ended := make(chan error, 1)
		go func() {
			_, err := io.ReadAll(r)
			ended <- err
		}()
		waitUntil(t, "the follow starts", func() bool { return sessions() == 1 })
		waitFor(t, cl)(cl.DeleteVM(ctx(), vm2))
		select {
		case err := <-ended:
			if err != nil {
				t.Fatalf("follow ended with %v, want a clean end", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("the follow did not end within 5 s of the VM's deletion")
		}
		if _, err := cl.VMConsole(ctx(), vm2, false); !errors.Is(err, &api.Error{Code: "VmNotFound"}) {
			t.Fatalf("console of a deleted VM: %v, want VmNotFound", err)
		}
	})

	t.Run("bad query", func(t *testing.T) {
		if status, e := raw(t, c, c.Token, "GET", "/v1/vms/"+vm+"/console?follow=yes", ""); status != 400 || e.Code != api.CodeInvalidQuery {
			t.Fatalf("follow=yes: %d %+v", status, e)
		}
	})

	t.Run("agent gone", func(t *testing.T) {
		defer func(d time.Duration) { httpapi.ConsoleAgentWait = d }(httpapi.ConsoleAgentWait)
		httpapi.ConsoleAgentWait = time.Second
		agent.Stop()
		// The host is still READY: the agent does not answer in time.
		start := time.Now()
		_, err := cl.VMConsole(ctx(), vm, false)
		var ae *api.Error
		if !errors.As(err, &ae) || ae.Status() != 503 || !strings.Contains(ae.Message, "did not send") {
			t.Fatalf("console with the agent stopped: %v, want 503 (did not send)", err)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("took %s to fail", d)
		}
		// The host is down: refused at once, with the reason.
		waitUntil(t, "the host is ERROR", func() bool {
			h, err := cl.ListHosts(ctx())
			return err == nil && len(h) == 1 && h[0].State == api.HostError
		})
		start = time.Now()
		_, err = cl.VMConsole(ctx(), vm, true)
		if !errors.As(err, &ae) || ae.Status() != 503 || !strings.Contains(ae.Message, "is down") {
			t.Fatalf("console on a down host: %v, want 503 (is down)", err)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("took %s to refuse", d)
		}
		waitUntil(t, "no session is left", func() bool { return sessions() == 0 })
	})
}
