package qemu

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/internal/driver/drivercore"
	"github.com/photon-cloud/photon/internal/netplumb"
)

// proc is a QEMU process this Driver started: a goroutine waits for it (so
// it does not linger as a zombie) and records how it ended.
type proc struct {
	done chan struct{}
	err  error // set before done is closed
}

// qemuName is the -name of a VM's QEMU: how operators (and alive) find it.
func qemuName(id string) string { return "photon-" + id }

// alive reports whether pid is the QEMU of VM id, and if not, why.
func (d *Driver) alive(id string, pid int) (bool, string) {
	if pid <= 0 {
		return false, "no QEMU process"
	}
	d.procMu.Lock()
	p := d.procs[pid]
	d.procMu.Unlock()
	if p != nil {
		select {
		case <-p.done:
			return false, fmt.Sprintf("QEMU process %d ended: %v", pid, p.err)
		default:
		}
	}
	state, ok := procState(pid)
	if !ok {
		return false, fmt.Sprintf("QEMU process %d is gone", pid)
	}
	if exiting(state) {
		return false, fmt.Sprintf("QEMU process %d is gone (exited, not reaped)", pid)
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || len(cmdline) == 0 {
		// Gone, or exiting (its memory, and so its cmdline, already
		// released): say how it ended if it is our child.
		if p != nil {
			select {
			case <-p.done:
				return false, fmt.Sprintf("QEMU process %d ended: %v", pid, p.err)
			case <-time.After(200 * time.Millisecond):
			}
		}
		return false, fmt.Sprintf("QEMU process %d is gone", pid)
	}
	for _, arg := range bytes.Split(cmdline, []byte{0}) {
		if string(arg) == qemuName(id) {
			return true, ""
		}
	}
	return false, fmt.Sprintf("QEMU process %d is gone (the pid now runs something else)", pid)
}

// procState is process pid's state letter in /proc (R, S, Z...); false
// when it has none (gone).
func procState(pid int) (byte, bool) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	// The state follows the command name in parentheses.
	i := bytes.LastIndexByte(stat, ')')
	if err != nil || i < 0 || i+2 >= len(stat) {
		return 0, false
	}
	return stat[i+2], true
}

// exiting: a zombie (exited, not reaped) or dead process's state.
func exiting(state byte) bool { return state == 'Z' || state == 'X' }

// ourProcesses lists the pids of QEMU processes whose QMP socket is in
// this Driver's run directory.
func (d *Driver) ourProcesses() []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	marker := []byte("unix:" + d.runDir + "/")
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && bytes.Contains(cmdline, marker) {
			out = append(out, pid)
		}
	}
	return out
}

// blockdev is a -blockdev / blockdev-add argument for a file of format
// (qcow2, raw, ...). A format that can have a backing file gets none
// ("backing": null): QEMU follows no file name written in an image.
func blockdev(node, format, path string, readOnly bool) map[string]any {
	b := map[string]any{
		"driver": format, "node-name": node, "read-only": readOnly,
		"file": map[string]any{"driver": "file", "filename": path, "read-only": readOnly},
	}
	if cowFormat(format) {
		b["backing"] = nil
	}
	return b
}

// diskBlockdevs are the block nodes of a disk, in the order QEMU must
// have them: for a boot disk made from an image, the image (read-only,
// opened as the format it was checked as, with no backing file of its
// own) and then the overlay, whose backing is named explicitly; for
// other disks (blank qcow2 files the driver made) the disk alone, with
// no backing file. The disk's node is the last.
func diskBlockdevs(dk diskRecord) []map[string]any {
	disk := blockdev(nodeName(dk.ID), "qcow2", dk.Path, false)
	if dk.ImageID == "" || dk.BasePath == "" {
		return []map[string]any{disk}
	}
	base := blockdev(baseNodeName(dk.ID), dk.BaseFormat, dk.BasePath, true)
	disk["backing"] = baseNodeName(dk.ID)
	return []map[string]any{base, disk}
}

