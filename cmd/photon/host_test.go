package main

import (
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/photon-cloud/photon/api"
)

var (
	testHosts = []api.Host{
		{Base: api.Base{ID: "h-1", Kind: api.KindHost}, Address: "10.0.0.5", UsageTags: []string{"CLOUD"}, State: api.HostReady,
			AvailabilityZone: "zone-a", EsxVersion: "fake", Capacity: api.HostResources{CPUCount: 16, MemoryMB: 65536},
			Usage: api.HostResources{CPUCount: 2, MemoryMB: 1536}, Datastores: []string{"ds-1"}},
		{Base: api.Base{ID: "h-2", Kind: api.KindHost}, Address: "10.0.0.6", State: api.HostError, Reason: "no heartbeat for 15s"},
		{Base: api.Base{ID: "h-3", Kind: api.KindHost}, Address: "10.0.0.6", State: api.HostNotProvisioned},
	}
	testDatastores = []api.Datastore{
		{Base: api.Base{ID: "ds-1", Kind: api.KindDatastore}, Name: "local", Type: "LOCAL", CapacityGB: 100, UsedGB: 12.5, HostIDs: []string{"h-1"}},
		{Base: api.Base{ID: "ds-2", Kind: api.KindDatastore}, Name: "local", Type: "LOCAL", CapacityGB: 100, HostIDs: []string{"h-2"}},
		{Base: api.Base{ID: "ds-3", Kind: api.KindDatastore}, Name: "nfs", Type: "SHARED", CapacityGB: 1000, HostIDs: []string{"h-1", "h-2"}, Tags: []string{"fast"}},
	}
)

func infraHostFake(t *testing.T, x *infraFake) *fake {
	hostID := func(h api.Host) string { return h.ID }
	return newFake(t, map[string]http.HandlerFunc{
		"GET /v1/tasks/{id}":                      x.getTask,
		"GET /v1/infrastructure/hosts":            list(testHosts, nil),
		"GET /v1/infrastructure/hosts/{id}":       byID(testHosts, hostID, codeHostNotFound),
		"POST /v1/infrastructure/hosts":           x.task("CREATE_HOST", api.KindHost, "h-1"),
		"DELETE /v1/infrastructure/hosts/{id}":    x.task("DELETE_HOST", api.KindHost, "h-1"),
		"POST /v1/infrastructure/hosts/{id}/{op}": x.task("HOST_OPERATION", api.KindHost, "h-1"),
		"GET /v1/infrastructure/hosts/h-1/vms":    list(testVMs[:1], nil),
		"GET /v1/infrastructure/datastores":       list(testDatastores, nil),
		"GET /v1/infrastructure/datastores/{id}":  byID(testDatastores, func(d api.Datastore) string { return d.ID }, api.CodeNotFound),
		"POST /v1/infrastructure/join-tokens": func(w http.ResponseWriter, r *http.Request) {
			var req struct {
				HostID string `json:"hostId"`
			}
			_ = json.NewDecoder(r.Body).Decode(&req)
			writeJSON(w, 201, api.JoinToken{Token: "jt-" + req.HostID, ExpiresAt: 1700000000000, HostID: req.HostID})
		},
	})
}

