package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/client"
)

// netServer answers every request with the next canned answer and records
// what it got.
type netServer struct {
	mu       sync.Mutex
	requests []string // "METHOD /path?query"
	bodies   []string
	answer   func(r *http.Request) (int, any)
}

func (s *netServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	req := r.Method + " " + r.URL.EscapedPath()
	if r.URL.RawQuery != "" {
		req += "?" + r.URL.RawQuery
	}
	s.requests = append(s.requests, req)
	s.bodies = append(s.bodies, string(b))
	s.mu.Unlock()
	status, v := s.answer(r)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if raw, ok := v.(string); ok {
		_, _ = io.WriteString(w, raw)
		return
	}
	_ = json.NewEncoder(w).Encode(v)
}

func newNetClient(t *testing.T, answer func(r *http.Request) (int, any)) (*client.Client, *netServer) {
	t.Helper()
	s := &netServer{answer: answer}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	c, err := client.New(srv.URL, client.WithToken("tok"))
	if err != nil {
		t.Fatal(err)
	}
	return c, s
}

func queued(op string) api.Task {
	return api.Task{Base: api.Base{ID: "task-1", Kind: api.KindTask}, Operation: op, State: api.TaskQueued,
		Entity: api.Entity{ID: "e-1"}}
}

// TestNetworkCalls: each SDK call sends the method, path and body of
// Photon Controller 1.2's routes and decodes the answer.
func TestNetworkCalls(t *testing.T) {
	ctx := context.Background()
	router := api.Router{Base: api.Base{ID: "r-1", Kind: api.KindRouter}, Name: "r1", PrivateIPCidr: "10.10.0.0/16", State: api.NetworkReady}
	subnet := api.Subnet{Base: api.Base{ID: "s-1", Kind: api.KindSubnet}, Name: "web", PrivateIPCidr: "10.10.1.0/24",
		Type: api.SubnetNAT, RouterID: "r-1", DNSServerAddresses: []string{"1.1.1.1"}}
	for _, tc := range []struct {
		name     string
		call     func(c *client.Client) (any, error)
		answer   any
		request  string
		body     string // JSON, "" for none
		want     any
		wantTask bool
	}{
		{name: "create router",
			call: func(c *client.Client) (any, error) {
				return c.CreateRouter(ctx, "p/1", &api.RouterCreateSpec{Name: "r1", PrivateIPCidr: "10.10.0.0/16"})
			},
			answer: queued("CREATE_ROUTER"), request: "POST /v1/projects/p%2F1/routers",
			body: `{"name":"r1","privateIpCidr":"10.10.0.0/16"}`, wantTask: true},
		{name: "list routers by name",
			call:   func(c *client.Client) (any, error) { return c.ListRouters(ctx, "p-1", "r1") },
			answer: api.List[api.Router]{Items: []api.Router{router}}, request: "GET /v1/projects/p-1/routers?name=r1",
			want: []api.Router{router}},
		{name: "get router",
			call:   func(c *client.Client) (any, error) { return c.GetRouter(ctx, "r-1") },
			answer: router, request: "GET /v1/routers/r-1", want: &router},
		{name: "rename router",
			call:   func(c *client.Client) (any, error) { return c.RenameRouter(ctx, "r-1", "r2") },
			answer: queued("UPDATE_ROUTER"), request: "PATCH /v1/routers/r-1", body: `{"name":"r2"}`, wantTask: true},
		{name: "delete router",
			call:   func(c *client.Client) (any, error) { return c.DeleteRouter(ctx, "r-1") },
			answer: queued("DELETE_ROUTER"), request: "DELETE /v1/routers/r-1", wantTask: true},
		{name: "router tasks",
			call:   func(c *client.Client) (any, error) { return c.ListRouterTasks(ctx, "r-1", "ERROR") },
			answer: api.List[api.Task]{Items: []api.Task{}}, request: "GET /v1/tasks?entityId=r-1&entityKind=router&state=ERROR",
			want: []api.Task{}},
		{name: "create subnet",
			call: func(c *client.Client) (any, error) {
				return c.CreateSubnet(ctx, "r-1", &api.SubnetCreateSpec{Name: "web", PrivateIPCidr: "10.10.1.0/24",
					Type: api.SubnetNoNAT, DNSServerAddresses: []string{"1.1.1.1", "8.8.8.8"}, Description: "front"})
			},
			answer: queued("CREATE_SUBNET"), request: "POST /v1/routers/r-1/subnets",
			body:     `{"name":"web","description":"front","privateIpCidr":"10.10.1.0/24","type":"NO_NAT","dnsServerAddresses":["1.1.1.1","8.8.8.8"]}`,
			wantTask: true},
		{name: "list subnets",
			call:   func(c *client.Client) (any, error) { return c.ListSubnets(ctx, "r-1", "") },
			answer: api.List[api.Subnet]{Items: []api.Subnet{subnet}}, request: "GET /v1/routers/r-1/subnets",
			want: []api.Subnet{subnet}},
		{name: "get subnet",
			call:   func(c *client.Client) (any, error) { return c.GetSubnet(ctx, "s-1") },
			answer: subnet, request: "GET /v1/subnets/s-1", want: &subnet},
		{name: "rename subnet",
			call:   func(c *client.Client) (any, error) { return c.RenameSubnet(ctx, "s-1", "web2") },
			answer: queued("UPDATE_SUBNET"), request: "PATCH /v1/subnets/s-1", body: `{"name":"web2"}`, wantTask: true},
		{name: "delete subnet",
			call:   func(c *client.Client) (any, error) { return c.DeleteSubnet(ctx, "s-1") },
			answer: queued("DELETE_SUBNET"), request: "DELETE /v1/subnets/s-1", wantTask: true},
		{name: "set default subnet",
			call:   func(c *client.Client) (any, error) { return c.SetDefaultSubnet(ctx, "s-1") },
			answer: queued("SET_DEFAULT_SUBNET"), request: "POST /v1/subnets/s-1/set_default", wantTask: true},
		{name: "acquire floating ip",
			call:   func(c *client.Client) (any, error) { return c.AcquireFloatingIP(ctx, "vm-1", "s-1") },
			answer: queued("ACQUIRE_FLOATING_IP"), request: "POST /v1/vms/vm-1/acquire_floating_ip",
			body: `{"networkId":"s-1"}`, wantTask: true},
		{name: "acquire floating ip, first NIC",
			call:   func(c *client.Client) (any, error) { return c.AcquireFloatingIP(ctx, "vm-1", "") },
			answer: queued("ACQUIRE_FLOATING_IP"), request: "POST /v1/vms/vm-1/acquire_floating_ip",
			body: `{}`, wantTask: true},
		{name: "release floating ip",
			call:   func(c *client.Client) (any, error) { return c.ReleaseFloatingIP(ctx, "vm-1") },
			answer: queued("RELEASE_FLOATING_IP"), request: "DELETE /v1/vms/vm-1/release_floating_ip", wantTask: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status := 200
			if tc.wantTask {
				status = 201
			}
			c, s := newNetClient(t, func(*http.Request) (int, any) { return status, tc.answer })
			got, err := tc.call(c)
			if err != nil {
				t.Fatalf("error %v", err)
			}
			if len(s.requests) != 1 || s.requests[0] != tc.request {
				t.Fatalf("requests %v, want [%s]", s.requests, tc.request)
			}
			if b := strings.TrimSpace(s.bodies[0]); b != tc.body {
				t.Errorf("body %s, want %s", b, tc.body)
			}
			if tc.wantTask {
				if task, ok := got.(*api.Task); !ok || task.ID != "task-1" {
					t.Errorf("answer %#v, want task-1", got)
				}
				return
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %#v\nwant %#v", got, tc.want)
			}
		})
	}
}

