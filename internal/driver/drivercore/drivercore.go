// Package drivercore holds the rules every driver (driver/fake,
// driver/qemu) applies the same way: id checks, spec validation, power
// transitions, the checks of a disk change and atomic state-file writes.
// The rules wrap the driver package's errors (driver.ErrInvalidSpec...)
// after the driver's message prefix, which Errs carries.
package drivercore

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/internal/driver"
)

// Errs is a driver's message prefix ("fake", "qemu"): the rules' errors
// start with it.
type Errs struct {
	Prefix string
}

// ValidID accepts IDs that are safe as file names: 1..128 of
// [A-Za-z0-9._-], not starting with '.'.
func ValidID(id string) bool {
	if id == "" || len(id) > 128 || id[0] == '.' {
		return false
	}
	for _, r := range id {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '_', r == '-':
		default:
			return false
		}
	}
	return true
}

// CheckID refuses an id ValidID does not accept, with InvalidSpec; what
// names it ("VM", "disk").
func (e Errs) CheckID(what, id string) error {
	if !ValidID(id) {
		return fmt.Errorf("%s: %s id %q: want 1 to 128 of A-Z a-z 0-9 . _ -, not starting with '.': %w", e.Prefix, what, id, driver.ErrInvalidSpec)
	}
	return nil
}

// WantPower is the power state spec asks for ("" means STOPPED).
func WantPower(spec driver.VMSpec) string {
	if spec.Power == "" {
		return api.VMStopped
	}
	return spec.Power
}

// MidPower is the power state while disks change: leaving SUSPENDED and
// stopping come first. A crashed (ERROR) VM counts as STOPPED.
func MidPower(cur, want string) string {
	if cur == api.VMError {
		cur = api.VMStopped
	}
	if (cur == api.VMSuspended && want != api.VMSuspended) || (cur == api.VMStarted && want == api.VMStopped) {
		return want
	}
	return cur
}

// UpToDate reports whether Ensure would change nothing: same generation,
// the observed power state is the one wanted and the disks (ids, in order)
// are the spec's.
func UpToDate[D any](generation int64, observed string, disks []D, diskID func(D) string, spec driver.VMSpec) bool {
	if generation != spec.Generation || observed != WantPower(spec) || len(disks) != len(spec.Disks) {
		return false
	}
	for i := range disks {
		if diskID(disks[i]) != spec.Disks[i].ID {
			return false
		}
	}
	return true
}

// Host is what spec validation needs of the host.
type Host struct {
	CPUCount int
	MemoryMB int64
	// HasDatastore reports a datastore of this host by name.
	HasDatastore func(name string) bool
	// ImageOnlyBoot refuses an image on a disk other than the boot disk.
	ImageOnlyBoot bool
}

