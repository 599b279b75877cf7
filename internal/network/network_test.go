package network_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/client"
	"github.com/photon-cloud/photon/internal/agent"
	"github.com/photon-cloud/photon/internal/controller"
	"github.com/photon-cloud/photon/internal/driver/fake"
	"github.com/photon-cloud/photon/internal/photontest"
)

var ctx = context.Background()

// env is a controller with a tenant, a project "p" and flavors "small"
// (vm: 1 CPU, 1 GB) and "eph".
type env struct {
	*photontest.Cloud
	cl      *client.Client
	tenant  string
	project string
}

func fast(c *controller.Config) {
	c.HeartbeatTimeout = 2 * time.Second
	c.HostTimeout = 20 * time.Second
}

func newEnv(t testing.TB, etcd string, quota string) *env {
	t.Helper()
	c := photontest.NewController(t, etcd, fast)
	e := &env{Cloud: c, cl: c.Client}
	items, err := api.ParseLimits(quota)
	if err != nil {
		t.Fatal(err)
	}
	// The tenant holds ten times the project's quota: room for more.
	big := make([]api.QuotaLineItem, len(items))
	for i, it := range items {
		big[i] = it
		big[i].Value *= 10
	}
	e.tenant = e.done(t)(e.cl.CreateTenant(ctx, &api.TenantCreateSpec{Name: "t", Quota: api.QuotaSpecFromItems(big)})).Entity.ID
	e.project = e.done(t)(e.cl.CreateProject(ctx, e.tenant, &api.ProjectCreateSpec{Name: "p", Quota: api.QuotaSpecFromItems(items)})).Entity.ID
	for _, f := range []api.FlavorCreateSpec{
		{Name: "small", Kind: "vm", Cost: []api.QuotaLineItem{{Key: "vm", Value: 1, Unit: "COUNT"}, {Key: "vm.cpu", Value: 1, Unit: "COUNT"}, {Key: "vm.memory", Value: 1, Unit: "GB"}}},
		{Name: "eph", Kind: "ephemeral-disk", Cost: []api.QuotaLineItem{{Key: "ephemeral-disk", Value: 1, Unit: "COUNT"}}},
	} {
		e.done(t)(e.cl.CreateFlavor(ctx, &f))
	}
	return e
}

// done waits for a task-returning call and fails the test unless it
// COMPLETED.
func (e *env) done(t testing.TB) func(*api.Task, error) *api.Task {
	return func(task *api.Task, err error) *api.Task {
		t.Helper()
		task, err = wait(e.cl, task, err)
		if err != nil {
			t.Fatal(err)
		}
		return task
	}
}

func wait(cl *client.Client, task *api.Task, err error) (*api.Task, error) {
	if err != nil {
		return nil, err
	}
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	return cl.WaitTask(wctx, task) // an ERROR task with its error
}

// post sends body and answers the task (status 201 expected).
func post(cl *client.Client, method, path string, body any) (*api.Task, error) {
	var task api.Task
	if err := cl.Do(ctx, method, path, body, &task); err != nil {
		return nil, err
	}
	return &task, nil
}

func (e *env) router(t testing.TB, project, name, cidr string) string {
	t.Helper()
	return e.done(t)(post(e.cl, "POST", "/v1/projects/"+project+"/routers", &api.RouterCreateSpec{Name: name, PrivateIPCidr: cidr})).Entity.ID
}

func (e *env) subnet(t testing.TB, router string, spec api.SubnetCreateSpec) string {
	t.Helper()
	return e.done(t)(post(e.cl, "POST", "/v1/routers/"+router+"/subnets", &spec)).Entity.ID
}

func getSubnet(t testing.TB, cl *client.Client, id string) api.Subnet {
	t.Helper()
	var s api.Subnet
	if err := cl.Do(ctx, "GET", "/v1/subnets/"+id, nil, &s); err != nil {
		t.Fatal(err)
	}
	return s
}

// code is err's API code and field ("" when none).
func code(err error) (string, string) {
	var ae *api.Error
	if !errors.As(err, &ae) {
		return fmt.Sprint(err), ""
	}
	return ae.Code, ae.Data["field"]
}