func nodeName(diskID string) string     { return "n" + hashName(diskID) }
func baseNodeName(diskID string) string { return "b" + hashName(diskID) }
func deviceName(diskID string) string   { return "d" + hashName(diskID) }

// resolveBases fills in the base image of boot disks whose records
// predate BasePath and BaseFormat, from their overlays (which the driver
// made, naming the base's format).
func (d *Driver) resolveBases(ctx context.Context, r *record) error {
	for i, dk := range r.Disks {
		if dk.ImageID == "" || dk.BasePath != "" {
			continue
		}
		info, err := d.imageInfo(ctx, dk.Path, "qcow2")
		if err != nil {
			return fmt.Errorf("disk %s: %w", dk.ID, err)
		}
		if info.BackingFilename == "" || info.BackingFormat == "" {
			return fmt.Errorf("disk %s: its overlay names no base image and format", dk.ID)
		}
		r.Disks[i].BasePath, r.Disks[i].BaseFormat = info.BackingFilename, info.BackingFormat
	}
	return nil
}

// args is QEMU's command line for a VM.
func (d *Driver) args(r *record, seed string) []string {
	id := r.ID
	a := []string{
		"-name", qemuName(id),
		"-machine", d.cfg.Machine,
		"-accel", d.accel,
		"-smp", strconv.Itoa(r.CPUCount),
		"-m", strconv.FormatInt(r.MemoryMB, 10),
		"-nodefaults", "-no-user-config", "-display", "none",
		"-S",
		"-qmp", "unix:" + d.qmpSocket(id) + ",server=on,wait=off",
		"-pidfile", d.pidFile(id),
		"-chardev", "file,id=console,path=" + d.consolePath(id) + ",append=on",
		"-serial", "chardev:console",
		"-device", "virtio-scsi-pci,id=scsi0",
	}
	if d.accel == AccelKVM {
		a = append(a, "-cpu", "host")
	}
	js := func(v any) string { b, _ := json.Marshal(v); return string(b) }
	for _, dk := range r.Disks {
		if !dk.BootDisk {
			continue
		}
		for _, b := range diskBlockdevs(dk) {
			a = append(a, "-blockdev", js(b))
		}
		a = append(a, "-device", "virtio-blk-pci,drive="+nodeName(dk.ID)+",id="+deviceName(dk.ID)+",bootindex=1")
	}
	if seed != "" {
		a = append(a, "-blockdev", js(blockdev("seed", "raw", seed, true)),
			"-device", "virtio-blk-pci,drive=seed,id=seed")
	}
	for _, dk := range r.Disks {
		if dk.BootDisk {
			continue
		}
		for _, b := range diskBlockdevs(dk) {
			a = append(a, "-blockdev", js(b))
		}
		a = append(a, "-device", "scsi-hd,bus=scsi0.0,drive="+nodeName(dk.ID)+",id="+deviceName(dk.ID))
	}
	return append(a, nicArgs(r.NICs)...)
}

// nicArgs are the options of a VM's NICs, in the guest's order: each a
// virtio-net device on the tap the host's network driver made for the
// port (netplumb.TapName), which QEMU opens by name. QEMU runs no script
// on it; it uses the tap's virtio-net header when the tap offers it (its
// default), and no vhost-net (not every host kernel has it). The
// device's option ROM (iPXE, for network boot) is left out: the VM boots
// from its disk, and SeaBIOS starts sooner without it. IDs and MACs were
// validated (no comma, which QEMU's option syntax would split on).
func nicArgs(nics []api.NICDesired) []string {
	var a []string
	for i, n := range nics {
		mac, _ := drivercore.ParseMAC(n.MAC)
		a = append(a,
			"-netdev", fmt.Sprintf("tap,id=net%d,ifname=%s,script=no,downscript=no", i, netplumb.TapName(n.ID)),
			"-device", fmt.Sprintf("virtio-net-pci,netdev=net%d,id=nic%d,mac=%s,romfile=", i, i, mac))
	}
	return a
}

