package main

import (
	"encoding/json"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/photon-cloud/photon/api"
)

var (
	testRouters = []api.Router{
		{Base: api.Base{ID: "r-1", Kind: api.KindRouter}, Name: "r1", PrivateIPCidr: "10.10.0.0/16", State: api.NetworkReady, ProjectID: "p-1"},
		{Base: api.Base{ID: "r-2", Kind: api.KindRouter}, Name: "r2", PrivateIPCidr: "10.20.0.0/16", State: api.NetworkReady, ProjectID: "p-1"},
	}
	testSubnets = []api.Subnet{
		{Base: api.Base{ID: "s-1", Kind: api.KindSubnet}, Name: "web", PrivateIPCidr: "10.10.1.0/24", Type: api.SubnetNAT,
			State: api.NetworkReady, IsDefault: true, RouterID: "r-1", ProjectID: "p-1", DNSServerAddresses: []string{"1.1.1.1"},
			ReservedIPs: map[string]string{"GATEWAY": "10.10.1.1", "NETWORK": "10.10.1.0", "BROADCAST": "10.10.1.255"}, VNI: 4097},
		{Base: api.Base{ID: "s-2", Kind: api.KindSubnet}, Name: "db", PrivateIPCidr: "10.10.2.0/24", Type: api.SubnetNoNAT,
			State: api.NetworkReady, RouterID: "r-1", ProjectID: "p-1", Description: "databases"},
		{Base: api.Base{ID: "s-3", Kind: api.KindSubnet}, Name: "ops", PrivateIPCidr: "10.20.1.0/24", Type: api.SubnetNAT,
			State: api.NetworkReady, RouterID: "r-2", ProjectID: "p-1"},
	}
	testConnections = []api.NetworkConnection{
		{Network: "s-1", MacAddress: "fa:16:3e:00:00:01", IPAddress: "10.10.1.5", Netmask: "255.255.255.0", IsConnected: "Connected"},
		{Network: "s-9", MacAddress: "fa:16:3e:00:00:02", IPAddress: "10.30.0.7", Netmask: "255.255.0.0"},
	}
)

// netFake is computeFake with project p-1's routers and subnets, a VM's
// networks and its floating IP.
type netFake struct {
	*fake
	x   *infraFake
	mu  sync.Mutex
	fip string // vm-1's floating IP
}