// ValidateSpec checks what does not depend on the VM's current state.
func (e Errs) ValidateSpec(spec driver.VMSpec, h Host) error {
	if err := e.CheckID("VM", spec.ID); err != nil {
		return err
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%s: VM %s: %s: %w", e.Prefix, spec.ID, fmt.Sprintf(format, args...), driver.ErrInvalidSpec)
	}
	switch {
	case spec.CPUCount <= 0:
		return bad("cpuCount must be positive, got %d", spec.CPUCount)
	case spec.MemoryMB <= 0:
		return bad("memoryMb must be positive, got %d", spec.MemoryMB)
	case spec.CPUCount > h.CPUCount:
		return bad("%d CPUs exceed the host's %d", spec.CPUCount, h.CPUCount)
	case spec.MemoryMB > h.MemoryMB:
		return bad("%d MB exceed the host's %d MB", spec.MemoryMB, h.MemoryMB)
	}
	switch spec.Power {
	case "", api.VMStarted, api.VMStopped, api.VMSuspended:
	default:
		return bad("unknown power state %q", spec.Power)
	}
	boot := 0
	for i, dk := range spec.Disks {
		if !ValidID(dk.ID) {
			return bad("disk id %q: want 1 to 128 of A-Z a-z 0-9 . _ -, not starting with '.'", dk.ID)
		}
		for _, other := range spec.Disks[:i] {
			if other.ID == dk.ID {
				return bad("disk %s listed twice", dk.ID)
			}
		}
		switch dk.Kind {
		case "", api.KindEphemeralDisk, api.KindPersistentDisk:
		default:
			return bad("disk %s: unknown kind %q", dk.ID, dk.Kind)
		}
		if !h.HasDatastore(dk.Datastore) {
			return bad("disk %s: no datastore %q on this host", dk.ID, dk.Datastore)
		}
		if dk.CapacityGB < 0 {
			return bad("disk %s: negative capacity", dk.ID)
		}
		if dk.BootDisk {
			boot++
		}
		if dk.ImageID != "" && spec.ImagePaths[dk.ImageID] == "" {
			return bad("disk %s: image %s has no local path", dk.ID, dk.ImageID)
		}
		if h.ImageOnlyBoot && dk.ImageID != "" && !dk.BootDisk {
			return bad("disk %s: only the boot disk is made from an image", dk.ID)
		}
	}
	if boot > 1 {
		return bad("%d boot disks, at most one allowed", boot)
	}
	if err := checkNICs(spec); err != nil {
		return bad("%v", err)
	}
	return nil
}

// MaxNICs bounds a VM's NICs (each a PCI device of its own).
const MaxNICs = 16

// checkNICs checks the spec's NICs: valid, distinct ids and MACs (unicast
// Ethernet addresses), each on a subnet of spec.Subnets whose CIDR holds
// its IPv4 address, and those subnets' gateways, DNS servers and MTU.
func checkNICs(spec driver.VMSpec) error {
	if len(spec.NICs) > MaxNICs {
		return fmt.Errorf("%d NICs, at most %d allowed", len(spec.NICs), MaxNICs)
	}
	macs := map[string]string{}
	for i, n := range spec.NICs {
		if !ValidID(n.ID) {
			return fmt.Errorf("NIC id %q: want 1 to 128 of A-Z a-z 0-9 . _ -, not starting with '.'", n.ID)
		}
		for _, other := range spec.NICs[:i] {
			if other.ID == n.ID {
				return fmt.Errorf("NIC %s listed twice", n.ID)
			}
		}
		mac, err := ParseMAC(n.MAC)
		if err != nil {
			return fmt.Errorf("NIC %s: %w", n.ID, err)
		}
		if o, dup := macs[mac]; dup {
			return fmt.Errorf("NIC %s: MAC %s is NIC %s's too", n.ID, mac, o)
		}
		macs[mac] = n.ID
		sub, ok := spec.Subnets[n.SubnetID]
		if !ok {
			return fmt.Errorf("NIC %s: subnet %q is not among the host's subnets", n.ID, n.SubnetID)
		}
		prefix, err := SubnetPrefix(sub)
		if err != nil {
			return fmt.Errorf("NIC %s: %w", n.ID, err)
		}
		if n.IP != "" {
			ip, err := netip.ParseAddr(n.IP)
			if err != nil || !ip.Is4() || !prefix.Contains(ip) {
				return fmt.Errorf("NIC %s: IP %q: want an IPv4 address in its subnet's %s", n.ID, n.IP, prefix)
			}
		}
	}
	return nil
}

// NICs is a copy of a validated spec's NICs with their MACs in lower case
// (what NICReporter reports); nil for none.
func NICs(nics []api.NICDesired) []api.NICDesired {
	if len(nics) == 0 {
		return nil
	}
	out := make([]api.NICDesired, len(nics))
	for i, n := range nics {
		out[i] = n
		if mac, err := ParseMAC(n.MAC); err == nil {
			out[i].MAC = mac
		}
	}
	return out
}

