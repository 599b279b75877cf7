package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/photon-cloud/photon/api"
)

// Virtual networks (Photon Controller 1.2): a project's routers, their
// subnets, a VM's NICs on them and its floating IP.

// ListRouters lists a project's routers, all pages; a non-empty name
// selects that router.
func (c *Client) ListRouters(ctx context.Context, projectID, name string) ([]api.Router, error) {
	return ListAll[api.Router](ctx, c, "/v1/projects/"+esc(projectID)+"/routers"+query("name", name))
}

// GetRouter reads one router.
func (c *Client) GetRouter(ctx context.Context, id string) (*api.Router, error) {
	return getOne[api.Router](ctx, c, "/v1/routers/"+esc(id))
}

// CreateRouter starts creating a router in a project, e.g.
// {Name: "r1", PrivateIPCidr: "10.10.0.0/16"}. The task's entity is the
// router.
func (c *Client) CreateRouter(ctx context.Context, projectID string, spec *api.RouterCreateSpec) (*api.Task, error) {
	return c.call(ctx, http.MethodPost, "/v1/projects/"+esc(projectID)+"/routers", spec)
}

// RenameRouter starts renaming a router (PATCH {name}).
func (c *Client) RenameRouter(ctx context.Context, id, name string) (*api.Task, error) {
	return c.call(ctx, http.MethodPatch, "/v1/routers/"+esc(id), &api.RouterUpdateSpec{Name: name})
}

// DeleteRouter starts deleting a router; one that still has subnets is
// refused with ContainerNotEmpty.
func (c *Client) DeleteRouter(ctx context.Context, id string) (*api.Task, error) {
	return c.call(ctx, http.MethodDelete, "/v1/routers/"+esc(id), nil)
}

// ListRouterTasks lists the tasks of a router, all pages; state may be ""
// (GET /v1/tasks?entityId=&entityKind=router).
func (c *Client) ListRouterTasks(ctx context.Context, id, state string) ([]api.Task, error) {
	return c.ListTasks(ctx, TaskFilter{EntityID: id, EntityKind: api.KindRouter, State: state})
}

// ListSubnets lists a router's subnets, all pages; a non-empty name
// selects that subnet.
func (c *Client) ListSubnets(ctx context.Context, routerID, name string) ([]api.Subnet, error) {
	return ListAll[api.Subnet](ctx, c, "/v1/routers/"+esc(routerID)+"/subnets"+query("name", name))
}

// GetSubnet reads one subnet.
func (c *Client) GetSubnet(ctx context.Context, id string) (*api.Subnet, error) {
	return getOne[api.Subnet](ctx, c, "/v1/subnets/"+esc(id))
}

// CreateSubnet starts creating a subnet of a router, e.g. {Name: "web",
// PrivateIPCidr: "10.10.1.0/24", Type: "NAT", DNSServerAddresses:
// ["1.1.1.1"]}. The task's entity is the subnet. A CIDR outside the
// router's, smaller than a /29 or overlapping another subnet of the router
// is refused with InvalidEntity naming the field.
func (c *Client) CreateSubnet(ctx context.Context, routerID string, spec *api.SubnetCreateSpec) (*api.Task, error) {
	return c.call(ctx, http.MethodPost, "/v1/routers/"+esc(routerID)+"/subnets", spec)
}

// RenameSubnet starts renaming a subnet (PATCH {name}).
func (c *Client) RenameSubnet(ctx context.Context, id, name string) (*api.Task, error) {
	return c.call(ctx, http.MethodPatch, "/v1/subnets/"+esc(id), &api.SubnetUpdateSpec{Name: name})
}

// DeleteSubnet starts deleting a subnet; one that VMs still have NICs on
// is refused with ContainerNotEmpty.
func (c *Client) DeleteSubnet(ctx context.Context, id string) (*api.Task, error) {
	return c.call(ctx, http.MethodDelete, "/v1/subnets/"+esc(id), nil)
}

// SetDefaultSubnet starts making a subnet its project's default: VMs
// created without subnets get a NIC on it.
func (c *Client) SetDefaultSubnet(ctx context.Context, id string) (*api.Task, error) {
	return c.call(ctx, http.MethodPost, "/v1/subnets/"+esc(id)+"/set_default", nil)
}

// ListSubnetTasks lists the tasks of a subnet, all pages; state may be ""
// (GET /v1/tasks?entityId=&entityKind=subnet).
func (c *Client) ListSubnetTasks(ctx context.Context, id, state string) ([]api.Task, error) {
	return c.ListTasks(ctx, TaskFilter{EntityID: id, EntityKind: api.KindSubnet, State: state})
}

