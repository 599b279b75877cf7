package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/photon-cloud/photon/internal/netplumb"
)

// netFlags configure the host's network driver (internal/netplumb).
type netFlags struct {
	driver     string
	underlayIP string
	uplink     string
	netnsDir   string
}

func (f *netFlags) add(cmd *cobra.Command, underlay bool) {
	fl := cmd.Flags()
	fl.StringVar(&f.driver, "network-driver", "", `host network driver: "linux" (bridges, VXLAN, router namespaces, nftables and DHCP in this host's kernel; needs root), "fake" (programs nothing: simulated hosts) or "none" (VMs get no network: their NICs are left out). Default: linux with the qemu driver when running as root, fake with the fake driver, else none; a default linux driver that cannot start (e.g. the kernel refuses) is a warning and VMs get no network, an explicit one an error`)
	if underlay {
		fl.StringVar(&f.underlayIP, "underlay-ip", "", "the host's address that carries the overlays between hosts (its VXLAN endpoint), reported to the controller (default: the source address of the route to the controller)")
	}
	fl.StringVar(&f.uplink, "uplink", "", "interface NAT subnets and floating IPs reach the outside through (default: the interface of the default route)")
	fl.StringVar(&f.netnsDir, "router-netns-dir", "", "linux network driver: where the routers' network namespaces are kept (default /run/netns, where `ip netns` finds them); hosts sharing one mount namespace (tests) need one each")
}

// open makes the network driver for a host whose VM driver is vmDriver
// ("qemu" or "fake"), keeping its state in stateDir. Its underlay
// address is --underlay-ip, or the source address of the route to
// controller. A nil driver (and no error) means VMs get no network.
func (f *netFlags) open(ctx context.Context, vmDriver, controller, stateDir string, log *slog.Logger) (netplumb.Driver, string, error) {
	name, explicit := f.driver, f.driver != ""
	if !explicit {
		switch {
		case vmDriver == "fake":
			name = "fake"
		case os.Geteuid() == 0:
			name = "linux"
		default:
			name = "none"
			log.Warn("network driver unavailable: the linux network driver needs root; VMs get no network")
		}
	}
	underlay := f.underlayIP
	if underlay != "" {
		if a, err := netip.ParseAddr(underlay); err != nil || !a.Is4() {
			return nil, "", fmt.Errorf("--underlay-ip %q: want an IPv4 address", underlay)
		}
	}
	// unavailable is a linux driver that cannot start: an error if asked
	// for, else a warning (the agent runs, its VMs without network).
	unavailable := func(err error) (netplumb.Driver, string, error) {
		if explicit {
			return nil, "", fmt.Errorf("--network-driver linux: %w", err)
		}
		log.Warn("network driver unavailable: VMs get no network", "error", err)
		return nil, underlay, nil
	}
	switch name {
	case "none":
		return nil, underlay, nil
	case "fake":
		return netplumb.NewFake(), underlay, nil
	case "linux":
		if underlay == "" {
			var err error
			if underlay, err = sourceAddress(ctx, controller); err != nil {
				return unavailable(fmt.Errorf("--underlay-ip not given, and %w", err))
			}
		}
		uplink := f.uplink
		if uplink == "" {
			var err error
			if uplink, err = defaultRouteInterface("/proc/net/route"); err != nil {
				log.Warn("no uplink: NAT subnets and floating IPs will not reach the outside (give --uplink)", "error", err)
			}
		}
		d, err := netplumb.NewLinux(netplumb.Config{UnderlayIP: underlay, Uplink: uplink, StateDir: stateDir,
			NetNSDir: f.netnsDir, Logger: log.With("driver", "netplumb")})
		if err != nil {
			return unavailable(err)
		}
		log.Info("host network driver: linux", "underlay", underlay, "uplink", uplink)
		return d, underlay, nil
	}
	return nil, "", fmt.Errorf("--network-driver %q: want linux, fake or none", name)
}

// sourceAddress is the address this host sends from to reach the
// controller at rawURL (a UDP "connection" sends nothing; the kernel
// picks the route and its source).
func sourceAddress(ctx context.Context, rawURL string) (string, error) {
	u, err := url.Parse(rawURL)
	if err != nil || u.Hostname() == "" {
		return "", fmt.Errorf("controller URL %q names no host", rawURL)
	}
	port := u.Port()
	if port == "" {
		port = "443"
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var dialer net.Dialer
	c, err := dialer.DialContext(ctx, "udp4", net.JoinHostPort(u.Hostname(), port))
	if err != nil {
		return "", fmt.Errorf("no route to the controller %s: %w", u.Host, err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).IP.String(), nil
}

// defaultRouteInterface is the interface of the IPv4 default route with
// the lowest metric, from a /proc/net/route table.
func defaultRouteInterface(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	return parseDefaultRoute(io.LimitReader(f, 1<<20))
}

func parseDefaultRoute(r io.Reader) (string, error) {
	s := bufio.NewScanner(r)
	best, bestMetric := "", uint64(0)
	for first := true; s.Scan(); first = false {
		fields := strings.Fields(s.Text())
		if first || len(fields) < 8 {
			continue // the header
		}
		// Iface Destination Gateway Flags RefCnt Use Metric Mask ...
		flags, err1 := strconv.ParseUint(fields[3], 16, 32)
		metric, err2 := strconv.ParseUint(fields[6], 10, 32)
		if err1 != nil || err2 != nil || fields[1] != "00000000" || fields[7] != "00000000" || flags&1 == 0 {
			continue // not an up default route
		}
		if best == "" || metric < bestMetric {
			best, bestMetric = fields[0], metric
		}
	}
	if best == "" {
		return "", errors.New("no IPv4 default route")
	}
	return best, nil
}

// simUnderlay is a simulated host's underlay address: the i-th of
// 198.18.0.0/15 (the benchmarking range), distinct for each host.
func simUnderlay(i int) string {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], 198<<24+18<<16+uint32(i)+1)
	return netip.AddrFrom4(b).String()
}
