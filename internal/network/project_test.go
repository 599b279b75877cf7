package network_test

import (
	"bytes"
	"errors"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/internal/driver/fake"
	"github.com/photon-cloud/photon/internal/network"
	"github.com/photon-cloud/photon/internal/photontest"
	"github.com/photon-cloud/photon/internal/store"
)

// netPrefixes are the prefixes of every key that belongs to a router or
// subnet: the network package's and the hosts' records of the subnets
// they carry.
var netPrefixes = []string{"routers", "subnets", "names/routers", "names/subnets", "project-routers", "router-subnets",
	"default-subnet", "vnis", "ipam", "desired-net", "desired-peers"}

// netKeys reads every key under netPrefixes (and the projects'), with
// its value and revision.
func netKeys(t testing.TB, st *store.Store) map[string]store.KV {
	t.Helper()
	out := map[string]store.KV{}
	for _, p := range append(slices.Clone(netPrefixes), "projects") {
		kvs, next, err := st.Page(ctx, store.Prefix(strings.Split(p, "/")...), "", 10000)
		if err != nil || next != "" {
			t.Fatalf("list %s: %v (more: %q)", p, err, next)
		}
		for _, kv := range kvs {
			out[kv.Key] = kv
		}
	}
	return out
}

// mentioning is the entries of kvs whose key or value names any of ids.
func mentioning(kvs map[string]store.KV, ids ...string) map[string]store.KV {
	out := map[string]store.KV{}
	for k, kv := range kvs {
		for _, id := range ids {
			if strings.Contains(k, id) || bytes.Contains(kv.Value, []byte(id)) {
				out[k] = kv
			}
		}
	}
	return out
}

func sameKVs(a, b map[string]store.KV) bool {
	return maps.EqualFunc(a, b, func(x, y store.KV) bool { return x.Rev == y.Rev && bytes.Equal(x.Value, y.Value) })
}