func TestRoutersAndSubnets(t *testing.T) {
	e := newEnv(t, "", "vm 10 COUNT")
	r1 := e.router(t, e.project, "r1", "10.10.0.1/16")
	var r api.Router
	if err := e.cl.Do(ctx, "GET", "/v1/routers/"+r1, nil, &r); err != nil || r.PrivateIPCidr != "10.10.0.0/16" || r.ProjectID != e.project || r.State != api.NetworkReady {
		t.Fatalf("router = %+v, %v; want 10.10.0.0/16 READY in the project", r, err)
	}
	web := e.subnet(t, r1, api.SubnetCreateSpec{Name: "web", PrivateIPCidr: "10.10.1.77/24", DNSServerAddresses: []string{"1.1.1.1"}})
	s := getSubnet(t, e.cl, web)
	if s.PrivateIPCidr != "10.10.1.0/24" || s.Type != api.SubnetNAT || s.ReservedIPs["GATEWAY"] != "10.10.1.1" ||
		s.ReservedIPs["BROADCAST"] != "10.10.1.255" || s.VNI == 0 || s.RouterID != r1 {
		t.Fatalf("subnet = %+v", s)
	}
	db := e.subnet(t, r1, api.SubnetCreateSpec{Name: "db", PrivateIPCidr: "10.10.2.0/29", Type: api.SubnetNoNAT})
	if d := getSubnet(t, e.cl, db); d.VNI == s.VNI || d.Type != api.SubnetNoNAT {
		t.Fatalf("db = %+v; want its own VNI (web has %d), NO_NAT", d, s.VNI)
	}
	for _, tc := range []struct {
		name, method, path string
		body               any
		code, field        string
	}{
		{"router name taken", "POST", "/v1/projects/" + e.project + "/routers", &api.RouterCreateSpec{Name: "r1", PrivateIPCidr: "10.20.0.0/16"}, api.CodeNameTaken, "name"},
		{"router bad CIDR", "POST", "/v1/projects/" + e.project + "/routers", &api.RouterCreateSpec{Name: "r2", PrivateIPCidr: "10.20.0.0"}, api.CodeInvalidEntity, "privateIpCidr"},
		{"router IPv6", "POST", "/v1/projects/" + e.project + "/routers", &api.RouterCreateSpec{Name: "r2", PrivateIPCidr: "fd00::/64"}, api.CodeInvalidEntity, "privateIpCidr"},
		{"router on the hosts' transit links", "POST", "/v1/projects/" + e.project + "/routers", &api.RouterCreateSpec{Name: "r2", PrivateIPCidr: "169.254.64.0/20"}, api.CodeInvalidEntity, "privateIpCidr"},
		{"router bad name", "POST", "/v1/projects/" + e.project + "/routers", &api.RouterCreateSpec{Name: "2r", PrivateIPCidr: "10.20.0.0/16"}, api.CodeInvalidEntity, "name"},
		{"subnet outside its router", "POST", "/v1/routers/" + r1 + "/subnets", &api.SubnetCreateSpec{Name: "x", PrivateIPCidr: "10.11.0.0/24"}, api.CodeInvalidEntity, "privateIpCidr"},
		{"subnet larger than its router", "POST", "/v1/routers/" + r1 + "/subnets", &api.SubnetCreateSpec{Name: "x", PrivateIPCidr: "10.0.0.0/8"}, api.CodeInvalidEntity, "privateIpCidr"},
		{"subnet smaller than /29", "POST", "/v1/routers/" + r1 + "/subnets", &api.SubnetCreateSpec{Name: "x", PrivateIPCidr: "10.10.3.0/30"}, api.CodeInvalidEntity, "privateIpCidr"},
		{"subnet overlapping", "POST", "/v1/routers/" + r1 + "/subnets", &api.SubnetCreateSpec{Name: "x", PrivateIPCidr: "10.10.0.0/23"}, api.CodeInvalidEntity, "privateIpCidr"},
		{"subnet name taken", "POST", "/v1/routers/" + r1 + "/subnets", &api.SubnetCreateSpec{Name: "web", PrivateIPCidr: "10.10.9.0/24"}, api.CodeNameTaken, "name"},
		{"subnet bad type", "POST", "/v1/routers/" + r1 + "/subnets", &api.SubnetCreateSpec{Name: "x", PrivateIPCidr: "10.10.9.0/24", Type: "ROUTED"}, api.CodeInvalidEntity, "type"},
		{"subnet bad DNS", "POST", "/v1/routers/" + r1 + "/subnets", &api.SubnetCreateSpec{Name: "x", PrivateIPCidr: "10.10.9.0/24", DNSServerAddresses: []string{"one"}}, api.CodeInvalidEntity, "dnsServerAddresses[0]"},
		{"router with subnets", "DELETE", "/v1/routers/" + r1, nil, api.CodeContainerNotEmpty, ""},
		{"missing router", "GET", "/v1/routers/nope", nil, api.CodeRouterNotFound, ""},
		{"missing subnet", "DELETE", "/v1/subnets/nope", nil, api.CodeSubnetNotFound, ""},
		{"subnet renamed to a taken name", "PATCH", "/v1/subnets/" + db, &api.SubnetUpdateSpec{Name: "web"}, api.CodeNameTaken, "name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := post(e.cl, tc.method, tc.path, tc.body)
			if c, f := code(err); c != tc.code || f != tc.field {
				t.Fatalf("%s %s: %v (field %q); want %s naming %q", tc.method, tc.path, err, f, tc.code, tc.field)
			}
		})
	}
	// Renames, lists, default, deletes.
	e.done(t)(post(e.cl, "PATCH", "/v1/routers/"+r1, &api.RouterUpdateSpec{Name: "front"}))
	var rl api.List[api.Router]
	if err := e.cl.Do(ctx, "GET", "/v1/projects/"+e.project+"/routers?name=front", nil, &rl); err != nil || len(rl.Items) != 1 || rl.Items[0].ID != r1 {
		t.Fatalf("routers named front: %+v %v", rl, err)
	}
	var sl api.List[api.Subnet]
	if err := e.cl.Do(ctx, "GET", "/v1/routers/"+r1+"/subnets", nil, &sl); err != nil || len(sl.Items) != 2 {
		t.Fatalf("subnets: %+v %v", sl, err)
	}
	e.done(t)(post(e.cl, "POST", "/v1/subnets/"+db+"/set_default", nil))
	e.done(t)(post(e.cl, "POST", "/v1/subnets/"+web+"/set_default", nil))
	if a, b := getSubnet(t, e.cl, web), getSubnet(t, e.cl, db); !a.IsDefault || b.IsDefault {
		t.Fatalf("after set_default web: web %v db %v", a.IsDefault, b.IsDefault)
	}
	e.done(t)(post(e.cl, "DELETE", "/v1/subnets/"+db, nil))
	e.done(t)(post(e.cl, "DELETE", "/v1/subnets/"+web, nil))
	e.done(t)(post(e.cl, "DELETE", "/v1/routers/"+r1, nil))
	// The same names and CIDR again: nothing was left behind.
	r1 = e.router(t, e.project, "r1", "10.10.0.0/16")
	e.subnet(t, r1, api.SubnetCreateSpec{Name: "web", PrivateIPCidr: "10.10.1.0/24"})
}

