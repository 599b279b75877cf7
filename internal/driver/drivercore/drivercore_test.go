package drivercore

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/internal/driver"
)

var (
	errInvalid    = driver.ErrInvalidSpec
	errTransition = driver.ErrTransition
	testErrs      = Errs{Prefix: "test"}
)

func TestValidID(t *testing.T) {
	for id, want := range map[string]bool{"a": true, "vm-1.x_y": true, "": false, ".a": false, "a/b": false} {
		if got := ValidID(id); got != want {
			t.Errorf("ValidID(%q) = %v, want %v", id, got, want)
		}
	}
	if err := testErrs.CheckID("VM", "a b"); !errors.Is(err, errInvalid) {
		t.Errorf("CheckID: %v", err)
	}
}

func TestPower(t *testing.T) {
	if got := MidPower(api.VMError, api.VMStarted); got != api.VMStopped {
		t.Errorf("MidPower(ERROR, STARTED) = %s", got)
	}
	if got := MidPower(api.VMSuspended, api.VMStarted); got != api.VMStarted {
		t.Errorf("MidPower(SUSPENDED, STARTED) = %s", got)
	}
	if err := testErrs.CheckPower("v", api.VMStopped, api.VMSuspended, false); !errors.Is(err, errTransition) {
		t.Errorf("CheckPower of a new VM: %v", err)
	}
	if err := testErrs.CheckPower("v", api.VMStarted, api.VMSuspended, true); err != nil {
		t.Errorf("CheckPower STARTED->SUSPENDED: %v", err)
	}
	if err := testErrs.CheckDiskChange("v", api.VMStarted, true, true); !errors.Is(err, errTransition) {
		t.Errorf("CheckDiskChange of a boot disk while STARTED: %v", err)
	}
}

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "x.json")
	if err := WriteFileAtomic(path, ".tmp-*", WriteBytes([]byte("one"))); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	err := WriteFileAtomic(path, ".tmp-*", func(_ io.Writer) error { return boom })
	var we *WriteError
	if !errors.As(err, &we) || !errors.Is(err, boom) {
		t.Errorf("failed write: %v", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "one" {
		t.Errorf("file after failed write: %q", b)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("%d files left, want 1", len(entries))
	}
}

// TestValidateNICs: a VM's NICs need valid, distinct ids and unicast
// MACs, a subnet among the spec's with a sound CIDR, gateway, DNS and
// MTU, and an address in that subnet; every refusal names the NIC.
func TestValidateNICs(t *testing.T) {
	web := api.SubnetDesired{ID: "web", CIDR: "10.10.1.0/24", Gateway: "10.10.1.1", DNS: []string{"1.1.1.1"}, MTU: 1450}
	host := Host{CPUCount: 4, MemoryMB: 4096, HasDatastore: func(string) bool { return true }}
	nic := func(id, mac, ip string) api.NICDesired {
		return api.NICDesired{ID: id, SubnetID: "web", MAC: mac, IP: ip}
	}
	many := make([]api.NICDesired, MaxNICs+1)
	for i := range many {
		many[i] = nic(fmt.Sprintf("p%d", i), fmt.Sprintf("fa:16:3e:00:00:%02x", i), "")
	}
	for _, tc := range []struct {
		name    string
		nics    []api.NICDesired
		subnets map[string]api.SubnetDesired
		want    string // in the error; "" for none
	}{
		{"none", nil, nil, ""},
		{"one", []api.NICDesired{nic("p1", "fa:16:3e:00:00:01", "10.10.1.5")}, nil, ""},
		{"no address", []api.NICDesired{nic("p1", "fa:16:3e:00:00:01", "")}, nil, ""},
		{"bad id", []api.NICDesired{nic("p/1", "fa:16:3e:00:00:01", "")}, nil, `NIC id "p/1"`},
		{"twice", []api.NICDesired{nic("p1", "fa:16:3e:00:00:01", ""), nic("p1", "fa:16:3e:00:00:02", "")}, nil, "NIC p1 listed twice"},
		{"bad MAC", []api.NICDesired{nic("p1", "fa:16:3e:00:01", "")}, nil, "NIC p1: MAC"},
		{"multicast MAC", []api.NICDesired{nic("p1", "01:00:5e:00:00:01", "")}, nil, "NIC p1: MAC"},
		{"MAC comma", []api.NICDesired{nic("p1", "fa:16:3e:00:00:01,romfile=/etc/shadow", "")}, nil, "NIC p1: MAC"},
		{"same MAC", []api.NICDesired{nic("p1", "fa:16:3e:00:00:01", ""), nic("p2", "FA:16:3E:00:00:01", "")}, nil, "NIC p2: MAC fa:16:3e:00:00:01 is NIC p1's"},
		{"unknown subnet", []api.NICDesired{{ID: "p1", SubnetID: "db", MAC: "fa:16:3e:00:00:01"}}, nil, `NIC p1: subnet "db" is not among`},
		{"address outside", []api.NICDesired{nic("p1", "fa:16:3e:00:00:01", "10.10.2.5")}, nil, `NIC p1: IP "10.10.2.5"`},
		{"IPv6 address", []api.NICDesired{nic("p1", "fa:16:3e:00:00:01", "::1")}, nil, `NIC p1: IP "::1"`},
		{"bad CIDR", []api.NICDesired{nic("p1", "fa:16:3e:00:00:01", "")}, map[string]api.SubnetDesired{"web": {ID: "web", CIDR: "10.10.1.0"}}, "subnet web: CIDR"},
		{"gateway outside", []api.NICDesired{nic("p1", "fa:16:3e:00:00:01", "")}, map[string]api.SubnetDesired{"web": {ID: "web", CIDR: "10.10.1.0/24", Gateway: "10.0.0.1"}}, "subnet web: gateway"},
		{"bad DNS", []api.NICDesired{nic("p1", "fa:16:3e:00:00:01", "")}, map[string]api.SubnetDesired{"web": {ID: "web", CIDR: "10.10.1.0/24", DNS: []string{"one.one"}}}, "DNS server"},
		{"DNS with a zone", []api.NICDesired{nic("p1", "fa:16:3e:00:00:01", "")}, map[string]api.SubnetDesired{"web": {ID: "web", CIDR: "10.10.1.0/24", DNS: []string{"fe80::1%eth0"}}}, "DNS server"},
		{"bad MTU", []api.NICDesired{nic("p1", "fa:16:3e:00:00:01", "")}, map[string]api.SubnetDesired{"web": {ID: "web", CIDR: "10.10.1.0/24", MTU: 70000}}, "MTU 70000"},
		{"too many", many, nil, "17 NICs"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			subnets := tc.subnets
			if subnets == nil {
				subnets = map[string]api.SubnetDesired{"web": web}
			}
			spec := driver.VMSpec{VMDesired: api.VMDesired{ID: "vm-1", CPUCount: 1, MemoryMB: 64, NICs: tc.nics}, Subnets: subnets}
			err := testErrs.ValidateSpec(spec, host)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tc.want != "" && (!errors.Is(err, errInvalid) || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("error %v; want InvalidSpec with %q", err, tc.want)
			}
		})
	}
}