// TestNetworkErrors: error bodies come back as *api.Error that errors.Is
// matches by code, with the status kept.
func TestNetworkErrors(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		status int
		body   any
		call   func(c *client.Client) error
		is     error
	}{
		{"router name taken", 400, api.Error{Code: api.CodeNameTaken, Message: "router r1 exists"},
			func(c *client.Client) error {
				_, err := c.CreateRouter(ctx, "p-1", &api.RouterCreateSpec{Name: "r1", PrivateIPCidr: "10.0.0.0/16"})
				return err
			}, api.ErrNameTaken},
		{"subnet outside router", 400, api.FieldError("privateIpCidr", "10.20.1.0/24 is outside router r1's 10.10.0.0/16"),
			func(c *client.Client) error {
				_, err := c.CreateSubnet(ctx, "r-1", &api.SubnetCreateSpec{Name: "web", PrivateIPCidr: "10.20.1.0/24"})
				return err
			}, &api.Error{Code: api.CodeInvalidEntity}},
		{"router with subnets", 400, api.Error{Code: api.CodeContainerNotEmpty, Message: "router r1 has 2 subnets"},
			func(c *client.Client) error { _, err := c.DeleteRouter(ctx, "r-1"); return err },
			&api.Error{Code: api.CodeContainerNotEmpty}},
		{"no such subnet", 404, api.Error{Code: api.CodeNotFound, Message: "no subnet s-9"},
			func(c *client.Client) error { _, err := c.GetSubnet(ctx, "s-9"); return err }, api.ErrNotFound},
		{"routes missing (an older controller)", 404, "404 page not found",
			func(c *client.Client) error { _, err := c.ListRouters(ctx, "p-1", ""); return err }, api.ErrNotFound},
		{"no floating ip left", 400, api.Error{Code: api.CodeQuotaError, Message: "sdn.floatingip.size: 1 more than the limit"},
			func(c *client.Client) error { _, err := c.AcquireFloatingIP(ctx, "vm-1", ""); return err }, api.ErrQuota},
		{"vm networks of a missing VM", 404, api.Error{Code: "VmNotFound", Message: "no VM vm-9"},
			func(c *client.Client) error { _, err := c.VMNetworks(ctx, "vm-9"); return err }, &api.Error{Code: "VmNotFound"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := newNetClient(t, func(*http.Request) (int, any) { return tc.status, tc.body })
			err := tc.call(c)
			var ae *api.Error
			if !errors.As(err, &ae) || !errors.Is(err, tc.is) || ae.HTTPStatus != tc.status {
				t.Fatalf("error %v (%T), want %v with status %d", err, err, tc.is, tc.status)
			}
		})
	}
}