// VMNetworks lists a VM's NICs: GET /v1/vms/{id}/subnets answers a
// GET_NETWORKS task (waited for if it is not done yet) whose
// resourceProperties.networkConnections lists them. A VM without NICs
// gives an empty list.
func (c *Client) VMNetworks(ctx context.Context, vmID string) ([]api.NetworkConnection, error) {
	var t api.Task
	path := "/v1/vms/" + esc(vmID) + "/subnets"
	if err := c.get(ctx, path, &t); err != nil {
		return nil, err
	}
	if t.ID == "" && t.State == "" {
		return nil, fmt.Errorf("GET %s: answer is not a task", path)
	}
	task := &t
	if !task.Done() {
		var err error
		if task, err = c.WaitTask(ctx, task); err != nil {
			return nil, err
		}
	}
	if err := task.Err(); err != nil {
		return nil, err
	}
	return NetworkConnections(task)
}

// NetworkConnections decodes a GET_NETWORKS task's
// resourceProperties.networkConnections. It accepts what Photon
// Controller 1.x servers sent as well as ours: isConnected as a string
// ("Connected", "Disconnected", "Unknown") or a boolean, and null fields. No resourceProperties or no networkConnections is an
// empty list; anything else that is not a list of connections is an error.
func NetworkConnections(t *api.Task) ([]api.NetworkConnection, error) {
	out := []api.NetworkConnection{}
	if t == nil || t.ResourceProperties == nil {
		return out, nil
	}
	v, ok := t.ResourceProperties["networkConnections"]
	if !ok || v == nil {
		return out, nil
	}
	// Round-trip through JSON: the map holds what the decoder made of it.
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("task %s: networkConnections: %w", t.ID, err)
	}
	var wire []struct {
		Network     *string         `json:"network"`
		MacAddress  *string         `json:"macAddress"`
		IPAddress   *string         `json:"ipAddress"`
		Netmask     *string         `json:"netmask"`
		IsConnected json.RawMessage `json:"isConnected"`
	}
	if err := json.Unmarshal(b, &wire); err != nil {
		return nil, fmt.Errorf("task %s: networkConnections is not a list of connections: %w", t.ID, err)
	}
	str := func(p *string) string {
		if p == nil {
			return ""
		}
		return *p
	}
	for i, w := range wire {
		connected, err := parseConnected(w.IsConnected)
		if err != nil {
			return nil, fmt.Errorf("task %s: networkConnections[%d].isConnected: %w", t.ID, i, err)
		}
		out = append(out, api.NetworkConnection{Network: str(w.Network), MacAddress: str(w.MacAddress),
			IPAddress: str(w.IPAddress), Netmask: str(w.Netmask), IsConnected: connected})
	}
	return out, nil
}

// parseConnected reads isConnected: Photon Controller's ConnectedStatus
// string ("Connected", "Disconnected", "Unknown"; other strings kept as
// sent), or a boolean (true is "Connected", false "Disconnected"); absent
// and null are "Unknown".
func parseConnected(raw json.RawMessage) (string, error) {
	s := strings.TrimSpace(string(raw))
	if s == "" || s == "null" {
		return api.NICUnknown, nil
	}
	var b bool
	if json.Unmarshal(raw, &b) == nil {
		if b {
			return api.NICConnected, nil
		}
		return api.NICDisconnected, nil
	}
	var str string
	if err := json.Unmarshal(raw, &str); err != nil {
		return "", fmt.Errorf("%.40s is neither a string nor a boolean", s)
	}
	switch strings.ToLower(strings.TrimSpace(str)) {
	case "connected", "true":
		return api.NICConnected, nil
	case "disconnected", "false":
		return api.NICDisconnected, nil
	case "unknown", "":
		return api.NICUnknown, nil
	}
	return str, nil
}

// AcquireFloatingIP starts giving a VM a floating IP, an address reachable
// from outside the cloud mapped to its address on the subnet networkID (""
// for its first NIC's). The VM's floatingIp shows it once the task ends.
func (c *Client) AcquireFloatingIP(ctx context.Context, vmID, networkID string) (*api.Task, error) {
	return c.call(ctx, http.MethodPost, "/v1/vms/"+esc(vmID)+"/acquire_floating_ip", &api.FloatingIPSpec{NetworkID: networkID})
}

// ReleaseFloatingIP starts taking a VM's floating IP back.
func (c *Client) ReleaseFloatingIP(ctx context.Context, vmID string) (*api.Task, error) {
	return c.call(ctx, http.MethodDelete, "/v1/vms/"+esc(vmID)+"/release_floating_ip", nil)
}