// checkTaps checks that the tap of each NIC exists (in the agent's
// network namespace, where QEMU opens it): made by the host's network
// driver, which the agent runs first. Without this check a root QEMU
// would make a tap of its own, on no bridge, and the guest would boot
// with a NIC that reaches nothing.
func checkTaps(nics []api.NICDesired) error {
	for _, n := range nics {
		tap := netplumb.TapName(n.ID)
		if _, err := net.InterfaceByName(tap); err != nil {
			return fmt.Errorf("NIC %s: its tap %s is missing (the host's network driver has not made the port): %w", n.ID, tap, err)
		}
	}
	return nil
}

// start boots a VM: writes its seed, starts QEMU paused in its own
// session, waits for its QMP handshake (QEMU's start-up checks passed)
// and lets it run. It returns the pid. On failure nothing is left running
// and the error carries what QEMU printed.
func (d *Driver) start(ctx context.Context, r *record) (int, error) {
	if err := d.resolveBases(ctx, r); err != nil {
		return 0, fmt.Errorf("%w: %w", ErrStart, err)
	}
	dir := d.vmDir(r.ID)
	if err := mkdirPrivate(dir); err != nil {
		return 0, err
	}
	if err := checkTaps(r.NICs); err != nil {
		return 0, fmt.Errorf("%w: %w", ErrStart, err)
	}
	seed := filepath.Join(dir, "seed.iso")
	if err := writeSeed(seed, seedFiles(r.ID, r.Name, r.Environment, r.Metadata, r.NICs, r.Subnets)); err != nil {
		return 0, err
	}
	d.removeRunFiles(r.ID)
	trimLog(d.consolePath(r.ID))
	// QEMU appends to the console log; made here, it is the agent's
	// user's only (QEMU would make it 0644).
	if err := touchPrivate(d.consolePath(r.ID)); err != nil {
		return 0, err
	}
	logPath := filepath.Join(dir, "qemu.log")
	trimLog(logPath)
	logf, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return 0, err
	}
	defer logf.Close()
	if err := logf.Chmod(0o600); err != nil {
		return 0, err
	}
	args := d.args(r, seed)
	fmt.Fprintf(logf, "%s: %s %s\n", time.Now().UTC().Format(time.RFC3339), d.cfg.QEMU, strings.Join(args, " "))
	headerEnd, _ := logf.Seek(0, io.SeekEnd) // QEMU's own words follow
	cmd := exec.Command(d.cfg.QEMU, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("%w: %w", ErrStart, err)
	}
	pid := cmd.Process.Pid
	p := &proc{done: make(chan struct{})}
	d.procMu.Lock()
	d.procs[pid] = p
	d.procMu.Unlock()
	go func() {
		p.err = cmd.Wait()
		if p.err == nil {
			p.err = errors.New("exit status 0 (the guest powered itself off, or QEMU was told to quit)")
		}
		close(p.done)
	}()

	fail := func(err error) (int, error) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
		select {
		case <-p.done:
		case <-time.After(5 * time.Second):
		}
		d.removeRunFiles(r.ID)
		msg := qemuMessage(logPath, headerEnd)
		if msg != "" {
			return 0, fmt.Errorf("%w: %s", ErrStart, msg)
		}
		return 0, fmt.Errorf("%w: %w", ErrStart, err)
	}
	ctx, cancel := context.WithTimeout(ctx, d.cfg.StartTimeout)
	defer cancel()
	var mon *monitor
	for {
		select {
		case <-p.done:
			return fail(p.err)
		default:
		}
		if _, err := os.Stat(d.qmpSocket(r.ID)); err == nil {
			if mon, err = dialQMP(ctx, d.qmpSocket(r.ID)); err == nil {
				break
			}
		}
		if ctx.Err() != nil {
			return fail(fmt.Errorf("QMP did not answer within %s", d.cfg.StartTimeout))
		}
		select {
		case <-p.done:
		case <-ctx.Done():
		case <-time.After(20 * time.Millisecond):
		}
	}
	defer mon.close()
	// The QMP socket and pid file QEMU made (in a 0700 directory, with
	// QEMU's umask): the agent's user's only.
	_ = os.Chmod(d.qmpSocket(r.ID), 0o600)
	_ = os.Chmod(d.pidFile(r.ID), 0o600)
	if err := mon.run(ctx, "cont", nil, nil); err != nil {
		return fail(err)
	}
	return pid, nil
}