func newNetFake(t *testing.T) *netFake {
	n := &netFake{x: newInfraFake()}
	subnetsOf := func(w http.ResponseWriter, r *http.Request) {
		out := []api.Subnet{}
		for _, s := range testSubnets {
			if s.RouterID == r.PathValue("id") && (r.URL.Query().Get("name") == "" || r.URL.Query().Get("name") == s.Name) {
				out = append(out, s)
			}
		}
		writeJSON(w, 200, api.List[api.Subnet]{Items: out})
	}
	withFIP := func(h http.HandlerFunc, ip string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			h(w, r)
			n.mu.Lock()
			n.fip = ip
			n.mu.Unlock()
		}
	}
	n.fake = computeFake(t, n.x, map[string]http.HandlerFunc{
		"GET /v1/projects/p-1/routers":      list(testRouters, func(r api.Router) string { return r.Name }),
		"GET /v1/routers/{id}":              byID(testRouters, func(r api.Router) string { return r.ID }, api.CodeNotFound),
		"GET /v1/routers/{id}/subnets":      subnetsOf,
		"GET /v1/subnets/{id}":              byID(testSubnets, func(s api.Subnet) string { return s.ID }, api.CodeNotFound),
		"POST /v1/projects/p-1/routers":     n.x.task("CREATE_ROUTER", api.KindRouter, "r-1"),
		"PATCH /v1/routers/{id}":            n.x.task("UPDATE_ROUTER", api.KindRouter, "r-1"),
		"DELETE /v1/routers/{id}":           n.x.task("DELETE_ROUTER", api.KindRouter, "r-1"),
		"POST /v1/routers/{id}/subnets":     n.x.task("CREATE_SUBNET", api.KindSubnet, "s-1"),
		"PATCH /v1/subnets/{id}":            n.x.task("UPDATE_SUBNET", api.KindSubnet, "s-1"),
		"DELETE /v1/subnets/{id}":           n.x.task("DELETE_SUBNET", api.KindSubnet, "s-1"),
		"POST /v1/subnets/{id}/set_default": n.x.task("SET_DEFAULT_SUBNET", api.KindSubnet, "s-2"),
		"GET /v1/tasks": func(w http.ResponseWriter, r *http.Request) {
			q := r.URL.Query()
			writeJSON(w, 200, api.List[api.Task]{Items: []api.Task{{Base: api.Base{ID: "task-9"}, Operation: "CREATE_" + strings.ToUpper(q.Get("entityKind")),
				State: api.TaskCompleted, Entity: api.Entity{ID: q.Get("entityId"), Kind: q.Get("entityKind")}}}})
		},
		"GET /v1/vms/{id}/subnets": func(w http.ResponseWriter, r *http.Request) {
			if r.PathValue("id") != "vm-1" {
				writeJSON(w, 400, api.Error{Code: "InvalidVmState", Message: "VM broken is in ERROR"})
				return
			}
			var props map[string]any
			b, _ := json.Marshal(map[string]any{"networkConnections": testConnections})
			_ = json.Unmarshal(b, &props)
			writeJSON(w, 200, api.Task{Base: api.Base{ID: "task-n", Kind: api.KindTask}, Operation: "GET_NETWORKS",
				State: api.TaskCompleted, Entity: api.Entity{ID: "vm-1", Kind: api.KindVM}, ResourceProperties: props})
		},
		"POST /v1/vms/{id}/acquire_floating_ip":   withFIP(n.x.task("ACQUIRE_FLOATING_IP", api.KindVM, "vm-1"), "203.0.113.10"),
		"DELETE /v1/vms/{id}/release_floating_ip": withFIP(n.x.task("RELEASE_FLOATING_IP", api.KindVM, "vm-1"), ""),
		"GET /v1/vms/{id}":                        byIDFunc(n.vms, func(v api.VM) string { return v.ID }, codeVMNotFound),
		"GET /v1/projects/p-1/vms": func(w http.ResponseWriter, r *http.Request) {
			list(n.vms(), func(v api.VM) string { return v.Name })(w, r)
		},
	})
	return n
}

// vms are testVMs, vm-1 with its floating IP.
func (n *netFake) vms() []api.VM {
	n.mu.Lock()
	defer n.mu.Unlock()
	vms := slices.Clone(testVMs)
	vms[1].FloatingIP = n.fip
	return vms
}

// byIDFunc is byID over the items items() gives at each request.
func byIDFunc[T any](items func() []T, id func(T) string, code string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) { byID(items(), id, code)(w, r) }
}

// cliCase is one run of the CLI: its arguments, whether p1 is the current
// project, and what it must do.
type cliCase struct {
	name      string
	args      []string
	noProject bool
	fail      map[string]api.Error // task failures to set first
	code      int
	stdout    string   // exact, unless contains is set
	contains  []string // in stdout
	stderr    string   // prefix of stderr
	call      string   // the last state-changing call, "" for none
	body      any      // what that call's body decodes to (a pointer)
	wantBody  any
}