func TestProjectDefaultNetwork(t *testing.T) {
	e := newEnv(t, "", "vm 10 COUNT")
	p := e.done(t)(e.cl.CreateProject(ctx, e.tenant, &api.ProjectCreateSpec{Name: "p2", DefaultRouterPrivateIPCidr: "192.168.7.9/16", Quota: &api.QuotaSpec{QuotaItems: map[string]api.QuotaItem{"vm": {Limit: 1, Unit: "COUNT"}}}})).Entity.ID
	var rl api.List[api.Router]
	if err := e.cl.Do(ctx, "GET", "/v1/projects/"+p+"/routers", nil, &rl); err != nil || len(rl.Items) != 1 {
		t.Fatalf("routers of a project with a default CIDR: %+v %v", rl, err)
	}
	r := rl.Items[0]
	if !r.IsDefault || r.PrivateIPCidr != "192.168.0.0/16" {
		t.Fatalf("default router = %+v", r)
	}
	var sl api.List[api.Subnet]
	if err := e.cl.Do(ctx, "GET", "/v1/routers/"+r.ID+"/subnets", nil, &sl); err != nil || len(sl.Items) != 1 {
		t.Fatalf("default subnets: %+v %v", sl, err)
	}
	if s := sl.Items[0]; !s.IsDefault || s.PrivateIPCidr != "192.168.0.0/24" || s.Type != api.SubnetNAT {
		t.Fatalf("default subnet = %+v", s)
	}
	// A bad default CIDR refuses the project, leaving nothing.
	_, err := e.cl.CreateProject(ctx, e.tenant, &api.ProjectCreateSpec{Name: "p3", DefaultRouterPrivateIPCidr: "192.168.7.0/30", Quota: &api.QuotaSpec{QuotaItems: map[string]api.QuotaItem{"vm": {Limit: 1, Unit: "COUNT"}}}})
	if c, f := code(err); c != api.CodeInvalidEntity || f != "defaultRouterPrivateIpCidr" {
		t.Fatalf("project with a /30 default: %v", err)
	}
}