// TestDeleteProjectNetworks: deleting a project deletes its routers and
// subnets with every key of theirs (their VNIs freed), and is refused
// while one of its subnets has ports; another project's are untouched.
func TestDeleteProjectNetworks(t *testing.T) {
	e := newEnv(t, "", "vm 10 COUNT")
	photontest.NewAgent(t, e.Cloud, fake.Config{})
	waitHosts(t, e.cl, 1)
	st := e.Server.Store
	// No quota: the VM's usage is not what refuses the delete below.
	tenant := e.done(t)(e.cl.CreateTenant(ctx, &api.TenantCreateSpec{Name: "free"})).Entity.ID
	mk := func(name string) (project string, routers, subnets []string) {
		project = e.done(t)(e.cl.CreateProject(ctx, tenant, &api.ProjectCreateSpec{Name: name, DefaultRouterPrivateIPCidr: "10.0.0.0/16"})).Entity.ID
		var rl api.List[api.Router]
		if err := e.cl.Do(ctx, "GET", "/v1/projects/"+project+"/routers", nil, &rl); err != nil || len(rl.Items) != 1 {
			t.Fatalf("routers of %s: %+v %v", name, rl, err)
		}
		var sl api.List[api.Subnet]
		if err := e.cl.Do(ctx, "GET", "/v1/routers/"+rl.Items[0].ID+"/subnets", nil, &sl); err != nil || len(sl.Items) != 1 {
			t.Fatalf("subnets of %s: %+v %v", name, sl, err)
		}
		r2 := e.router(t, project, "second", "172.16.0.0/12")
		s2 := e.subnet(t, r2, api.SubnetCreateSpec{Name: "s2", PrivateIPCidr: "172.16.1.0/24", Type: api.SubnetNoNAT})
		s3 := e.subnet(t, r2, api.SubnetCreateSpec{Name: "s3", PrivateIPCidr: "172.16.2.0/24"})
		return project, []string{rl.Items[0].ID, r2}, []string{sl.Items[0].ID, s2, s3}
	}
	doomed, routers, subnets := mk("doomed")
	other, _, _ := mk("other")
	ids := append(append([]string{doomed}, routers...), subnets...)
	var vnis []string
	for _, s := range subnets {
		vnis = append(vnis, store.Key("vnis", strconv.FormatUint(uint64(getSubnet(t, e.cl, s).VNI), 10)))
	}

	// A VM on the default subnet (no subnets named): the delete is refused
	// naming the subnet, and nothing changes.
	vm := e.done(t)(e.cl.CreateVM(ctx, doomed, vmSpec("vm"))).Entity.ID
	before := netKeys(t, st)
	if len(mentioning(before, ids...)) == 0 || len(mentioning(before, other)) == 0 {
		t.Fatalf("no network keys: %v", slices.Collect(maps.Keys(before)))
	}
	_, err := waitOn(e.cl)(e.cl.DeleteProject(ctx, doomed))
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Code != api.CodeContainerNotEmpty || ae.HTTPStatus != 400 || !strings.Contains(ae.Message, "default") {
		t.Fatalf("delete of a project with a VM on its subnet: %v", err)
	}
	if after := netKeys(t, st); !sameKVs(before, after) {
		t.Fatalf("a refused delete changed keys:\nbefore %v\nafter  %v", slices.Sorted(maps.Keys(before)), slices.Sorted(maps.Keys(after)))
	}
	if _, err := e.cl.GetProject(ctx, doomed); err != nil {
		t.Fatal(err)
	}

	// Without the VM it goes, with its routers and subnets.
	e.done(t)(e.cl.DeleteVM(ctx, vm))
	before = netKeys(t, st)
	theirs := mentioning(before, ids...)
	task := e.done(t)(post(e.cl, "DELETE", "/v1/projects/"+doomed, nil))
	if task.State != api.TaskCompleted {
		t.Fatalf("delete: %+v", task)
	}
	after := netKeys(t, st)
	if left := mentioning(after, ids...); len(left) != 0 {
		t.Fatalf("keys of a deleted project left: %v", slices.Sorted(maps.Keys(left)))
	}
	for _, k := range vnis {
		if _, ok := after[k]; ok {
			t.Fatalf("VNI %s not freed", k)
		}
	}
	for k := range theirs {
		delete(before, k)
	}
	if !sameKVs(before, after) {
		t.Fatalf("the delete changed other keys:\nbefore %v\nafter  %v", slices.Sorted(maps.Keys(before)), slices.Sorted(maps.Keys(after)))
	}
	for _, r := range routers {
		if _, err := post(e.cl, "GET", "/v1/routers/"+r, nil); !errors.Is(err, &api.Error{Code: api.CodeRouterNotFound}) {
			t.Fatalf("router %s of a deleted project: %v", r, err)
		}
	}
	// The other project's network still serves a VM.
	e.done(t)(e.cl.CreateVM(ctx, other, vmSpec("vm")))
	// The name is free again, and so is a default network for it.
	e.done(t)(e.cl.CreateProject(ctx, tenant, &api.ProjectCreateSpec{Name: "doomed", DefaultRouterPrivateIPCidr: "10.0.0.0/16"}))
}

// TestDeleteProjectManyNetworks: a project with MaxProjectNetworks routers
// and subnets goes in one transaction under an external etcd's default
// bound (128 operations); one with more is refused at once.
func TestDeleteProjectManyNetworks(t *testing.T) {
	e := newEnv(t, photontest.ExternalEtcd(t), "vm 10 COUNT")
	for _, tc := range []struct {
		name    string
		subnets int
		want    string
	}{
		{"most", network.MaxProjectNetworks - 1, ""},
		{"too-many", network.MaxProjectNetworks, api.CodeContainerNotEmpty},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := e.done(t)(e.cl.CreateProject(ctx, e.tenant, &api.ProjectCreateSpec{Name: tc.name,
				Quota: &api.QuotaSpec{QuotaItems: map[string]api.QuotaItem{"vm": {Limit: 1, Unit: "COUNT"}}}})).Entity.ID
			r := e.router(t, p, "r", "10.0.0.0/16")
			for i := range tc.subnets {
				e.subnet(t, r, api.SubnetCreateSpec{Name: "s" + strconv.Itoa(i), PrivateIPCidr: "10.0." + strconv.Itoa(i) + ".0/24"})
			}
			before := mentioning(netKeys(t, e.Server.Store), p)
			_, err := waitOn(e.cl)(e.cl.DeleteProject(ctx, p))
			if c, _ := code(err); err != nil && c != tc.want || err == nil && tc.want != "" {
				t.Fatalf("delete: %v, want %q", err, tc.want)
			}
			after := mentioning(netKeys(t, e.Server.Store), p)
			if tc.want == "" && len(after) != 0 || tc.want != "" && !sameKVs(before, after) {
				t.Fatalf("keys after the delete (%v): %v", err, slices.Sorted(maps.Keys(after)))
			}
		})
	}
}