func (tc cliCase) run(t *testing.T, n *netFake) {
	t.Helper()
	n.x.mu.Lock()
	n.x.fail = map[string]api.Error{}
	for k, v := range tc.fail {
		n.x.fail[k] = v
	}
	before := len(n.x.calls)
	n.x.mu.Unlock()
	stdout, stderr, code := runInProject(t, n.fake, !tc.noProject, tc.args...)
	if code != tc.code {
		t.Fatalf("exit %d, want %d\nstdout %q\nstderr %q", code, tc.code, stdout, stderr)
	}
	if tc.contains == nil && stdout != tc.stdout {
		t.Errorf("stdout %q\nwant   %q", stdout, tc.stdout)
	}
	for _, want := range tc.contains {
		if !strings.Contains(stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, stdout)
		}
	}
	if !strings.HasPrefix(stderr, tc.stderr) || (tc.stderr == "" && stderr != "") {
		t.Errorf("stderr %q, want it to begin %q", stderr, tc.stderr)
	}
	calls := n.x.callList()[before:]
	switch {
	case tc.call == "" && len(calls) > 0:
		t.Errorf("calls %v, want none", calls)
	case tc.call != "" && (len(calls) == 0 || calls[len(calls)-1] != tc.call):
		t.Errorf("calls %v, want %s last", calls, tc.call)
	case tc.body != nil:
		n.x.body(t, tc.call, tc.body)
		if !reflect.DeepEqual(tc.body, tc.wantBody) {
			t.Errorf("body %+v\nwant %+v", tc.body, tc.wantBody)
		}
	}
}

func runCases(t *testing.T, cases []cliCase) {
	n := newNetFake(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { tc.run(t, n) })
	}
}

func TestRouterCommands(t *testing.T) {
	runCases(t, []cliCase{
		{name: "create -p -t, no current project", args: []string{"-n", "router", "create", "-n", "r9", "-i", "10.30.0.0/16", "-t", "t1", "-p", "p1"},
			noProject: true, stdout: "r-1\n", call: "POST /v1/projects/p-1/routers",
			body: &api.RouterCreateSpec{}, wantBody: &api.RouterCreateSpec{Name: "r9", PrivateIPCidr: "10.30.0.0/16"}},
		{name: "create", args: []string{"router", "create", "-n", "r9", "-i", "192.168.0.1/24"},
			stdout: "Created router r9, ID: r-1\n", call: "POST /v1/projects/p-1/routers",
			body: &api.RouterCreateSpec{}, wantBody: &api.RouterCreateSpec{Name: "r9", PrivateIPCidr: "192.168.0.1/24"}},
		{name: "create -o json prints the router", args: []string{"-o", "json", "router", "create", "r9", "-i", "10.30.0.0/16"},
			contains: []string{`"privateIpCidr": "10.10.0.0/16"`, `"id": "r-1"`}, call: "POST /v1/projects/p-1/routers"},
		{name: "create, bad CIDR", args: []string{"router", "create", "-n", "r9", "-i", "10.30.0/16"},
			code: exitUsage, stderr: `photon: -i/--privateIpCidr "10.30.0/16" is not a CIDR such as 10.10.1.0/24`},
		{name: "create, no CIDR", args: []string{"router", "create", "-n", "r9"},
			code: exitUsage, stderr: "photon: photon router create needs -i CIDR"},
		{name: "create, no project", args: []string{"router", "create", "-n", "r9", "-i", "10.30.0.0/16"}, noProject: true,
			code: exitUsage, stderr: "photon: no project given and no current project"},
		{name: "list -n", args: []string{"-n", "router", "list"},
			stdout: "r-1\tr1\t10.10.0.0/16\tREADY\tfalse\nr-2\tr2\t10.20.0.0/16\tREADY\tfalse\n"},
		{name: "list", args: []string{"router", "list", "--name", "r2"},
			stdout: "ID   NAME  CIDR          STATE  DEFAULT\nr-2  r2    10.20.0.0/16  READY  false\n"},
		{name: "show with subnets", args: []string{"router", "show", "r1"},
			contains: []string{"Private CIDR:  10.10.0.0/16", "Subnets:", "web   s-1  10.10.1.0/24  NAT", "db    s-2  10.10.2.0/24  NO_NAT"}},
		{name: "show -n", args: []string{"-n", "router", "show", "r-2"}, stdout: "r-2\tr2\t10.20.0.0/16\tREADY\tfalse\n"},
		{name: "show unknown", args: []string{"router", "show", "nosuch"},
			code: exitError, stderr: "photon: RouterNotFound: no router named \"nosuch\" in project p1 or with that id\n"},
		{name: "update", args: []string{"router", "update", "r1", "-n", "edge"},
			stdout: "Renamed router r1 to edge, ID: r-1\n", call: "PATCH /v1/routers/r-1",
			body: &api.RouterUpdateSpec{}, wantBody: &api.RouterUpdateSpec{Name: "edge"}},
		{name: "update without -n", args: []string{"router", "update", "r1"}, code: exitUsage, stderr: "photon: photon router update needs -n NEWNAME"},
		{name: "delete", args: []string{"router", "delete", "r1"}, stdout: "Deleted router r1, ID: r-1\n", call: "DELETE /v1/routers/r-1"},
		{name: "delete refused", args: []string{"router", "delete", "r1"},
			fail: map[string]api.Error{"DELETE /v1/routers/r-1": {Code: api.CodeContainerNotEmpty, Message: "router r1 has 2 subnets"}},
			code: exitError, stderr: "photon: ContainerNotEmpty: router r1 has 2 subnets (task ", call: "DELETE /v1/routers/r-1"},
		{name: "tasks", args: []string{"-n", "router", "tasks", "r2"}, stdout: "task-9\tCREATE_ROUTER\tCOMPLETED\trouter\tr-2\t0\t0\n"},
	})
}