func vmSpec(name string, subnets ...string) *api.VMCreateSpec {
	return &api.VMCreateSpec{Name: name, Flavor: "small", Subnets: subnets,
		AttachedDisks: []api.AttachedDiskCreateSpec{{Name: "boot", Kind: "ephemeral-disk", Flavor: "eph", CapacityGB: 1, BootDisk: true}}}
}

func networks(t testing.TB, cl *client.Client, vm string) []api.NetworkConnection {
	t.Helper()
	var task struct {
		api.Task
		ResourceProperties struct {
			NetworkConnections []api.NetworkConnection `json:"networkConnections"`
		} `json:"resourceProperties"`
	}
	if err := cl.Do(ctx, "GET", "/v1/vms/"+vm+"/subnets", nil, &task); err != nil {
		t.Fatal(err)
	}
	if task.Operation != "GET_NETWORKS" || task.State != api.TaskCompleted || task.ResourceProperties.NetworkConnections == nil {
		t.Fatalf("GET subnets: %+v", task)
	}
	return task.ResourceProperties.NetworkConnections
}

func TestVMPorts(t *testing.T) {
	e := newEnv(t, "", "vm 10 COUNT, sdn.size 3 COUNT")
	photontest.NewAgent(t, e.Cloud, fake.Config{})
	waitHosts(t, e.cl, 1)
	// No subnet and no default: no NIC.
	plain := e.done(t)(e.cl.CreateVM(ctx, e.project, vmSpec("plain"))).Entity.ID
	if n := networks(t, e.cl, plain); len(n) != 0 {
		t.Fatalf("a VM without subnets has NICs %+v", n)
	}
	r := e.router(t, e.project, "r", "10.1.0.0/16")
	a := e.subnet(t, r, api.SubnetCreateSpec{Name: "a", PrivateIPCidr: "10.1.1.0/29"})
	b := e.subnet(t, r, api.SubnetCreateSpec{Name: "b", PrivateIPCidr: "10.1.2.0/24"})
	spec := vmSpec("two", a, b)
	spec.Start = true
	two := e.done(t)(e.cl.CreateVM(ctx, e.project, spec)).Entity.ID
	n := networks(t, e.cl, two)
	if len(n) != 2 || n[0].Network != a || n[0].IPAddress != "10.1.1.2" || n[0].Netmask != "255.255.255.248" || n[0].IsConnected != api.NICConnected ||
		n[1].Network != b || n[1].IPAddress != "10.1.2.2" || n[1].Netmask != "255.255.255.0" || n[0].MacAddress == n[1].MacAddress {
		t.Fatalf("networks = %+v", n)
	}
	// The desired state carries the NICs.
	v, _ := e.cl.GetVM(ctx, two)
	ds, err := e.Server.Hosts.Desired(ctx, hostOf(t, e, v), 0, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if ds.Networks == nil || len(ds.Networks.Subnets) != 2 || len(ds.Networks.Routers) != 1 || ds.Networks.Subnets[0].MTU != 1450 {
		t.Fatalf("host networks = %+v", ds.Networks)
	}
	// This controller has no floating IP range.
	if _, err := waitOn(e.cl)(post(e.cl, "POST", "/v1/vms/"+two+"/acquire_floating_ip", &api.FloatingIPSpec{})); !errors.Is(err, &api.Error{Code: api.CodeInvalidState}) {
		t.Fatalf("acquire without a range: %v", err)
	}
	q, _ := e.cl.GetProjectQuota(ctx, e.project)
	if u := q.QuotaItems["sdn.size"].Usage; u != 2 {
		t.Fatalf("sdn.size usage %v, want 2", u)
	}
	// sdn.size is 3: a VM with two more NICs is refused for quota.
	if _, err := waitOn(e.cl)(e.cl.CreateVM(ctx, e.project, vmSpec("over", a, b))); !errors.Is(err, api.ErrQuota) {
		t.Fatalf("over sdn.size: %v", err)
	}
	// a (/29) has 5 addresses: 4 more fit, the next is refused naming it.
	_ = e.done(t)(e.cl.UpdateProjectQuota(ctx, e.project, &api.QuotaSpec{QuotaItems: map[string]api.QuotaItem{"sdn.size": {Limit: 20, Unit: "COUNT"}}}))
	var full []string
	for i := range 4 {
		full = append(full, e.done(t)(e.cl.CreateVM(ctx, e.project, vmSpec(fmt.Sprintf("a%d", i), a))).Entity.ID)
	}
	_, err = waitOn(e.cl)(e.cl.CreateVM(ctx, e.project, vmSpec("a5", a)))
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Code != api.CodeIPExhausted || ae.Data["subnet"] != a || ae.HTTPStatus != 400 {
		t.Fatalf("a full subnet: %v", err)
	}
	// A subnet with ports is not deleted.
	if _, err := post(e.cl, "DELETE", "/v1/subnets/"+a, nil); !errors.Is(err, &api.Error{Code: api.CodeContainerNotEmpty}) {
		t.Fatalf("delete of a subnet with ports: %v", err)
	}
	// Another project's subnet answers as a missing one.
	p2 := e.done(t)(e.cl.CreateProject(ctx, e.tenant, &api.ProjectCreateSpec{Name: "p2", Quota: &api.QuotaSpec{QuotaItems: map[string]api.QuotaItem{
		"vm": {Limit: 1, Unit: "COUNT"}, "sdn.size": {Limit: 1, Unit: "COUNT"}}}}))
	_, missingErr := e.cl.CreateVM(ctx, p2.Entity.ID, vmSpec("x", "0193c9b2-0000-7000-8000-000000000000"))
	_, foreignErr := e.cl.CreateVM(ctx, p2.Entity.ID, vmSpec("x", b))
	mc, mf := code(missingErr)
	fc, ff := code(foreignErr)
	if mc != api.CodeSubnetNotFound || fc != mc || ff != mf {
		t.Fatalf("another project's subnet: %v; a missing one: %v", foreignErr, missingErr)
	}
	// Deletes return the addresses: a gets them all back.
	e.done(t)(e.cl.StopVM(ctx, two))
	for _, id := range append(full, two, plain) {
		e.done(t)(e.cl.DeleteVM(ctx, id))
	}
	if s := getSubnet(t, e.cl, a); s.ID != a {
		t.Fatal(s)
	}
	for i := range 5 {
		e.done(t)(e.cl.CreateVM(ctx, e.project, vmSpec(fmt.Sprintf("again%d", i), a)))
	}
	q, _ = e.cl.GetProjectQuota(ctx, e.project)
	if u := q.QuotaItems["sdn.size"].Usage; u != 5 {
		t.Fatalf("sdn.size usage %v, want 5", u)
	}
}

func errOf(_ *api.Task, err error) error { return err }

func hostOf(t testing.TB, e *env, v *api.VM) string {
	t.Helper()
	hs, err := e.cl.ListHosts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range hs {
		if h.Address == v.Host {
			return h.ID
		}
	}
	t.Fatalf("no host %s", v.Host)
	return ""
}

func waitHosts(t testing.TB, cl *client.Client, n int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		hs, err := cl.ListHosts(ctx)
		ready := 0
		for _, h := range hs {
			if h.State == api.HostReady {
				ready++
			}
		}
		if err == nil && ready == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d hosts READY: %v", ready, n, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

var _ = netip.Addr{}
var _ = agent.Config{}
