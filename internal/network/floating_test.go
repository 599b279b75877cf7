package network_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/internal/controller"
	"github.com/photon-cloud/photon/internal/driver/fake"
	"github.com/photon-cloud/photon/internal/photontest"
)

func TestFloatingIPs(t *testing.T) {
	c := photontest.NewController(t, "", fast, func(c *controller.Config) { c.FloatingIPRange = "203.0.113.10-203.0.113.12" })
	e := &env{Cloud: c, cl: c.Client}
	items, _ := api.ParseLimits("vm 100 COUNT, sdn.floatingip.size 2 COUNT")
	tItems, _ := api.ParseLimits("vm 200 COUNT, sdn.floatingip.size 20 COUNT")
	e.tenant = e.done(t)(e.cl.CreateTenant(ctx, &api.TenantCreateSpec{Name: "t", Quota: api.QuotaSpecFromItems(tItems)})).Entity.ID
	e.project = e.done(t)(e.cl.CreateProject(ctx, e.tenant, &api.ProjectCreateSpec{Name: "p", Quota: api.QuotaSpecFromItems(items),
		DefaultRouterPrivateIPCidr: "10.5.0.0/16"})).Entity.ID
	for _, f := range []api.FlavorCreateSpec{
		{Name: "small", Kind: "vm", Cost: []api.QuotaLineItem{{Key: "vm", Value: 1, Unit: "COUNT"}, {Key: "vm.cpu", Value: 1, Unit: "COUNT"}, {Key: "vm.memory", Value: 1, Unit: "GB"}}},
		{Name: "eph", Kind: "ephemeral-disk", Cost: []api.QuotaLineItem{{Key: "ephemeral-disk", Value: 1, Unit: "COUNT"}}},
	} {
		e.done(t)(e.cl.CreateFlavor(ctx, &f))
	}
	photontest.NewAgent(t, e.Cloud, fake.Config{})
	waitHosts(t, e.cl, 1)
	var vms []string
	for i := range 3 {
		vms = append(vms, e.done(t)(e.cl.CreateVM(ctx, e.project, vmSpec(fmt.Sprintf("v%d", i)))).Entity.ID)
	}
	acquire := func(vm string, spec *api.FloatingIPSpec) error {
		_, err := waitOn(e.cl)(post(e.cl, "POST", "/v1/vms/"+vm+"/acquire_floating_ip", spec))
		return err
	}
	fip := func(vm string) string {
		v, err := e.cl.GetVM(ctx, vm)
		if err != nil {
			t.Fatal(err)
		}
		return v.FloatingIP
	}
	if err := acquire(vms[0], &api.FloatingIPSpec{}); err != nil || fip(vms[0]) != "203.0.113.10" {
		t.Fatalf("acquire: %v, floatingIp %q", err, fip(vms[0]))
	}
	// The NIC in the host's desired state carries it.
	v0, _ := e.cl.GetVM(ctx, vms[0])
	ds, err := e.Server.Hosts.Desired(ctx, hostOf(t, e, v0), 0, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := ds.MarshalJSON()
	var whole api.HostDesiredState
	_ = jsonDecode(b, &whole)
	found := false
	for _, v := range whole.VMs {
		found = found || v.ID == vms[0] && len(v.NICs) == 1 && v.NICs[0].FloatingIP == "203.0.113.10"
	}
	if !found {
		t.Fatalf("desired VMs = %+v", whole.VMs)
	}
	for _, tc := range []struct {
		name, vm string
		spec     *api.FloatingIPSpec
		code     string
	}{
		{"twice", vms[0], &api.FloatingIPSpec{}, "InvalidVmState"},
		{"a subnet without its NIC", vms[1], &api.FloatingIPSpec{NetworkID: "0193c9b2-0000-7000-8000-000000000000"}, api.CodeSubnetNotFound},
	} {
		if err := acquire(tc.vm, tc.spec); !errors.Is(err, &api.Error{Code: tc.code}) {
			t.Errorf("%s: %v, want %s", tc.name, err, tc.code)
		}
	}
	if err := acquire(vms[1], &api.FloatingIPSpec{}); err != nil || fip(vms[1]) != "203.0.113.11" {
		t.Fatalf("second: %v %q", err, fip(vms[1]))
	}
	// Quota (2) refuses the third.
	if err := acquire(vms[2], &api.FloatingIPSpec{}); !errors.Is(err, api.ErrQuota) {
		t.Fatalf("third over quota: %v", err)
	}
	// Released, and the VM deleted: both return address and quota.
	if _, err := waitOn(e.cl)(post(e.cl, "DELETE", "/v1/vms/"+vms[0]+"/release_floating_ip", nil)); err != nil || fip(vms[0]) != "" {
		t.Fatalf("release: %v %q", err, fip(vms[0]))
	}
	e.done(t)(e.cl.DeleteVM(ctx, vms[1]))
	q, _ := e.cl.GetProjectQuota(ctx, e.project)
	if u := q.QuotaItems["sdn.floatingip.size"].Usage; u != 0 {
		t.Fatalf("sdn.floatingip.size usage %v after release and delete", u)
	}
	if err := acquire(vms[2], &api.FloatingIPSpec{}); err != nil || fip(vms[2]) != "203.0.113.12" {
		t.Fatalf("after release: %v %q", err, fip(vms[2]))
	}
	if err := acquire(vms[0], &api.FloatingIPSpec{}); err != nil || fip(vms[0]) == "" {
		t.Fatalf("again: %v %q", err, fip(vms[0]))
	}
	// The range (3) is then full... with one more VM and quota.
	e.done(t)(e.cl.UpdateProjectQuota(ctx, e.project, &api.QuotaSpec{QuotaItems: map[string]api.QuotaItem{"sdn.floatingip.size": {Limit: 10, Unit: "COUNT"}}}))
	v3 := e.done(t)(e.cl.CreateVM(ctx, e.project, vmSpec("v3"))).Entity.ID
	v4 := e.done(t)(e.cl.CreateVM(ctx, e.project, vmSpec("v4"))).Entity.ID
	if err := acquire(v3, &api.FloatingIPSpec{}); err != nil {
		t.Fatal(err)
	}
	if err := acquire(v4, &api.FloatingIPSpec{}); !errors.Is(err, &api.Error{Code: api.CodeIPExhausted}) {
		t.Fatalf("a full range: %v", err)
	}
}
