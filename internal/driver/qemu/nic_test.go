package qemu

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/internal/driver"
	"github.com/photon-cloud/photon/internal/driver/drivercore"
	"github.com/photon-cloud/photon/internal/netplumb"
)

var (
	webSubnet = api.SubnetDesired{ID: "sn-web", RouterID: "r1", CIDR: "10.10.1.0/24", Gateway: "10.10.1.1", VNI: 7,
		NAT: true, DNS: []string{"1.1.1.1", "9.9.9.9"}, MTU: 1450}
	dbSubnet = api.SubnetDesired{ID: "sn-db", RouterID: "r1", CIDR: "10.10.2.0/28", Gateway: "10.10.2.1", VNI: 8}
	subnets  = map[string]api.SubnetDesired{webSubnet.ID: webSubnet, dbSubnet.ID: dbSubnet}
)

// TestNICArgs: each NIC is a tap netdev named after its port (no script,
// no vhost) and a virtio-net device with the NIC's MAC, in the NICs'
// order, after the disks; no NIC, no network option at all.
func TestNICArgs(t *testing.T) {
	d := &Driver{cfg: Config{DataDir: "/var/lib/photon/qemu", Machine: "pc"}, accel: AccelTCG, runDir: "/run/photon"}
	for _, tc := range []struct {
		name string
		nics []api.NICDesired
		want []string
	}{
		{"none", nil, nil},
		{"one", []api.NICDesired{{ID: "port-1", SubnetID: "sn-web", MAC: "FA:16:3E:00:00:01", IP: "10.10.1.5"}}, []string{
			"-netdev", "tap,id=net0,ifname=" + netplumb.TapName("port-1") + ",script=no,downscript=no",
			"-device", "virtio-net-pci,netdev=net0,id=nic0,mac=fa:16:3e:00:00:01,romfile=",
		}},
		{"two", []api.NICDesired{
			{ID: "port-b", SubnetID: "sn-db", MAC: "fa:16:3e:00:00:0b", IP: "10.10.2.5"},
			{ID: "port-a", SubnetID: "sn-web", MAC: "fa:16:3e:00:00:0a", IP: "10.10.1.6"},
		}, []string{
			"-netdev", "tap,id=net0,ifname=" + netplumb.TapName("port-b") + ",script=no,downscript=no",
			"-device", "virtio-net-pci,netdev=net0,id=nic0,mac=fa:16:3e:00:00:0b,romfile=",
			"-netdev", "tap,id=net1,ifname=" + netplumb.TapName("port-a") + ",script=no,downscript=no",
			"-device", "virtio-net-pci,netdev=net1,id=nic1,mac=fa:16:3e:00:00:0a,romfile=",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &record{ID: "vm-1", CPUCount: 1, MemoryMB: 128, NICs: tc.nics, Subnets: subnets, Disks: []diskRecord{
				{ID: "vm-1-boot", Kind: api.KindEphemeralDisk, BootDisk: true, Path: "/ds/ephemeral/vm-1-boot.qcow2"}}}
			args := d.args(r, "/seed.iso")
			var got []string
			for i := 0; i+1 < len(args); i++ {
				if args[i] == "-netdev" || args[i] == "-device" && strings.HasPrefix(args[i+1], "virtio-net") {
					got = append(got, args[i], args[i+1])
				}
				if strings.Contains(args[i], "vhost") {
					t.Errorf("argument %q: no vhost-net wanted", args[i])
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("NIC arguments:\n%q\nwant\n%q", got, tc.want)
			}
			if len(tc.want) > 0 && !slices.Equal(args[len(args)-len(tc.want):], tc.want) {
				t.Errorf("NIC arguments are not last: %q", args)
			}
		})
	}
	if n := len(netplumb.TapName("a-long-port-id-0193c9b2-7d1e-7c4a-9f00-3b5e2a1c4d5e")); n > 15 {
		t.Errorf("tap name of %d bytes: over IFNAMSIZ", n)
	}
}

// TestNetworkConfig: the seed's network-config is cloud-init's version 2:
// each NIC matched by MAC and named eth<i>, its address with its subnet's
// prefix length, one default route (the first NIC's gateway), DNS
// servers and MTU; a NIC without an address uses DHCP. It is checked as
// text and as YAML (as cloud-init reads it: the MAC a string).
func TestNetworkConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		nics []api.NICDesired
		want string
	}{
		{"one NIC", []api.NICDesired{{ID: "p1", SubnetID: "sn-web", MAC: "FA:16:3E:12:34:56", IP: "10.10.1.5"}}, `version: 2
ethernets:
  eth0:
    match:
      macaddress: "fa:16:3e:12:34:56"
    set-name: "eth0"
    dhcp4: false
    addresses:
      - "10.10.1.5/24"
    routes:
      - to: "0.0.0.0/0"
        via: "10.10.1.1"
    nameservers:
      addresses:
        - "1.1.1.1"
        - "9.9.9.9"
    mtu: 1450
`},
		{"two NICs, one default route", []api.NICDesired{
			{ID: "p1", SubnetID: "sn-db", MAC: "12:34:56:12:34:56", IP: "10.10.2.5"},
			{ID: "p2", SubnetID: "sn-web", MAC: "fa:16:3e:00:00:02", IP: "10.10.1.9"},
		}, `version: 2
ethernets:
  eth0:
    match:
      macaddress: "12:34:56:12:34:56"
    set-name: "eth0"
    dhcp4: false
    addresses:
      - "10.10.2.5/28"
    routes:
      - to: "0.0.0.0/0"
        via: "10.10.2.1"
  eth1:
    match:
      macaddress: "fa:16:3e:00:00:02"
    set-name: "eth1"
    dhcp4: false
    addresses:
      - "10.10.1.9/24"
    nameservers:
      addresses:
        - "1.1.1.1"
        - "9.9.9.9"
    mtu: 1450
`},
		{"no address: DHCP", []api.NICDesired{{ID: "p1", SubnetID: "sn-db", MAC: "fa:16:3e:00:00:03"}}, `version: 2
ethernets:
  eth0:
    match:
      macaddress: "fa:16:3e:00:00:03"
    set-name: "eth0"
    dhcp4: true
`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := networkConfig(tc.nics, subnets)
			if string(got) != tc.want {
				t.Errorf("network-config:\n%s\nwant\n%s", got, tc.want)
			}
			var nc struct {
				Version   int `json:"version"`
				Ethernets map[string]struct {
					Match struct {
						MACAddress string `json:"macaddress"`
					} `json:"match"`
					SetName   string   `json:"set-name"`
					DHCP4     bool     `json:"dhcp4"`
					Addresses []string `json:"addresses"`
					Routes    []struct {
						To  string `json:"to"`
						Via string `json:"via"`
					} `json:"routes"`
					Nameservers struct {
						Addresses []string `json:"addresses"`
					} `json:"nameservers"`
					MTU int `json:"mtu"`
				} `json:"ethernets"`
			}
			if err := yaml.UnmarshalStrict(got, &nc); err != nil {
				t.Fatalf("network-config does not parse as YAML: %v", err)
			}
			if nc.Version != 2 || len(nc.Ethernets) != len(tc.nics) {
				t.Fatalf("parsed: version %d, %d ethernets; want 2, %d", nc.Version, len(nc.Ethernets), len(tc.nics))
			}
			routes := 0
			for i, n := range tc.nics {
				name := fmt.Sprintf("eth%d", i)
				e, ok := nc.Ethernets[name]
				if !ok || !strings.EqualFold(e.Match.MACAddress, n.MAC) || e.SetName != name {
					t.Errorf("NIC %d parsed as %+v; want matched by %s, named %s", i, e, n.MAC, name)
				}
				if sub := subnets[n.SubnetID]; e.MTU != sub.MTU || !slices.Equal(e.Nameservers.Addresses, sub.DNS) {
					t.Errorf("NIC %d: MTU %d, DNS %v; want the subnet's %d, %v", i, e.MTU, e.Nameservers.Addresses, sub.MTU, sub.DNS)
				}
				routes += len(e.Routes)
			}
			if routes > 1 {
				t.Errorf("%d default routes, want at most one", routes)
			}
		})
	}
}

