package api

// Virtual networks (Photon Controller 1.2's NSX networking): a project's
// routers, their subnets, the VMs' ports on them, and floating IPs. The
// controller allocates addresses and VXLAN ids in etcd; each host's agent
// programs its data plane from HostDesiredState.Networks.

// Kinds of network objects.
const (
	KindRouter = "router"
	KindSubnet = "subnet"
)

// Subnet types: a NAT subnet reaches the outside through its host's uplink
// (source NAT); a NO_NAT one reaches only its router's other subnets.
const (
	SubnetNAT   = "NAT"
	SubnetNoNAT = "NO_NAT"
)

// TransitCIDR is where each host's data plane takes the links between
// its router namespaces and the host (unless a host is configured
// otherwise): the controller refuses routers and subnets overlapping it.
const TransitCIDR = "169.254.64.0/18"

// Network object states.
const (
	NetworkCreating = "CREATING"
	NetworkReady    = "READY"
	NetworkError    = "ERROR"
)

// RouterCreateSpec is the body of POST /v1/projects/{id}/routers.
type RouterCreateSpec struct {
	// Name, unique within the project, e.g. "r1".
	Name string `json:"name"`
	// PrivateIPCidr is the address space of the router's subnets, e.g.
	// "10.10.0.0/16". Host bits are accepted and cleared
	// ("192.168.0.1/24" is "192.168.0.0/24").
	PrivateIPCidr string `json:"privateIpCidr"`
}

// Router is a project's router: its subnets route to one another through
// it, and NAT subnets reach the outside.
type Router struct {
	Base
	Name string `json:"name"`
	// PrivateIPCidr, normalized, e.g. "10.10.0.0/16".
	PrivateIPCidr string `json:"privateIpCidr"`
	// State is CREATING, READY or ERROR.
	State string `json:"state"`
	// IsDefault marks the router a project got from its
	// defaultRouterPrivateIpCidr.
	IsDefault bool `json:"isDefault"`
	// ProjectID owns the router (ours).
	ProjectID string `json:"projectId"`
}

// RouterUpdateSpec is the body of PATCH /v1/routers/{id}.
type RouterUpdateSpec struct {
	// Name, the new name, e.g. "r2".
	Name string `json:"name"`
}

// SubnetCreateSpec is the body of POST /v1/routers/{id}/subnets.
type SubnetCreateSpec struct {
	// Name, unique within the project, e.g. "web".
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	// PrivateIPCidr, inside the router's, at least a /29, overlapping no
	// other subnet of the router, e.g. "10.10.1.0/24". Host bits are
	// accepted and cleared.
	PrivateIPCidr string `json:"privateIpCidr"`
	// Type is NAT (default) or NO_NAT.
	Type string `json:"type,omitempty"`
	// PortGroups is accepted for compatibility and ignored.
	PortGroups []string `json:"portGroups,omitempty"`
	// DNSServerAddresses are handed to VMs by DHCP and the seed, e.g.
	// ["1.1.1.1"].
	DNSServerAddresses []string `json:"dnsServerAddresses,omitempty"`
}

// Subnet is a layer-2 segment of a router, spanning every host that runs
// one of its VMs (a VXLAN overlay).
type Subnet struct {
	Base
	Name          string `json:"name"`
	Description   string `json:"description,omitempty"`
	PrivateIPCidr string `json:"privateIpCidr"`
	// Type is NAT or NO_NAT.
	Type string `json:"type"`
	// State is CREATING, READY or ERROR.
	State string `json:"state"`
	// IsDefault marks the project's default subnet: VMs created without
	// subnets get a NIC on it.
	IsDefault bool `json:"isDefault"`
	// ReservedIPs are the subnet's addresses VMs never get, by role, e.g.
	// {"GATEWAY": "10.10.1.1", "NETWORK": "10.10.1.0", "BROADCAST":
	// "10.10.1.255"}.
	ReservedIPs        map[string]string `json:"reservedIps"`
	DNSServerAddresses []string          `json:"dnsServerAddresses"`
	// Ours: owner, router and the VXLAN id of its overlay.
	RouterID  string `json:"routerId"`
	ProjectID string `json:"projectId"`
	VNI       uint32 `json:"vni,omitempty"`
}

