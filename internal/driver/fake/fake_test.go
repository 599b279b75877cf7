package fake_test

import (
	"testing"
	"time"

	"github.com/photon-cloud/photon/internal/driver"
	"github.com/photon-cloud/photon/internal/driver/drivertest"
	"github.com/photon-cloud/photon/internal/driver/fake"
)

func newFake(t *testing.T, cfg fake.Config) *fake.Driver {
	t.Helper()
	d, err := fake.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestConformance(t *testing.T) {
	drivertest.RunWithOptions(t, func(t *testing.T, dataDir string) driver.Driver {
		return newFake(t, fake.Config{DataDir: dataDir})
	}, drivertest.Options{
		KillVM: func(t *testing.T, d driver.Driver, id string) {
			if err := d.(*fake.Driver).Crash(id, "killed by the test"); err != nil {
				t.Fatal(err)
			}
		},
	})
}

func TestConformanceWithImageAndLatency(t *testing.T) {
	drivertest.RunWithOptions(t, func(t *testing.T, dataDir string) driver.Driver {
		return newFake(t, fake.Config{DataDir: dataDir, Latency: 100 * time.Microsecond, Jitter: 200 * time.Microsecond})
	}, drivertest.Options{ImageID: "img-1", ImagePath: "/nonexistent/cached/img-1.qcow2"})
}
