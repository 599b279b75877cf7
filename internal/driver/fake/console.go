package fake

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/internal/driver"
)

// maxConsole bounds the console a fake VM keeps (older lines are dropped),
// so that thousands of simulated VMs stay small.
const maxConsole = 16 << 10

// log appends one line to the VM's synthetic serial console, e.g.
// "2025-01-02T15:04:05.000Z web-1: power STOPPED -> STARTED".
func (v *vm) log(now time.Time, format string, args ...any) {
	v.Console += now.UTC().Format("2006-01-02T15:04:05.000Z") + " " + v.Name + ": " + fmt.Sprintf(format, args...) + "\n"
	if over := len(v.Console) - maxConsole; over > 0 {
		cut := over
		if i := strings.IndexByte(v.Console[over:], '\n'); i >= 0 {
			cut = over + i + 1
		}
		v.Console = v.Console[cut:]
		v.ConsoleBase += int64(cut)
	}
}

// logChanges writes to nv's console what an Ensure changed from v (nil for
// a new VM): creation, disks, power, a failed boot.
func logChanges(nv, v *vm, cur string, crashed bool, added, removed []*disk, startErr error, now time.Time) {
	if v == nil {
		nv.log(now, "created: %d CPU, %d MB", nv.CPUCount, nv.MemoryMB)
	}
	for _, dk := range removed {
		nv.log(now, "disk %s detached", dk.ID)
	}
	for _, dk := range added {
		nv.log(now, "disk %s attached (%s, %g GB)", dk.ID, dk.Kind, dk.CapacityGB)
	}
	from := cur
	if crashed {
		from = api.VMError
	}
	if startErr != nil {
		nv.log(now, "boot failed: %v", startErr)
	} else if from != nv.Power {
		nv.log(now, "power %s -> %s", from, nv.Power)
	}
}

// Console reads a VM's synthetic serial console: a line per change the
// driver made to it (created, disks attached and detached, power
// transitions, crashes). It reads as a log file does: io.EOF at the end,
// and what was written since on a later Read. A VM deleted while read
// ends at io.EOF.
func (d *Driver) Console(id string) (io.ReadCloser, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	v, ok := d.vms[id]
	if !ok {
		return nil, fmt.Errorf("fake: console of %s: %w", id, driver.ErrNotFound)
	}
	return &consoleReader{d: d, id: id, off: v.ConsoleBase}, nil
}

type consoleReader struct {
	d   *Driver
	id  string
	off int64 // in everything ever written
}

func (r *consoleReader) Read(p []byte) (int, error) {
	r.d.mu.Lock()
	defer r.d.mu.Unlock()
	v, ok := r.d.vms[r.id]
	if !ok {
		return 0, io.EOF
	}
	r.off = max(r.off, v.ConsoleBase)
	rest := v.Console[r.off-v.ConsoleBase:]
	if rest == "" {
		return 0, io.EOF
	}
	n := copy(p, rest)
	r.off += int64(n)
	return n, nil
}

func (r *consoleReader) Close() error { return nil }