// Logs kept across boots are trimmed at boot to their last logKeep bytes
// once they exceed logLimit, so a chatty guest cannot fill the disk over
// many boots (within one boot the console grows without bound).
const (
	logLimit = 8 << 20
	logKeep  = 1 << 20
)

func trimLog(path string) {
	fi, err := os.Stat(path)
	if err != nil || fi.Size() <= logLimit {
		return
	}
	f, err := os.Open(path)
	if err != nil {
		return
	}
	defer f.Close()
	buf := make([]byte, logKeep)
	n, _ := f.ReadAt(buf, fi.Size()-logKeep)
	_ = os.WriteFile(path+".tmp", buf[:n], 0o600)
	_ = os.Rename(path+".tmp", path)
}

// qemuMessage is what QEMU wrote to its log after off, on one line.
func qemuMessage(logPath string, off int64) string {
	f, err := os.Open(logPath)
	if err != nil {
		return ""
	}
	defer f.Close()
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		return ""
	}
	b, _ := io.ReadAll(io.LimitReader(f, 4096))
	var lines []string
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	return strings.Join(lines, "; ")
}

// waitGone waits until the VM's QEMU has exited, up to timeout.
func (d *Driver) waitGone(id string, pid int, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for {
		if ok, _ := d.alive(id, pid); !ok {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// kill ends a VM's QEMU: QMP quit (QEMU flushes its disks), then SIGKILL.
func (d *Driver) kill(ctx context.Context, id string, pid int) error {
	if ok, _ := d.alive(id, pid); ok {
		qctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		if mon, err := dialQMP(qctx, d.qmpSocket(id)); err == nil {
			_ = mon.run(qctx, "quit", nil, nil)
			mon.close()
		}
		cancel()
		if !d.waitGone(id, pid, 3*time.Second) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			if !d.waitGone(id, pid, 5*time.Second) {
				return fmt.Errorf("QEMU process %d does not die", pid)
			}
		}
	}
	d.awaitExit(pid, 5*time.Second)
	d.removeRunFiles(id)
	return nil
}

// awaitExit waits, up to timeout, until the threads of process pid, gone
// as far as alive tells, have all exited: a killed QEMU's main thread can
// be a zombie while its other threads still exit, holding its files and
// so its disks' image locks (a QEMU started on them then fails: "Failed
// to get "write" lock").
func (d *Driver) awaitExit(pid int, timeout time.Duration) {
	if pid <= 0 {
		return
	}
	d.procMu.Lock()
	p := d.procs[pid]
	d.procMu.Unlock()
	if p != nil { // our child: reaped once its last thread exited
		select {
		case <-p.done:
		case <-time.After(timeout):
		}
		return
	}
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if state, ok := procState(pid); !ok || !exiting(state) {
			return // gone, or not exiting (the pid runs something else)
		}
		if threads, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid)); err != nil || len(threads) <= 1 {
			return // only the zombie main thread is left
		}
	}
}