func TestSubnetCommands(t *testing.T) {
	runCases(t, []cliCase{
		{name: "create", args: []string{"-n", "subnet", "create", "-n", "app", "-r", "r1", "-i", "10.10.5.0/24", "-t", "no_nat",
			"--dns", "1.1.1.1, 8.8.8.8", "-d", "the app tier"},
			stdout: "s-1\n", call: "POST /v1/routers/r-1/subnets", body: &api.SubnetCreateSpec{},
			wantBody: &api.SubnetCreateSpec{Name: "app", Description: "the app tier", PrivateIPCidr: "10.10.5.0/24",
				Type: api.SubnetNoNAT, DNSServerAddresses: []string{"1.1.1.1", "8.8.8.8"}}},
		{name: "create by router id, -p --tenant", args: []string{"subnet", "create", "app", "-r", "r-2", "-i", "10.20.5.0/24", "-t", "NAT",
			"-p", "p1", "--tenant", "t1"}, noProject: true,
			stdout: "Created subnet app, ID: s-1\n", call: "POST /v1/routers/r-2/subnets", body: &api.SubnetCreateSpec{},
			wantBody: &api.SubnetCreateSpec{Name: "app", PrivateIPCidr: "10.20.5.0/24", Type: api.SubnetNAT}},
		{name: "create without -r, two routers", args: []string{"subnet", "create", "-n", "app", "-i", "10.10.5.0/24"},
			code: exitUsage, stderr: "photon: give -r ROUTER: project p1 has routers r1, r2\n"},
		{name: "create, bad type", args: []string{"subnet", "create", "-n", "app", "-r", "r1", "-i", "10.10.5.0/24", "-t", "ROUTED"},
			code: exitUsage, stderr: `photon: -t/--type "ROUTED": want NAT or NO_NAT`},
		{name: "create, bad DNS", args: []string{"subnet", "create", "-n", "app", "-r", "r1", "-i", "10.10.5.0/24", "--dns", "1.1.1"},
			code: exitUsage, stderr: `photon: --dns: "1.1.1" is not an IP address`},
		{name: "create, unknown router", args: []string{"subnet", "create", "-n", "app", "-r", "r7", "-i", "10.10.5.0/24"},
			code: exitError, stderr: `photon: RouterNotFound: no router named "r7" in project p1 or with that id`},
		{name: "list -n, every router", args: []string{"-n", "subnet", "list"},
			stdout: "s-1\tweb\tr1\t10.10.1.0/24\tNAT\tREADY\ttrue\t1.1.1.1\n" +
				"s-2\tdb\tr1\t10.10.2.0/24\tNO_NAT\tREADY\tfalse\t-\n" +
				"s-3\tops\tr2\t10.20.1.0/24\tNAT\tREADY\tfalse\t-\n"},
		{name: "list -r", args: []string{"-n", "subnet", "list", "-r", "r2"}, stdout: "s-3\tops\tr2\t10.20.1.0/24\tNAT\tREADY\tfalse\t-\n"},
		{name: "list -d", args: []string{"-d", "subnet", "list", "--name", "web"},
			contains: []string{"GATEWAY", "DESCRIPTION", "10.10.1.1"}},
		{name: "list, no project", args: []string{"subnet", "list"}, noProject: true, code: exitUsage, stderr: "photon: no project given"},
		{name: "show", args: []string{"subnet", "show", "web"},
			contains: []string{"Router:        r1 (r-1)", "Gateway:       10.10.1.1", "DNS servers:   1.1.1.1", "Default:       true", "VXLAN id:      4097"}},
		{name: "show -n", args: []string{"-n", "subnet", "show", "db"}, stdout: "s-2\tdb\tr-1\t10.10.2.0/24\tNO_NAT\tREADY\tfalse\t-\n"},
		{name: "show -o json", args: []string{"-o", "json", "subnet", "show", "s-3"}, contains: []string{`"name": "ops"`, `"routerId": "r-2"`}},
		{name: "show, not in the router -r names", args: []string{"subnet", "show", "ops", "-r", "r1"},
			code: exitError, stderr: "photon: SubnetNotFound: no subnet named \"ops\" in router r1 or with that id\n"},
		{name: "update", args: []string{"subnet", "update", "web", "-n", "front"},
			stdout: "Renamed subnet web to front, ID: s-1\n", call: "PATCH /v1/subnets/s-1",
			body: &api.SubnetUpdateSpec{}, wantBody: &api.SubnetUpdateSpec{Name: "front"}},
		{name: "set-default", args: []string{"subnet", "set-default", "db"},
			stdout: "Made subnet db the project's default, ID: s-2\n", call: "POST /v1/subnets/s-2/set_default"},
		{name: "delete", args: []string{"subnet", "delete", "ops"}, stdout: "Deleted subnet ops, ID: s-3\n", call: "DELETE /v1/subnets/s-3"},
		{name: "delete refused", args: []string{"subnet", "delete", "web"},
			fail: map[string]api.Error{"DELETE /v1/subnets/s-1": {Code: api.CodeContainerNotEmpty, Message: "subnet web has 2 ports"}},
			code: exitError, stderr: "photon: ContainerNotEmpty: subnet web has 2 ports (task ", call: "DELETE /v1/subnets/s-1"},
		{name: "tasks", args: []string{"-n", "subnet", "tasks", "web"}, stdout: "task-9\tCREATE_SUBNET\tCOMPLETED\tsubnet\ts-1\t0\t0\n"},
	})
}

