package netplumb

// Names the tests look for.
var (
	BridgeName   = bridgeName
	VXLANName    = vxlanName
	GwHostName   = gwHostName
	GwNSName     = gwNSName
	UplinkName   = uplinkName
	RouterNSName = routerNSName
	GatewayMAC   = gatewayMAC
)

// Responders is how many DHCP responders d runs.
func Responders(d Driver) int {
	l := d.(*Linux)
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.dhcp)
}
