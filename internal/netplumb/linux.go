package netplumb

import (
	"errors"
	"log/slog"
)

// Config is what the Linux driver needs of its host.
type Config struct {
	// UnderlayIP is the host's address that carries the overlays (the
	// VXLAN endpoint), e.g. "192.0.2.11".
	UnderlayIP string
	// Uplink is the interface NAT subnets and floating IPs reach the
	// outside through, e.g. "eth0".
	Uplink string
	// StateDir keeps what the driver must remember across restarts
	// (0700).
	StateDir string
	Logger   *slog.Logger
}

// NewLinux returns the driver that programs this host's kernel.
func NewLinux(cfg Config) (Driver, error) {
	return nil, errors.New("netplumb: the Linux network driver is not built yet")
}
