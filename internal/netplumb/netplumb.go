// Package netplumb owns a host's virtual network data plane: a Linux
// bridge and a VXLAN device (unicast head-end replication, an all-zeros
// forwarding entry per peer host) per subnet present on the host, the
// VMs' taps on those bridges, a network namespace per router holding its
// subnets' gateways (a distributed router, as Neutron's DVR qrouter
// namespaces) with a bridge-family nftables table that keeps each gateway
// answering only its own host's VMs, nftables in the router namespace for
// source NAT of NAT subnets and for floating IPs, a transit link from
// each router to the host's uplink, and a DHCP responder per subnet (in
// the router namespace, on the gateway) answering only the host's own
// ports. Linux programs all this through netlink and nftables; Fake keeps
// it for simulated hosts. Both check what they are given with one
// function and pass the conformance suite in nettest.
//
// A Driver is level-triggered like the VM drivers: Ensure makes the host's
// network equal to what it is given, creating what is missing and removing
// what should not be there, and leaves alone what already matches, so an
// agent restart disturbs no running VM's traffic. docs/architecture.md
// ("Host network data plane") lists the devices, names and rules.
package netplumb

import (
	"context"
	"crypto/sha256"
	"encoding/hex"

	"github.com/photon-cloud/photon/api"
)

// Desired is the whole network a host should have.
type Desired struct {
	api.HostNetworkDesired
	// Ports are the NICs of the VMs the host runs (or will run).
	Ports []Port
}

// Port is one VM NIC on this host.
type Port struct {
	api.NICDesired
	VMID string
}

// Driver programs a host's network.
type Driver interface {
	// Ensure makes the host's routers, subnets, ports, forwarding
	// entries, rules and DHCP leases exactly want's. Idempotent; safe to
	// call again after a failure. The error names what could not be
	// programmed.
	Ensure(ctx context.Context, want Desired) error
	// Close stops what the driver runs (the DHCP responder) and leaves
	// the data plane as it is, so VMs keep their traffic while the agent
	// restarts.
	Close() error
}

// TapName is the name of the tap device of port id: what the VM driver
// attaches the VM's NIC to. At most 15 bytes (IFNAMSIZ).
func TapName(portID string) string { return "pt" + shortHash(portID) }

// shortHash is 12 hex digits of id's sha256: device names derived from
// ids fit the kernel's 15 bytes.
func shortHash(id string) string {
	h := sha256.Sum256([]byte(id))
	return hex.EncodeToString(h[:6])
}