// SubnetUpdateSpec is the body of PATCH /v1/subnets/{id}.
type SubnetUpdateSpec struct {
	// Name, the new name, e.g. "web2".
	Name string `json:"name"`
}

// NetworkConnection is one NIC of a VM, as GET /v1/vms/{id}/subnets
// lists them in its GET_NETWORKS task's
// resourceProperties.networkConnections.
type NetworkConnection struct {
	// Network is the subnet's id.
	Network string `json:"network"`
	// MacAddress, e.g. "fa:16:3e:12:34:56".
	MacAddress string `json:"macAddress"`
	// IPAddress, e.g. "10.10.1.5".
	IPAddress string `json:"ipAddress"`
	// Netmask, e.g. "255.255.255.0".
	Netmask string `json:"netmask"`
	// IsConnected is "Connected", "Disconnected" or "Unknown": a string,
	// as Photon Controller sent it and its CLI reads it.
	IsConnected string `json:"isConnected"`
}

// NetworkConnection.IsConnected values.
const (
	NICConnected    = "Connected"
	NICDisconnected = "Disconnected"
	NICUnknown      = "Unknown"
)

// FloatingIPSpec is the body of POST /v1/vms/{id}/acquire_floating_ip.
type FloatingIPSpec struct {
	// NetworkID names the VM's subnet whose address the floating IP maps
	// to (default: its first NIC's).
	NetworkID string `json:"networkId,omitempty"`
}

// NICDesired is one NIC of a VM on its host (VMDesired.NICs): a tap on the
// subnet's bridge, seen by the guest as a virtio-net device.
type NICDesired struct {
	// ID is the port's id, stable for the NIC's life.
	ID string `json:"id"`
	// SubnetID is a subnet of HostDesiredState.Networks.Subnets.
	SubnetID string `json:"subnetId"`
	// MAC, e.g. "fa:16:3e:12:34:56".
	MAC string `json:"mac"`
	// IP, e.g. "10.10.1.5"; the prefix length is the subnet's.
	IP string `json:"ip"`
	// FloatingIP, if the VM has one on this NIC, e.g. "203.0.113.10".
	FloatingIP string `json:"floatingIp,omitempty"`
}

// SubnetDesired is a subnet present on a host (one of its VMs has a NIC
// on it): the host keeps a bridge and a VXLAN device for it and the
// subnet's gateway in its router's namespace.
type SubnetDesired struct {
	ID       string `json:"id"`
	RouterID string `json:"routerId"`
	// CIDR, e.g. "10.10.1.0/24".
	CIDR string `json:"cidr"`
	// Gateway, e.g. "10.10.1.1".
	Gateway string `json:"gateway"`
	// VNI is the VXLAN id of the subnet's overlay (unique in the cloud).
	VNI uint32 `json:"vni"`
	// NAT: source NAT to the outside through the host's uplink.
	NAT bool     `json:"nat"`
	DNS []string `json:"dns,omitempty"`
	// MTU the VMs get by DHCP (the underlay's minus the VXLAN header).
	MTU int `json:"mtu"`
	// Peers are the underlay addresses of the other hosts that carry the
	// subnet: the VXLAN device's forwarding entries (head-end
	// replication, no multicast).
	Peers []string `json:"peers"`
}

// RouterDesired is a router present on a host: a network namespace
// holding its subnets' gateways.
type RouterDesired struct {
	ID string `json:"id"`
	// CIDR, e.g. "10.10.0.0/16".
	CIDR string `json:"cidr"`
}

// HostNetworkDesired is the network a host should have
// (HostDesiredState.Networks): exactly these routers and subnets, and the
// ports of HostDesiredState.VMs' NICs.
type HostNetworkDesired struct {
	Routers []RouterDesired `json:"routers"`
	Subnets []SubnetDesired `json:"subnets"`
}
