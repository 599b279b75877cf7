package drivertest

import (
	"errors"
	"slices"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/internal/driver"
)

// testNICs: a VM's NICs are those of the last spec carried out (MACs in
// lower case), kept across a restart; a NIC list change comes with a new
// generation; a NIC on a subnet the spec does not give, or with a bad
// MAC, is refused as an invalid spec and changes nothing. The VMs stay
// STOPPED: a booted VM's NICs need the host's taps (driver/qemu's boot
// tests make them).
func testNICs(h *harness) {
	nr, ok := h.d.(driver.NICReporter)
	if !ok {
		h.t.Skip("the driver is not a driver.NICReporter")
	}
	web := api.SubnetDesired{ID: "sn-web", RouterID: "r1", CIDR: "10.10.1.0/24", Gateway: "10.10.1.1", VNI: 5001, NAT: true, DNS: []string{"1.1.1.1"}, MTU: 1450}
	db := api.SubnetDesired{ID: "sn-db", RouterID: "r1", CIDR: "10.10.2.0/24", Gateway: "10.10.2.1", VNI: 5002}
	subnets := map[string]api.SubnetDesired{web.ID: web, db.ID: db}
	a := api.NICDesired{ID: h.id("port-a"), SubnetID: web.ID, MAC: "FA:16:3E:00:00:0A", IP: "10.10.1.5"}
	b := api.NICDesired{ID: h.id("port-b"), SubnetID: db.ID, MAC: "fa:16:3e:00:00:0b", IP: "10.10.2.5"}
	c := api.NICDesired{ID: h.id("port-c"), SubnetID: web.ID, MAC: "fa:16:3e:00:00:0c", IP: "10.10.1.6"}
	lower := func(n api.NICDesired) api.NICDesired {
		if n.MAC == a.MAC {
			n.MAC = "fa:16:3e:00:00:0a"
		}
		return n
	}
	check := func(id string, want ...api.NICDesired) {
		h.t.Helper()
		got, err := nr.NICs(h.ctx, id)
		if err != nil {
			h.t.Fatalf("NICs(%s): %v", id, err)
		}
		for i := range want {
			want[i] = lower(want[i])
		}
		if !slices.Equal(got, want) {
			h.t.Errorf("NICs(%s) = %+v, want %+v", id, got, want)
		}
	}

	s := h.spec("nics", api.VMStopped, 1)
	s.NICs, s.Subnets = []api.NICDesired{a, b}, subnets
	h.ensure(s)
	check(s.ID, a, b)
	h.ensure(s) // the same spec again: nothing changes
	check(s.ID, a, b)

	s = next(s, api.VMStopped)
	s.NICs = []api.NICDesired{c, a}
	h.ensure(s)
	check(s.ID, c, a)

	for _, bad := range []struct {
		why  string
		nics []api.NICDesired
	}{
		{"a NIC on a subnet the host does not have", []api.NICDesired{{ID: h.id("port-x"), SubnetID: "sn-other", MAC: "fa:16:3e:00:00:0f"}}},
		{"a NIC with a multicast MAC", []api.NICDesired{{ID: h.id("port-x"), SubnetID: web.ID, MAC: "01:00:5e:00:00:01"}}},
		{"a NIC outside its subnet", []api.NICDesired{{ID: h.id("port-x"), SubnetID: web.ID, MAC: "fa:16:3e:00:00:0f", IP: "10.10.2.9"}}},
	} {
		r := next(s, api.VMStopped)
		r.NICs = bad.nics
		if _, err := h.try(r); !errors.Is(err, driver.ErrInvalidSpec) {
			h.t.Errorf("%s: %v; want ErrInvalidSpec", bad.why, err)
		}
		h.listed(s.ID, api.VMStopped, s.Generation)
		check(s.ID, c, a)
	}

	h.restart()
	nr = h.d.(driver.NICReporter)
	check(s.ID, c, a)
	s = next(s, api.VMStopped)
	s.NICs = nil
	h.ensure(s)
	check(s.ID)
	if _, err := nr.NICs(h.ctx, h.id("no-such-vm")); !errors.Is(err, driver.ErrNotFound) {
		h.t.Errorf("NICs of a VM the driver does not hold: %v; want ErrNotFound", err)
	}
}