// TestVMNetworks: the GET_NETWORKS task's resourceProperties are decoded
// as our server sends them and as Photon Controller 1.x did (isConnected
// a ConnectedStatus string, null fields); a task not yet done is waited
// for; one that failed is its error; a malformed list is an error, not a
// panic or an empty answer.
func TestVMNetworks(t *testing.T) {
	ctx := context.Background()
	task := func(state, props string) string {
		rp := ""
		if props != "" {
			rp = `,"resourceProperties":` + props
		}
		return `{"id":"task-7","kind":"task","operation":"GET_NETWORKS","state":"` + state + `","entity":{"id":"vm-1","kind":"vm"}` + rp + `}`
	}
	web := api.NetworkConnection{Network: "s-1", MacAddress: "fa:16:3e:00:00:01", IPAddress: "10.10.1.5", Netmask: "255.255.255.0", IsConnected: "Connected"}
	for _, tc := range []struct {
		name    string
		answers []string // the GET, then task reads
		want    []api.NetworkConnection
		err     string
	}{
		{name: "ours", answers: []string{task("COMPLETED",
			`{"networkConnections":[{"network":"s-1","macAddress":"fa:16:3e:00:00:01","ipAddress":"10.10.1.5","netmask":"255.255.255.0","isConnected":true}]}`)},
			want: []api.NetworkConnection{web}},
		{name: "Photon 1.x strings and nulls", answers: []string{task("COMPLETED",
			`{"networkConnections":[{"network":"s-1","macAddress":"fa:16:3e:00:00:01","ipAddress":"10.10.1.5","netmask":"255.255.255.0","isConnected":"Connected"},`+
				`{"network":null,"macAddress":"fa:16:3e:00:00:02","ipAddress":null,"netmask":null,"isConnected":"Unknown"},`+
				`{"network":"s-2","macAddress":"fa:16:3e:00:00:03","isConnected":"Disconnected"}]}`)},
			want: []api.NetworkConnection{web, {MacAddress: "fa:16:3e:00:00:02", IsConnected: api.NICUnknown},
				{Network: "s-2", MacAddress: "fa:16:3e:00:00:03", IsConnected: api.NICDisconnected}}},
		{name: "no NIC", answers: []string{task("COMPLETED", `{"networkConnections":[]}`)}, want: []api.NetworkConnection{}},
		{name: "no resourceProperties", answers: []string{task("COMPLETED", "")}, want: []api.NetworkConnection{}},
		{name: "waited for", answers: []string{task("QUEUED", ""), task("COMPLETED",
			`{"networkConnections":[{"network":"s-1","macAddress":"fa:16:3e:00:00:01","ipAddress":"10.10.1.5","netmask":"255.255.255.0","isConnected":true}]}`)},
			want: []api.NetworkConnection{web}},
		{name: "task failed", answers: []string{`{"id":"task-7","operation":"GET_NETWORKS","state":"ERROR","steps":[{"operation":"GET_NETWORKS","state":"ERROR","errors":[{"code":"InvalidVmState","message":"VM is CREATING"}]}]}`},
			err: "InvalidVmState: VM is CREATING"},
		{name: "not a list", answers: []string{task("COMPLETED", `{"networkConnections":{"network":"s-1"}}`)},
			err: "networkConnections is not a list of connections"},
		{name: "isConnected a number", answers: []string{task("COMPLETED", `{"networkConnections":[{"network":"s-1","isConnected":1}]}`)},
			err: "networkConnections[0].isConnected: 1 is neither a string nor a boolean"},
		{name: "not a task", answers: []string{`{}`}, err: "answer is not a task"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			n := 0
			c, s := newNetClient(t, func(*http.Request) (int, any) {
				mu.Lock()
				defer mu.Unlock()
				a := tc.answers[min(n, len(tc.answers)-1)]
				n++
				return 200, a
			})
			got, err := c.VMNetworks(ctx, "vm-1")
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %+v, %v\nwant %+v", got, err, tc.want)
			}
			if s.requests[0] != "GET /v1/vms/vm-1/subnets" {
				t.Errorf("first request %s", s.requests[0])
			}
			if len(tc.answers) > 1 && (len(s.requests) < 2 || !strings.HasPrefix(s.requests[1], "GET /v1/tasks/task-7")) {
				t.Errorf("a queued task was not followed: %v", s.requests)
			}
		})
	}
}