// TestSeedNetworkConfig: a VM with NICs gets a network-config in its
// seed; one given as metadata wins; a VM without NICs gets none.
func TestSeedNetworkConfig(t *testing.T) {
	nics := []api.NICDesired{{ID: "p1", SubnetID: "sn-web", MAC: "fa:16:3e:12:34:56", IP: "10.10.1.5"}}
	if nc := seedFiles("vm-1", "a", nil, nil, nics, subnets)["network-config"]; !strings.HasPrefix(string(nc), "version: 2\n") {
		t.Errorf("network-config of a VM with a NIC: %q", nc)
	}
	if nc := seedFiles("vm-1", "a", nil, map[string]string{MetaNetworkConfig: "version: 1\n"}, nics, subnets)["network-config"]; string(nc) != "version: 1\n" {
		t.Errorf("network-config given as metadata: %q", nc)
	}
	if _, ok := seedFiles("vm-1", "a", nil, nil, nil, nil)["network-config"]; ok {
		t.Error("a network-config for a VM without NICs")
	}
}

// FuzzNetworkConfig: whatever NIC and subnet a desired state brings, if
// the spec's checks take it, the network-config made of it is YAML with
// exactly that NIC (its MAC, its name, its address) and nothing a
// hostile field could add.
func FuzzNetworkConfig(f *testing.F) {
	f.Add("p1", "fa:16:3e:12:34:56", "10.10.1.5", "10.10.1.0/24", "10.10.1.1", "1.1.1.1", 1450)
	f.Add("p1", "12:34:56:12:34:56", "", "10.10.2.0/28", "", "2001:db8::1", 0)
	f.Add("p\n1", "fa:16:3e:12:34:56\nx: y", "10.10.1.5\"", "10.10.1.0/24 ", "10.10.1.1\n", "1.1.1.1\"\n- x", -1)
	f.Fuzz(func(t *testing.T, id, mac, ip, cidr, gw, dns string, mtu int) {
		sub := api.SubnetDesired{ID: "sn", CIDR: cidr, Gateway: gw, DNS: []string{dns}, MTU: mtu}
		spec := driver.VMSpec{VMDesired: api.VMDesired{ID: "vm", CPUCount: 1, MemoryMB: 64,
			NICs: []api.NICDesired{{ID: id, SubnetID: "sn", MAC: mac, IP: ip}}}, Subnets: map[string]api.SubnetDesired{"sn": sub}}
		if core.ValidateSpec(spec, drivercore.Host{CPUCount: 1, MemoryMB: 64, HasDatastore: func(string) bool { return true }}) != nil {
			return
		}
		out := networkConfig(spec.NICs, spec.Subnets)
		var nc struct {
			Version   int `json:"version"`
			Ethernets map[string]struct {
				Match struct {
					MACAddress string `json:"macaddress"`
				} `json:"match"`
				SetName     string                     `json:"set-name"`
				DHCP4       bool                       `json:"dhcp4"`
				Addresses   []string                   `json:"addresses"`
				Routes      []struct{ To, Via string } `json:"routes"`
				Nameservers struct {
					Addresses []string `json:"addresses"`
				} `json:"nameservers"`
				MTU int `json:"mtu"`
			} `json:"ethernets"`
		}
		if err := yaml.UnmarshalStrict(out, &nc); err != nil {
			t.Fatalf("network-config of a valid NIC does not parse: %v\n%s", err, out)
		}
		e, ok := nc.Ethernets["eth0"]
		if nc.Version != 2 || len(nc.Ethernets) != 1 || !ok || !strings.EqualFold(e.Match.MACAddress, mac) || e.SetName != "eth0" ||
			len(e.Nameservers.Addresses) != 1 || e.Nameservers.Addresses[0] != dns || e.MTU != mtu {
			t.Fatalf("network-config parsed as %+v\n%s", nc, out)
		}
		if ip != "" && (len(e.Addresses) != 1 || !strings.HasPrefix(e.Addresses[0], ip+"/")) {
			t.Fatalf("addresses %v, want %s", e.Addresses, ip)
		}
	})
}
