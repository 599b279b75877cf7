package client

import (
	"context"
	"io"
	"net/http"

	"github.com/photon-cloud/photon/api"
)

// VM power operations without a body, for VMOperation: POST /v1/vms/{id}/<op>.
const (
	VMStart   = "start"
	VMStop    = "stop"
	VMRestart = "restart"
	VMSuspend = "suspend"
	VMResume  = "resume"
)

// VMConsole reads a VM's serial console (text, from its first byte, across
// boots). With follow the reader keeps returning what the VM writes until
// ctx ends, the reader is closed, or the VM is deleted; without, it ends
// at the console's end. A VM not yet on a host is InvalidVmState; a host
// that is down or whose agent does not answer within about 10 s is
// ServiceUnavailable.
func (c *Client) VMConsole(ctx context.Context, id string, follow bool) (io.ReadCloser, error) {
	path := "/v1/vms/" + esc(id) + "/console"
	if follow {
		path += "?follow=true"
	}
	resp, err := c.Stream(ctx, http.MethodGet, path, "", nil)
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}

// ListVMs lists a project's VMs, all pages; a non-empty name selects that VM.
func (c *Client) ListVMs(ctx context.Context, projectID, name string) ([]api.VM, error) {
	return ListAll[api.VM](ctx, c, "/v1/projects/"+esc(projectID)+"/vms"+query("name", name))
}

// GetVM reads one VM.
func (c *Client) GetVM(ctx context.Context, id string) (*api.VM, error) {
	return getOne[api.VM](ctx, c, "/v1/vms/"+esc(id))
}

// CreateVM starts creating a VM in a project. The task's entity is the VM,
// which ends STOPPED (placed, disks made); StartVM boots it. A quota overrun
// is refused at once with QuotaError.
func (c *Client) CreateVM(ctx context.Context, projectID string, spec *api.VMCreateSpec) (*api.Task, error) {
	return c.call(ctx, http.MethodPost, "/v1/projects/"+esc(projectID)+"/vms", spec)
}

// CreateVMs creates spec.Count VMs from one spec, named "<name>-1" …
// "<name>-<count>" (our extension; a controller without it answers
// NotFound). Each item holds its VM's create task or why it was refused.
func (c *Client) CreateVMs(ctx context.Context, projectID string, spec *api.VMBatchCreateSpec) (*api.VMBatch, error) {
	var out api.VMBatch
	if err := c.Do(ctx, http.MethodPost, "/v1/projects/"+esc(projectID)+"/vms/batch", spec, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// DeleteVM starts deleting a VM; it must be stopped (else InvalidVmState).
func (c *Client) DeleteVM(ctx context.Context, id string) (*api.Task, error) {
	return c.call(ctx, http.MethodDelete, "/v1/vms/"+esc(id), nil)
}

// VMOperation starts op on a VM: VMStart, VMStop, VMRestart, VMSuspend or VMResume.
func (c *Client) VMOperation(ctx context.Context, id, op string) (*api.Task, error) {
	return c.call(ctx, http.MethodPost, "/v1/vms/"+esc(id)+"/"+op, nil)
}

// StartVM boots a VM.
func (c *Client) StartVM(ctx context.Context, id string) (*api.Task, error) {
	return c.VMOperation(ctx, id, VMStart)
}

// StopVM powers a VM off.
func (c *Client) StopVM(ctx context.Context, id string) (*api.Task, error) {
	return c.VMOperation(ctx, id, VMStop)
}

// RestartVM powers a VM off and on.
func (c *Client) RestartVM(ctx context.Context, id string) (*api.Task, error) {
	return c.VMOperation(ctx, id, VMRestart)
}

// SuspendVM suspends a running VM.
func (c *Client) SuspendVM(ctx context.Context, id string) (*api.Task, error) {
	return c.VMOperation(ctx, id, VMSuspend)
}

// ResumeVM resumes a suspended VM.
func (c *Client) ResumeVM(ctx context.Context, id string) (*api.Task, error) {
	return c.VMOperation(ctx, id, VMResume)
}

// AttachDisk starts attaching a DETACHED persistent disk to a VM.
func (c *Client) AttachDisk(ctx context.Context, vmID, diskID string) (*api.Task, error) {
	return c.call(ctx, http.MethodPost, "/v1/vms/"+esc(vmID)+"/attach_disk", &api.VMDiskOperation{DiskID: diskID})
}

// DetachDisk starts detaching a persistent disk from a VM.
func (c *Client) DetachDisk(ctx context.Context, vmID, diskID string) (*api.Task, error) {
	return c.call(ctx, http.MethodPost, "/v1/vms/"+esc(vmID)+"/detach_disk", &api.VMDiskOperation{DiskID: diskID})
}

// SetVMMetadata replaces a VM's metadata.
func (c *Client) SetVMMetadata(ctx context.Context, id string, metadata map[string]string) (*api.Task, error) {
	if metadata == nil {
		metadata = map[string]string{}
	}
	return c.call(ctx, http.MethodPost, "/v1/vms/"+esc(id)+"/set_metadata", &api.VMMetadata{Metadata: metadata})
}

// AddVMTag adds a tag, e.g. "env:prod", to a VM.
func (c *Client) AddVMTag(ctx context.Context, id, tag string) (*api.Task, error) {
	return c.call(ctx, http.MethodPost, "/v1/vms/"+esc(id)+"/tags", &api.Tag{Value: tag})
}

// ListVMTasks lists the tasks of a VM, all pages; state may be "".
func (c *Client) ListVMTasks(ctx context.Context, id, state string) ([]api.Task, error) {
	return ListAll[api.Task](ctx, c, "/v1/vms/"+esc(id)+"/tasks"+query("state", state))
}
