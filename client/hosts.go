package client

import (
	"context"
	"net/http"

	"github.com/photon-cloud/photon/api"
)

// Host operations without a body, for HostOperation:
// POST /v1/infrastructure/hosts/{id}/<op>.
const (
	HostSuspend          = "suspend"
	HostResume           = "resume"
	HostEnterMaintenance = "enter-maintenance"
	HostExitMaintenance  = "exit-maintenance"
)

const hostsPath = "/v1/infrastructure/hosts"

// ListHosts lists every host, all pages (system administrators only).
func (c *Client) ListHosts(ctx context.Context) ([]api.Host, error) {
	return ListAll[api.Host](ctx, c, hostsPath)
}

// GetHost reads one host.
func (c *Client) GetHost(ctx context.Context, id string) (*api.Host, error) {
	return getOne[api.Host](ctx, c, hostsPath+"/"+esc(id))
}

// CreateHost pre-registers a host that joins later with a join token
// (see CreateJoinToken). The task's entity is the host.
func (c *Client) CreateHost(ctx context.Context, spec *api.HostCreateSpec) (*api.Task, error) {
	return c.call(ctx, http.MethodPost, hostsPath, spec)
}

// DeleteHost starts deleting a host; it must be NOT_PROVISIONED, in
// MAINTENANCE or in ERROR (else InvalidHostState).
func (c *Client) DeleteHost(ctx context.Context, id string) (*api.Task, error) {
	return c.call(ctx, http.MethodDelete, hostsPath+"/"+esc(id), nil)
}

// HostOperation starts op on a host: HostSuspend, HostResume,
// HostEnterMaintenance or HostExitMaintenance.
func (c *Client) HostOperation(ctx context.Context, id, op string) (*api.Task, error) {
	return c.call(ctx, http.MethodPost, hostsPath+"/"+esc(id)+"/"+op, nil)
}

// SuspendHost stops placing new VMs on a READY host; its VMs keep running.
func (c *Client) SuspendHost(ctx context.Context, id string) (*api.Task, error) {
	return c.HostOperation(ctx, id, HostSuspend)
}

// ResumeHost makes a SUSPENDED host READY again.
func (c *Client) ResumeHost(ctx context.Context, id string) (*api.Task, error) {
	return c.HostOperation(ctx, id, HostResume)
}

// EnterHostMaintenance puts a SUSPENDED host without VMs in MAINTENANCE
// (HostHasVms while it has some).
func (c *Client) EnterHostMaintenance(ctx context.Context, id string) (*api.Task, error) {
	return c.HostOperation(ctx, id, HostEnterMaintenance)
}

// ExitHostMaintenance brings a host out of MAINTENANCE.
func (c *Client) ExitHostMaintenance(ctx context.Context, id string) (*api.Task, error) {
	return c.HostOperation(ctx, id, HostExitMaintenance)
}

// ListHostVMs lists the VMs placed on a host, all pages.
func (c *Client) ListHostVMs(ctx context.Context, id string) ([]api.VM, error) {
	return ListAll[api.VM](ctx, c, hostsPath+"/"+esc(id)+"/vms")
}

// ListHostTasks lists the tasks of a host, all pages; state may be "".
func (c *Client) ListHostTasks(ctx context.Context, id, state string) ([]api.Task, error) {
	return ListAll[api.Task](ctx, c, hostsPath+"/"+esc(id)+"/tasks"+query("state", state))
}

// joinTokenRequest is the body of POST /v1/infrastructure/join-tokens.
type joinTokenRequest struct {
	HostID string `json:"hostId,omitempty"`
}

// CreateJoinToken makes a one-time token with which `photond agent
// --join-token` joins the cloud. hostID ("" for a new host) binds the token
// to a host pre-registered with CreateHost. It answers at once, not with a task.
func (c *Client) CreateJoinToken(ctx context.Context, hostID string) (*api.JoinToken, error) {
	var jt api.JoinToken
	if err := c.Do(ctx, http.MethodPost, "/v1/infrastructure/join-tokens", joinTokenRequest{HostID: hostID}, &jt); err != nil {
		return nil, err
	}
	return &jt, nil
}
