package netplumb_test

import (
	"path/filepath"
	"testing"

	"github.com/photon-cloud/photon/internal/netplumb"
	"github.com/photon-cloud/photon/internal/netplumb/nettest"
)

func TestConformanceFake(t *testing.T) {
	nettest.Run(t, func(t *testing.T) netplumb.Driver { return netplumb.NewFake() })
}

func TestConformanceLinux(t *testing.T) {
	requireRoot(t)
	nettest.Run(t, func(t *testing.T) netplumb.Driver {
		dir := t.TempDir()
		ns := nettest.NewNS(t, dir, "host")
		d, err := netplumb.NewLinux(netplumb.Config{UnderlayIP: "192.0.2.1", NetNS: ns, NetNSDir: filepath.Join(dir, "netns")})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Close() })
		return d
	})
}