func TestVMNetworkCommands(t *testing.T) {
	runCases(t, []cliCase{
		{name: "networks", args: []string{"vm", "networks", "web-1"},
			stdout: "NETWORK  MAC                IP         NETMASK        CONNECTED\n" +
				"web      fa:16:3e:00:00:01  10.10.1.5  255.255.255.0  Connected\n" +
				"s-9      fa:16:3e:00:00:02  10.30.0.7  255.255.0.0    Unknown\n"},
		{name: "networks -n (Photon's columns, subnet ids)", args: []string{"-n", "vm", "networks", "vm-1"},
			stdout: "s-1\tfa:16:3e:00:00:01\t10.10.1.5\t255.255.255.0\tConnected\ns-9\tfa:16:3e:00:00:02\t10.30.0.7\t255.255.0.0\tUnknown\n"},
		{name: "networks -d", args: []string{"-d", "vm", "networks", "web-1"}, contains: []string{"SUBNET ID", "web      fa:16:3e:00:00:01  10.10.1.5  255.255.255.0  Connected  s-1"}},
		{name: "networks refused", args: []string{"vm", "networks", "broken"},
			code: exitError, stderr: "photon: InvalidVmState: VM broken is in ERROR\n"},
		{name: "acquire on a named subnet", args: []string{"vm", "acquire-floating-ip", "web-1", "--network", "web"},
			stdout: "Acquired floating IP 203.0.113.10 for VM web-1, ID: vm-1\n", call: "POST /v1/vms/vm-1/acquire_floating_ip",
			body: &api.FloatingIPSpec{}, wantBody: &api.FloatingIPSpec{NetworkID: "s-1"}},
		{name: "networks shows the floating IP", args: []string{"vm", "networks", "web-1"}, contains: []string{"Floating IP: 203.0.113.10"}},
		{name: "release", args: []string{"vm", "release-floating-ip", "web-1"},
			stdout: "Released floating IP 203.0.113.10 of VM web-1, ID: vm-1\n", call: "DELETE /v1/vms/vm-1/release_floating_ip"},
		{name: "acquire -n prints the address", args: []string{"-n", "vm", "acquire-floating-ip", "web-1"},
			stdout: "203.0.113.10\n", call: "POST /v1/vms/vm-1/acquire_floating_ip",
			body: &api.FloatingIPSpec{}, wantBody: &api.FloatingIPSpec{}},
		{name: "acquire -o json prints the VM", args: []string{"-o", "json", "vm", "acquire-floating-ip", "web-1"},
			contains: []string{`"floatingIp": "203.0.113.10"`}, call: "POST /v1/vms/vm-1/acquire_floating_ip"},
		{name: "acquire on an unknown subnet", args: []string{"vm", "acquire-floating-ip", "web-1", "--network", "nosuch"},
			code: exitError, stderr: "photon: SubnetNotFound: --network: no subnet named \"nosuch\" in the VM's project or with that id\n"},
		{name: "acquire fails", args: []string{"vm", "acquire-floating-ip", "web-1"},
			fail: map[string]api.Error{"POST /v1/vms/vm-1/acquire_floating_ip": {Code: api.CodeQuotaError, Message: "sdn.floatingip.size: 1 more than the limit"}},
			code: exitError, stderr: "photon: QuotaError: sdn.floatingip.size: 1 more than the limit (task ",
			call: "POST /v1/vms/vm-1/acquire_floating_ip"},
	})
}