// powerdown stops a running VM gracefully: the ACPI power button, pressed
// again every second (a guest still booting misses it), until QEMU exits
// or StopTimeout passes; then kill.
func (d *Driver) powerdown(ctx context.Context, id string, pid int) error {
	deadline := time.Now().Add(d.cfg.StopTimeout)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if ok, _ := d.alive(id, pid); !ok {
			d.removeRunFiles(id)
			return nil
		}
		mon, err := dialQMP(ctx, d.qmpSocket(id))
		if err != nil {
			break
		}
		err = mon.run(ctx, "system_powerdown", nil, nil)
		mon.close()
		if err != nil {
			break
		}
		if d.waitGone(id, pid, min(time.Second, time.Until(deadline))) {
			d.removeRunFiles(id)
			return nil
		}
	}
	d.cfg.Logger.Info("qemu: VM did not power off in time, quitting QEMU", "vm", id, "timeout", d.cfg.StopTimeout)
	return d.kill(ctx, id, pid)
}

// qmpRun runs one QMP command in a session of its own.
func (d *Driver) qmpRun(ctx context.Context, id, command string, args, out any) error {
	mon, err := dialQMP(ctx, d.qmpSocket(id))
	if err != nil {
		return err
	}
	defer mon.close()
	return mon.run(ctx, command, args, out)
}

// hotplug attaches a disk to a running VM's SCSI controller.
func (d *Driver) hotplug(ctx context.Context, id string, dk diskRecord) error {
	mon, err := dialQMP(ctx, d.qmpSocket(id))
	if err != nil {
		return err
	}
	defer mon.close()
	node := nodeName(dk.ID)
	var added []string
	undo := func() {
		for _, n := range slices.Backward(added) {
			_ = mon.run(ctx, "blockdev-del", map[string]any{"node-name": n}, nil)
		}
	}
	for _, b := range diskBlockdevs(dk) {
		if err := mon.run(ctx, "blockdev-add", b, nil); err != nil {
			undo()
			return err
		}
		added = append(added, b["node-name"].(string))
	}
	err = mon.run(ctx, "device_add", map[string]any{"driver": "scsi-hd", "bus": "scsi0.0", "drive": node, "id": deviceName(dk.ID)}, nil)
	if err != nil {
		undo()
		return err
	}
	return nil
}

// unplug detaches a disk from a running VM: device_del (immediate on
// SCSI), then blockdev-del once the device let go of the node.
func (d *Driver) unplug(ctx context.Context, id string, dk diskRecord) error {
	mon, err := dialQMP(ctx, d.qmpSocket(id))
	if err != nil {
		return err
	}
	defer mon.close()
	dev, node := deviceName(dk.ID), nodeName(dk.ID)
	if err := mon.run(ctx, "device_del", map[string]any{"id": dev}, nil); err != nil && !strings.Contains(err.Error(), "not found") {
		return err
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := mon.run(ctx, "blockdev-del", map[string]any{"node-name": node}, nil)
		if err == nil || strings.Contains(err.Error(), "Failed to find node") || strings.Contains(err.Error(), "Cannot find node") {
			if dk.BasePath != "" {
				_ = mon.run(ctx, "blockdev-del", map[string]any{"node-name": baseNodeName(dk.ID)}, nil)
			}
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("detach disk %s: %w", dk.ID, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// observeLocked is what List reports of a VM.
func (d *Driver) observeLocked(v *vmState) api.VMObserved {
	st := api.VMObserved{ID: v.rec.ID, State: v.rec.Power, Generation: v.rec.Generation, Error: v.rec.Error}
	if st.State == "" {
		st.State = api.VMStopped
	}
	if st.State == api.VMStarted || st.State == api.VMSuspended {
		if ok, why := d.alive(v.rec.ID, v.rec.PID); !ok && d.stopping[v.rec.ID] {
			st.State = api.VMStopped // exiting because we powered it down
		} else if !ok {
			st.State = api.VMError
			if st.Error == "" {
				st.Error = "qemu: VM " + v.rec.ID + " crashed: " + why
			}
		}
	}
	return st
}