func TestHostCommands(t *testing.T) {
	x := newInfraFake()
	f := infraHostFake(t, x)

	stdout, stderr, code := runCLI(t, f, "-n", "host", "list")
	want := "h-1\t10.0.0.5\tREADY\tzone-a\tCLOUD\t2/16\t1.5/64\n" +
		"h-2\t10.0.0.6\tERROR\t-\t-\t0/0\t0/0\n" +
		"h-3\t10.0.0.6\tNOT_PROVISIONED\t-\t-\t0/0\t0/0\n"
	if code != 0 || stdout != want {
		t.Errorf("host list -n: %d\n%s\nwant\n%s%s", code, stdout, want, stderr)
	}
	stdout, _, code = runCLI(t, f, "host", "show", "h-2")
	if code != 0 || !strings.Contains(stdout, "no heartbeat for 15s") {
		t.Errorf("host show: %d %q", code, stdout)
	}
	// By address; an address two hosts share is ambiguous.
	stdout, _, code = runCLI(t, f, "host", "suspend", "10.0.0.5")
	if code != 0 || stdout != "Suspended host 10.0.0.5, ID: h-1\n" || x.callList()[0] != "POST /v1/infrastructure/hosts/h-1/suspend" {
		t.Errorf("host suspend: %d %q %v", code, stdout, x.callList())
	}
	if _, stderr, code := runCLI(t, f, "host", "resume", "10.0.0.6"); code != exitUsage || !strings.Contains(stderr, "h-2, h-3") {
		t.Errorf("ambiguous address: %d %q", code, stderr)
	}
	if _, stderr, code := runCLI(t, f, "host", "show", "10.9.9.9"); code != exitError || !strings.HasPrefix(stderr, "photon: HostNotFound: ") {
		t.Errorf("unknown host: %d %q", code, stderr)
	}
	for _, op := range []string{"resume", "enter-maintenance", "exit-maintenance"} {
		if _, stderr, code := runCLI(t, f, "host", op, "h-1"); code != 0 {
			t.Errorf("host %s: %d %q", op, code, stderr)
		}
	}
	if _, _, code := runCLI(t, f, "host", "delete", "h-1"); code != 0 {
		t.Errorf("host delete: %d", code)
	}
	calls := x.callList()
	if want := []string{"POST /v1/infrastructure/hosts/h-1/suspend", "POST /v1/infrastructure/hosts/h-1/resume",
		"POST /v1/infrastructure/hosts/h-1/enter-maintenance", "POST /v1/infrastructure/hosts/h-1/exit-maintenance",
		"DELETE /v1/infrastructure/hosts/h-1"}; !reflect.DeepEqual(calls, want) {
		t.Errorf("calls %v", calls)
	}

	stdout, _, code = runCLI(t, f, "-n", "host", "create", "-i", "10.0.0.7", "-z", "zone-b", "-t", "cloud,mgmt", "-m", "rack=r1")
	var spec api.HostCreateSpec
	x.body(t, "POST /v1/infrastructure/hosts", &spec)
	if code != 0 || stdout != "h-1\n" || !reflect.DeepEqual(spec, api.HostCreateSpec{Address: "10.0.0.7", AvailabilityZone: "zone-b",
		UsageTags: []string{"CLOUD", "MGMT"}, Metadata: map[string]string{"rack": "r1"}}) {
		t.Errorf("host create: %d %q %+v", code, stdout, spec)
	}

	stdout, _, code = runCLI(t, f, "-n", "host", "join-token")
	if code != 0 || stdout != "jt-\n" {
		t.Errorf("join-token -n: %d %q", code, stdout)
	}
	stdout, _, code = runCLI(t, f, "-n", "host", "join-token", "--host", "10.0.0.5")
	if code != 0 || stdout != "jt-h-1\n" {
		t.Errorf("join-token --host: %d %q", code, stdout)
	}
	stdout, _, code = runCLI(t, f, "host", "join-token")
	if code != 0 || !strings.Contains(stdout, "Join token:") || !strings.Contains(stdout, "photond agent --controller "+f.URL) {
		t.Errorf("join-token: %d %q", code, stdout)
	}

	stdout, _, code = runCLI(t, f, "-n", "host", "list-vms", "10.0.0.5")
	if code != 0 || stdout != "vm-0\tweb-0\tSTARTED\tsmall\t10.0.0.5\n" {
		t.Errorf("host list-vms: %d %q", code, stdout)
	}
}

func TestDatastoreCommands(t *testing.T) {
	f := infraHostFake(t, newInfraFake())
	stdout, _, code := runCLI(t, f, "-n", "datastore", "list")
	want := "ds-1\tlocal\tLOCAL\t12.5/100\t1\t-\nds-2\tlocal\tLOCAL\t0/100\t1\t-\nds-3\tnfs\tSHARED\t0/1000\t2\tfast\n"
	if code != 0 || stdout != want {
		t.Errorf("datastore list -n: %d %q", code, stdout)
	}
	stdout, _, code = runCLI(t, f, "datastore", "show", "nfs")
	if code != 0 || !strings.Contains(stdout, "h-1, h-2") {
		t.Errorf("datastore show by name: %d %q", code, stdout)
	}
	if _, stderr, code := runCLI(t, f, "datastore", "show", "local"); code != exitUsage || !strings.Contains(stderr, "ds-1, ds-2") {
		t.Errorf("ambiguous datastore: %d %q", code, stderr)
	}
	stdout, _, code = runCLI(t, f, "-o", "json", "datastore", "show", "ds-2")
	var d api.Datastore
	if code != 0 || json.Unmarshal([]byte(stdout), &d) != nil || d.ID != "ds-2" {
		t.Errorf("datastore show -o json: %d %q", code, stdout)
	}
}