func TestVMCreateWithSubnets(t *testing.T) {
	n := newNetFake(t)
	stdout, stderr, code := runInProject(t, n.fake, true, "-n", "vm", "create", "-n", "web-9", "-f", "small", "-d", "boot eph boot=true",
		"-w", "web, s-3,db")
	if code != 0 || stdout != "vm-1\n" {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	var spec api.VMCreateSpec
	n.x.body(t, "POST /v1/projects/p-1/vms", &spec)
	if !slices.Equal(spec.Subnets, []string{"s-1", "s-3", "s-2"}) {
		t.Errorf("subnets %q, want s-1 s-3 s-2", spec.Subnets)
	}
	// --count sends the same resolved ids.
	if _, stderr, code := runInProject(t, n.fake, true, "-n", "vm", "create", "-n", "web", "-f", "small", "-d", "boot eph boot=true",
		"-w", "ops", "--count", "2"); code != 0 {
		t.Fatalf("--count: exit %d, %q", code, stderr)
	}
	var batch api.VMBatchCreateSpec
	n.x.body(t, "POST /v1/projects/p-1/vms/batch", &batch)
	if !slices.Equal(batch.Subnets, []string{"s-3"}) {
		t.Errorf("batch subnets %q", batch.Subnets)
	}
	// An unknown subnet is refused before anything is created.
	calls := len(n.x.callList())
	_, stderr, code = runInProject(t, n.fake, true, "vm", "create", "-n", "web-9", "-f", "small", "-d", "boot eph boot=true", "-w", "web,s-77")
	if code != exitError || stderr != "photon: SubnetNotFound: -w: no subnet named \"s-77\" in project p1 or with that id\n" || len(n.x.callList()) != calls {
		t.Errorf("unknown subnet: exit %d, %q, calls %v", code, stderr, n.x.callList()[calls:])
	}
}
