package netplumb

import (
	"crypto/sha256"
	"net"
	"net/netip"
)

// Device and namespace names: a two-letter kind and shortHash of the id
// (IFNAMSIZ is 16 with the NUL). Every device photon creates also carries
// an alias (IFLA_IFALIAS) "photon:<kind>:<id>": Ensure removes only
// devices with both the prefix and the alias, so it never touches a device
// it did not make.
const (
	prefixBridge = "pb" // a subnet's bridge, host namespace
	prefixVXLAN  = "pv" // a subnet's VXLAN device, on its bridge
	prefixGwHost = "pg" // host end of a subnet's gateway veth, on its bridge
	prefixGwNS   = "gw" // router end of it, holding the gateway address
	prefixUplink = "pu" // host end of a router's transit veth
	prefixTap    = "pt" // a port's tap (TapName)
	prefixRouter = "qr-"
	uplinkNS     = "up0" // router end of its transit veth
	aliasPrefix  = "photon:"
)

func bridgeName(subnetID string) string { return prefixBridge + shortHash(subnetID) }
func vxlanName(subnetID string) string  { return prefixVXLAN + shortHash(subnetID) }
func gwHostName(subnetID string) string { return prefixGwHost + shortHash(subnetID) }
func gwNSName(subnetID string) string   { return prefixGwNS + shortHash(subnetID) }
func uplinkName(routerID string) string { return prefixUplink + shortHash(routerID) }
func routerNSName(routerID string) string {
	return prefixRouter + shortHash(routerID)
}

func alias(kind, id string) string { return aliasPrefix + kind + ":" + id }

// gatewayMACPrefix is the first three bytes of every gateway MAC: the
// same MAC for a subnet's gateway on every host (derived from the subnet
// id), so a VM's ARP entry stays right wherever it is; frames from it
// never cross the overlay as they are.
var gatewayMACPrefix = [3]byte{0x02, 0x70, 0x67}

// hostMACPrefix is the first two bytes of a host's router MAC on the
// overlay: 06:70 and the host's underlay IPv4 address. A router's frames
// leave a host with this source (and ARP probes with this sender) so
// that remote bridges learn one MAC per host, never a flapping gateway
// MAC (Neutron DVR's "DVR MAC").
var hostMACPrefix = [2]byte{0x06, 0x70}

func gatewayMAC(subnetID string) net.HardwareAddr {
	h := sha256.Sum256([]byte("gateway-mac:" + subnetID))
	return net.HardwareAddr{gatewayMACPrefix[0], gatewayMACPrefix[1], gatewayMACPrefix[2], h[0], h[1], h[2]}
}

func hostMAC(underlay netip.Addr) net.HardwareAddr {
	a := underlay.As4()
	return net.HardwareAddr{hostMACPrefix[0], hostMACPrefix[1], a[0], a[1], a[2], a[3]}
}

func isGatewayMAC(m net.HardwareAddr) bool {
	return len(m) == 6 && m[0] == gatewayMACPrefix[0] && m[1] == gatewayMACPrefix[1] && m[2] == gatewayMACPrefix[2]
}

func isHostMAC(m net.HardwareAddr) bool {
	return len(m) == 6 && m[0] == hostMACPrefix[0] && m[1] == hostMACPrefix[1]
}