// ParseMAC checks a NIC's MAC: a unicast Ethernet address, e.g.
// "fa:16:3e:12:34:56". It returns it in lower case with colons.
func ParseMAC(s string) (string, error) {
	hw, err := net.ParseMAC(s)
	if err != nil || len(hw) != 6 || hw[0]&1 != 0 {
		return "", fmt.Errorf("MAC %q: want a unicast Ethernet address, e.g. fa:16:3e:12:34:56", s)
	}
	return hw.String(), nil
}

// SubnetPrefix checks a subnet a NIC is on: an IPv4 CIDR (normalized),
// a gateway in it (if any), IPv4 or IPv6 DNS servers (no zone) and an MTU of 0 (the
// guest's default) or 576 to 65535.
func SubnetPrefix(sub api.SubnetDesired) (netip.Prefix, error) {
	prefix, err := netip.ParsePrefix(sub.CIDR)
	if err != nil || !prefix.Addr().Is4() || prefix.Bits() > 30 {
		return netip.Prefix{}, fmt.Errorf("subnet %s: CIDR %q: want an IPv4 CIDR of at most /30, e.g. 10.10.1.0/24", sub.ID, sub.CIDR)
	}
	prefix = prefix.Masked()
	if sub.Gateway != "" {
		gw, err := netip.ParseAddr(sub.Gateway)
		if err != nil || !prefix.Contains(gw) {
			return netip.Prefix{}, fmt.Errorf("subnet %s: gateway %q: want an address in %s", sub.ID, sub.Gateway, prefix)
		}
	}
	if len(sub.DNS) > 8 {
		return netip.Prefix{}, fmt.Errorf("subnet %s: %d DNS servers, at most 8", sub.ID, len(sub.DNS))
	}
	for _, d := range sub.DNS {
		if a, err := netip.ParseAddr(d); err != nil || a.Zone() != "" {
			return netip.Prefix{}, fmt.Errorf("subnet %s: DNS server %q: not an IP address", sub.ID, d)
		}
	}
	if sub.MTU != 0 && (sub.MTU < 576 || sub.MTU > 65535) {
		return netip.Prefix{}, fmt.Errorf("subnet %s: MTU %d: want 576 to 65535", sub.ID, sub.MTU)
	}
	return prefix, nil
}

// CheckDiskRequest checks an EnsureDisk request: a persistent disk with a
// valid id on a datastore of this host.
func (e Errs) CheckDiskRequest(want api.DiskDesired, hasDatastore bool) error {
	if err := e.CheckID("disk", want.ID); err != nil {
		return err
	}
	switch {
	case want.Kind != "" && want.Kind != api.KindPersistentDisk:
		return fmt.Errorf("%s: disk %s: EnsureDisk makes persistent disks, not %q: %w", e.Prefix, want.ID, want.Kind, driver.ErrInvalidSpec)
	case !hasDatastore:
		return fmt.Errorf("%s: disk %s: no datastore %q on this host: %w", e.Prefix, want.ID, want.Datastore, driver.ErrInvalidSpec)
	case want.CapacityGB < 0:
		return fmt.Errorf("%s: disk %s: negative capacity: %w", e.Prefix, want.ID, driver.ErrInvalidSpec)
	}
	return nil
}

// Stale refuses a spec older than the generation carried out.
func (e Errs) Stale(spec driver.VMSpec, have int64) error {
	return fmt.Errorf("%s: VM %s: generation %d is older than %d: %w",
		e.Prefix, spec.ID, spec.Generation, have, driver.ErrStaleGeneration)
}

// CheckPower refuses SUSPENDED for a VM that is not STARTED or SUSPENDED.
// cur is the VM's observed state (ERROR if it crashed); exists is false
// for a new VM.
func (e Errs) CheckPower(id, cur, want string, exists bool) error {
	crashed := cur == api.VMError
	if crashed {
		cur = api.VMStopped
	}
	if want == api.VMSuspended && cur != api.VMStarted && cur != api.VMSuspended {
		from := "is " + cur
		if crashed {
			from = "is " + api.VMError
		} else if !exists {
			from = "does not exist yet"
		}
		return fmt.Errorf("%s: VM %s: only a STARTED VM can be suspended, this one %s: %w", e.Prefix, id, from, driver.ErrTransition)
	}
	return nil
}