// FuzzNetworkConnections: whatever a GET_NETWORKS task's
// resourceProperties hold, decoding them returns connections or an error,
// never panics, and a list it accepts has one connection per element.
func FuzzNetworkConnections(f *testing.F) {
	for _, s := range []string{
		`{"networkConnections":[{"network":"s-1","macAddress":"fa:16:3e:00:00:01","ipAddress":"10.10.1.5","netmask":"255.255.255.0","isConnected":true}]}`,
		`{"networkConnections":[{"network":null,"isConnected":"Connected"},{"isConnected":"Unknown"}]}`,
		`{"networkConnections":null}`, `{"networkConnections":{}}`, `{"networkConnections":[1,"x",null]}`,
		`{"networkConnections":[{"isConnected":[true]}]}`, `{}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, props []byte) {
		var rp map[string]any
		if client.DecodeJSON(props, &rp) != nil {
			return
		}
		task := &api.Task{Base: api.Base{ID: "task-1"}, State: api.TaskCompleted, ResourceProperties: rp}
		got, err := client.NetworkConnections(task)
		if err != nil {
			return
		}
		if l, ok := rp["networkConnections"].([]any); ok && len(got) != len(l) {
			t.Fatalf("%d connections from a list of %d", len(got), len(l))
		}
	})
}
