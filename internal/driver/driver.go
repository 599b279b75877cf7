// Package driver defines what a host agent needs from a hypervisor: the
// Driver interface, kept narrow, with recovery explicit. Implementations
// live in subpackages: driver/fake (simulated hosts) and driver/qemu
// (real VMs). driver/drivertest is the conformance suite every
// implementation passes.
package driver

import (
	"context"
	"errors"
	"io"

	"github.com/photon-cloud/photon/api"
)

// Capacity is what a host offers.
type Capacity struct {
	api.HostResources
	Datastores []api.DatastoreReport
	// Hypervisor names the driver and acceleration, e.g. "fake".
	Hypervisor string
}

// VMSpec is the desired state of one VM. Disk image paths are resolved by
// the agent (ImagePaths maps an image id to the cached file), and so are
// the subnets of its NICs (Subnets, by id, from the host's desired
// network: the guest's address, prefix, gateway and DNS servers).
//
// A NIC is attached to the tap netplumb.TapName(nic.ID), which the host's
// network driver makes before the agent ensures the VM.
type VMSpec struct {
	api.VMDesired
	ImagePaths map[string]string
	Subnets    map[string]api.SubnetDesired
}

// VMStatus is what the driver observes of one VM.
type VMStatus = api.VMObserved

// Errors every driver returns, wrapped with details (its name first, e.g.
// "qemu: VM x: ..."). Test with errors.Is.
var (
	// ErrNotFound: no such VM.
	ErrNotFound = errors.New("no such VM")
	// ErrInvalidSpec: the spec is malformed or asks for what the host does
	// not have (an unknown datastore, more CPU than the host).
	ErrInvalidSpec = errors.New("invalid VM spec")
	// ErrTransition: the power state or disk change is not allowed from the
	// VM's current state.
	ErrTransition = errors.New("transition not allowed")
	// ErrNoCapacity: a datastore lacks free space for a new disk.
	ErrNoCapacity = errors.New("not enough datastore capacity")
	// ErrDiskInUse: the disk is attached to another VM.
	ErrDiskInUse = errors.New("disk in use")
	// ErrStaleGeneration: the spec is older than what was carried out.
	ErrStaleGeneration = errors.New("stale generation")
)

// Driver runs VMs on one host. Every method is idempotent; the agent calls
// them from one goroutine per VM, so calls for different VMs may overlap.
type Driver interface {
	// Capacity reports the host's CPU, memory and datastores.
	Capacity(ctx context.Context) (Capacity, error)
	// Ensure makes the VM exist with spec's disks and power state and
	// returns what it then observes. A failure it cannot get past is
	// reported as an error (and the VM, if it exists, as ERROR).
	Ensure(ctx context.Context, spec VMSpec) (VMStatus, error)
	// Delete removes the VM and its ephemeral disks; a missing VM is fine.
	Delete(ctx context.Context, id string) error
	// List reports every VM the driver holds, including ones a previous
	// agent process left (after Recover).
	List(ctx context.Context) ([]VMStatus, error)
	// Recover re-adopts VMs that survived an agent restart. The agent calls
	// it once at start, before List.
	Recover(ctx context.Context) error
}

// NICReporter is implemented by drivers that tell the NICs a VM holds:
// those of the last spec carried out, in order, MACs in lower case
// (driver/qemu: what the VM's next boot gets; a running VM keeps the
// NICs it booted with). ErrNotFound for a VM the driver does not hold.
type NICReporter interface {
	NICs(ctx context.Context, id string) ([]api.NICDesired, error)
}

// DiskDriver is implemented by drivers that make persistent disks apart
// from VMs.
type DiskDriver interface {
	EnsureDisk(ctx context.Context, d api.DiskDesired) error
	DeleteDisk(ctx context.Context, d api.DiskDesired) error
}

// Consoler is implemented by drivers that capture VMs' serial consoles
// (driver/qemu: the console log file; driver/fake: a synthetic line per
// change): Console reads a VM's console from its first byte, across boots;
// it returns ErrNotFound for a VM the driver does not hold. The reader
// behaves as a log file does: io.EOF at the end for now, and what the VM
// wrote since on a later Read, so a follower polls it (the agent does, for
// GET /v1/vms/{id}/console?follow=true).
type Consoler interface {
	Console(id string) (io.ReadCloser, error)
}