// CheckDiskChange refuses disk changes while SUSPENDED, and a boot disk
// change unless STOPPED; mid is the power state while disks change.
func (e Errs) CheckDiskChange(id, mid string, changed, bootChanged bool) error {
	if !changed {
		return nil
	}
	if mid == api.VMSuspended {
		return fmt.Errorf("%s: VM %s: disks cannot change while SUSPENDED: %w", e.Prefix, id, driver.ErrTransition)
	}
	if bootChanged && mid != api.VMStopped {
		return fmt.Errorf("%s: VM %s: the boot disk changes only while STOPPED (VM is %s): %w", e.Prefix, id, mid, driver.ErrTransition)
	}
	return nil
}

// Attach says what attaching the spec's disk sd to VM id means given the
// disk the driver already holds by that id (found, of kind kind, attached
// to VM vm or ""): adopt an existing persistent disk (true), make a new
// one (false, nil), or an error.
func (e Errs) Attach(id string, sd api.DiskDesired, found bool, kind, vm string) (adopt bool, err error) {
	switch {
	case !found:
		return false, nil
	case kind != api.KindPersistentDisk:
		return false, fmt.Errorf("%s: VM %s: disk %s is an ephemeral disk of VM %s: %w", e.Prefix, id, sd.ID, vm, driver.ErrDiskInUse)
	case sd.Kind == api.KindPersistentDisk:
		if vm != "" && vm != id {
			return false, fmt.Errorf("%s: VM %s: disk %s is attached to VM %s: %w", e.Prefix, id, sd.ID, vm, driver.ErrDiskInUse)
		}
		return true, nil
	default:
		return false, fmt.Errorf("%s: VM %s: disk %s is a persistent disk, listed as %q: %w", e.Prefix, id, sd.ID, sd.Kind, driver.ErrInvalidSpec)
	}
}

// Reserve takes a new disk's capacity from free (the free GB of its
// datastore), or refuses it with NoCapacity.
func (e Errs) Reserve(id string, sd api.DiskDesired, free *float64) error {
	if sd.CapacityGB > *free+1e-9 {
		return fmt.Errorf("%s: VM %s: disk %s needs %g GB, datastore %s has %g GB free: %w",
			e.Prefix, id, sd.ID, sd.CapacityGB, sd.Datastore, max(*free, 0), driver.ErrNoCapacity)
	}
	*free -= sd.CapacityGB
	return nil
}

// NewDiskKind is the kind a new disk is made with ("" means ephemeral).
func NewDiskKind(sd api.DiskDesired) string {
	if sd.Kind == "" {
		return api.KindEphemeralDisk
	}
	return sd.Kind
}

// WriteError is a failure of WriteFileAtomic after its temporary file was
// made.
type WriteError struct {
	Path string
	Err  error
}

func (e *WriteError) Error() string { return fmt.Sprintf("write %s: %v", e.Path, e.Err) }
func (e *WriteError) Unwrap() error { return e.Err }

// WriteFileAtomic writes path atomically: write fills a temporary file in
// path's directory (named by pattern, as os.CreateTemp), which is then
// renamed over path; on a failure the temporary file is removed. There is
// no fsync: state files must survive the agent process, not a power cut of
// the host. A failure to make the temporary file is returned as is; a
// later one as a *WriteError.
func WriteFileAtomic(path, pattern string, write func(io.Writer) error) error {
	f, err := os.CreateTemp(filepath.Dir(path), pattern)
	if err != nil {
		return err
	}
	err = write(f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		_ = os.Remove(f.Name())
		return &WriteError{Path: path, Err: err}
	}
	return nil
}

// WriteBytes is a write function for WriteFileAtomic that writes b.
func WriteBytes(b []byte) func(io.Writer) error {
	return func(w io.Writer) error {
		_, err := w.Write(b)
		return err
	}
}
