package hosts_test

import (
	"errors"
	"net/http"
	"slices"
	"testing"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/client"
	"github.com/photon-cloud/photon/internal/photontest"
	"github.com/photon-cloud/photon/internal/store"
)

// TestReportedImages: the images a host's status reports list are stored
// (sorted, each once, bad ids dropped), written to etcd only when the set
// changes (also by a restarted controller, which has no memory of the
// last report), and removed with the host.
func TestReportedImages(t *testing.T) {
	c := photontest.NewController(t, "")
	jt, err := c.Client.CreateJoinToken(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	anon, _ := client.New(c.URL, client.WithCACertFile(c.CACert))
	var joined api.HostJoinResponse
	if err := anon.Do(ctx, http.MethodPost, "/v1/agent/join", &api.HostJoinRequest{JoinToken: jt.Token, Address: "10.1.2.1",
		Capacity: api.HostResources{CPUCount: 2, MemoryMB: 1024}, Hypervisor: "fake"}, &joined); err != nil {
		t.Fatal(err)
	}
	id := joined.HostID
	hc, _ := client.New(c.URL, client.WithCACertFile(c.CACert), client.WithToken(joined.Credential))
	report := func(images ...string) {
		t.Helper()
		if err := hc.Do(ctx, http.MethodPost, "/v1/agent/hosts/"+id+"/status", &api.HostStatusReport{Images: images}, nil); err != nil {
			t.Fatal(err)
		}
	}
	stored := func() ([]string, int64) {
		t.Helper()
		var ci struct {
			Images []string `json:"images"`
		}
		rev, err := photontest.Store(t, c.Etcd[0]).Get(ctx, store.Key("hostimages", id), &ci)
		if errors.Is(err, store.ErrNotFound) {
			return nil, 0
		} else if err != nil {
			t.Fatal(err)
		}
		if l, err := c.Server.Hosts.Images(ctx, id); err != nil || !slices.Equal(l, ci.Images) {
			t.Fatalf("Images = %q, %v; stored %q", l, err, ci.Images)
		}
		return ci.Images, rev
	}
	expect := func(what string, want []string, changed bool, before int64) int64 {
		t.Helper()
		got, rev := stored()
		if !slices.Equal(got, want) || (rev != before) != changed {
			t.Fatalf("%s: stored %q at revision %d (before: %d), want %q, written: %v", what, got, rev, before, want, changed)
		}
		return rev
	}

	report()
	rev := expect("nothing cached", nil, false, 0)
	report("img-b", "img-a", "img-a", "bad/id", "")
	rev = expect("first images", []string{"img-a", "img-b"}, true, rev)
	for range 5 {
		report("img-a", "img-b")
		report("img-b", "img-a")
	}
	rev = expect("the same set again", []string{"img-a", "img-b"}, false, rev)

	// A restarted controller compares with what etcd holds.
	c.Restart(t)
	hc, _ = client.New(c.URL, client.WithCACertFile(c.CACert), client.WithToken(joined.Credential))
	report("img-a", "img-b")
	rev = expect("the same set after a restart", []string{"img-a", "img-b"}, false, rev)
	report("img-a")
	rev = expect("img-b evicted", []string{"img-a"}, true, rev)
	report()
	rev = expect("all evicted", []string{}, true, rev)
	report("img-c")
	expect("img-c cached", []string{"img-c"}, true, rev)

	// The record goes with the host.
	cl := c.Client
	done(t, cl)(cl.SuspendHost(ctx, id))
	done(t, cl)(cl.EnterHostMaintenance(ctx, id))
	done(t, cl)(cl.DeleteHost(ctx, id))
	if got, rev := stored(); got != nil || rev != 0 {
		t.Errorf("after the host was deleted: %q at %d", got, rev)
	}
	if err := c.Server.Hosts.ReportImages(ctx, id, []string{"img-a"}); err != nil {
		t.Fatal(err)
	}
	if got, rev := stored(); got != nil || rev != 0 {
		t.Errorf("a late report of a deleted host was stored: %q at %d", got, rev)
	}
}
