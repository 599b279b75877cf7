package main

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/photon-cloud/photon/internal/netplumb"
)

func TestParseDefaultRoute(t *testing.T) {
	const header = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
	for _, tc := range []struct{ name, table, want string }{
		{"one", header + "eth0\t00000000\t0100000A\t0003\t0\t0\t100\t00000000\t0\t0\t0\n" +
			"eth0\t0000000A\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0\n", "eth0"},
		{"lowest metric", header + "wlan0\t00000000\t0101A8C0\t0003\t0\t0\t600\t00000000\t0\t0\t0\n" +
			"eth1\t00000000\t0100000A\t0003\t0\t0\t100\t00000000\t0\t0\t0\n", "eth1"},
		{"down route skipped", header + "eth0\t00000000\t0100000A\t0002\t0\t0\t100\t00000000\t0\t0\t0\n", ""},
		{"none", header + "eth0\t0000000A\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0\n", ""},
		{"garbage", "x\n\x00\x01 y z\n", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseDefaultRoute(strings.NewReader(tc.table))
			if got != tc.want || (tc.want == "") != (err != nil) {
				t.Errorf("= %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

// TestNetworkDriverFlag: the network driver each --network-driver and VM
// driver give; the linux driver, not built yet or refused by the kernel,
// is an error when asked for and a warning (no network) by default.
func TestNetworkDriverFlag(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx := context.Background()
	for _, tc := range []struct {
		flag, vm, underlay string
		want               string // "fake", "none", or "error"
	}{
		{"", "fake", "", "fake"},
		{"fake", "qemu", "", "fake"},
		{"none", "qemu", "", "none"},
		{"bogus", "qemu", "", "error"},
		{"fake", "fake", "not-an-ip", "error"},
	} {
		f := netFlags{driver: tc.flag, underlayIP: tc.underlay}
		d, _, err := f.open(ctx, tc.vm, "https://127.0.0.1:9000", t.TempDir(), log)
		got := "none"
		switch {
		case err != nil:
			got = "error"
		case d != nil:
			if _, ok := d.(*netplumb.Fake); ok {
				got = "fake"
			} else {
				got = "linux"
			}
		}
		if got != tc.want {
			t.Errorf("--network-driver %q with %s: %s (%v), want %s", tc.flag, tc.vm, got, err, tc.want)
		}
	}
	// linux: whatever NewLinux says, explicit and default differ only in
	// whether its failure stops the agent.
	f := netFlags{driver: "linux", uplink: "lo"}
	if d, underlay, err := f.open(ctx, "qemu", "https://127.0.0.1:9000", t.TempDir(), log); err == nil {
		if d == nil || underlay != "127.0.0.1" {
			t.Errorf("--network-driver linux: %v, underlay %q; want a driver on 127.0.0.1", d, underlay)
		}
		d.Close()
	}
	f.driver = ""
	if _, _, err := f.open(ctx, "qemu", "https://127.0.0.1:9000", t.TempDir(), log); err != nil {
		t.Errorf("default network driver with qemu: %v; want a warning at most", err)
	}
	if got := simUnderlay(0) + " " + simUnderlay(300); got != "198.18.0.1 198.18.1.45" {
		t.Errorf("simulated underlay addresses %s", got)
	}
}
