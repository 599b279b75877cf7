package main

import (
	"io"
	"io/fs"
	"log/slog"
	"os"
	"runtime/debug"
	"testing"
)

func TestMemoryAvailable(t *testing.T) {
	const meminfo = "MemTotal:       24683656 kB\nMemFree:        17352776 kB\nMemAvailable:   20000000 kB\n"
	const machine = 24683656 << 10
	const (
		v2Root    = "/sys/fs/cgroup/memory.max"
		v2Slice   = "/sys/fs/cgroup/system.slice/memory.max"
		v2Unit    = "/sys/fs/cgroup/system.slice/photond.service/memory.max"
		v1Root    = "/sys/fs/cgroup/memory/memory.limit_in_bytes"
		v1Own     = "/sys/fs/cgroup/memory/process_api/abc/memory.limit_in_bytes"
		v1Parent  = "/sys/fs/cgroup/memory/process_api/memory.limit_in_bytes"
		v2Self    = "0::/system.slice/photond.service\n"
		v1Self    = "9:pids:/\n4:memory:/process_api/abc\n3:cpu,cpuacct:/\n0::/\n"
		v1NoLimit = "9223372036854771712\n"
	)
	for _, c := range []struct {
		name  string
		files map[string]string
		want  int64
	}{
		{"the machine's, no cgroup files", map[string]string{memInfoFile: meminfo}, machine},
		{"v2 root without a limit", map[string]string{memInfoFile: meminfo, v2Root: "max\n"}, machine},
		{"v2 root limit (a container's)", map[string]string{memInfoFile: meminfo, v2Root: "4294967296\n"}, 4 << 30},
		{"v2 limit above the machine's", map[string]string{memInfoFile: meminfo, v2Root: "68719476736\n"}, machine},
		{"v2 unit's MemoryMax", map[string]string{memInfoFile: meminfo, selfCgroup: v2Self, v2Root: "max", v2Slice: "max", v2Unit: "3221225472\n"}, 3 << 30},
		{"v2 slice above the unit lower", map[string]string{memInfoFile: meminfo, selfCgroup: v2Self, v2Slice: "2147483648", v2Unit: "3221225472"}, 2 << 30},
		{"v2 another unit's limit does not count", map[string]string{memInfoFile: meminfo, selfCgroup: v2Self, "/sys/fs/cgroup/system.slice/other.service/memory.max": "1073741824"}, machine},
		{"v1 root without a limit", map[string]string{memInfoFile: meminfo, v1Root: v1NoLimit}, machine},
		{"v1 root limit", map[string]string{memInfoFile: meminfo, v1Root: "2147483648\n"}, 2 << 30},
		{"v1 own cgroup's limit", map[string]string{memInfoFile: meminfo, selfCgroup: v1Self, v1Root: v1NoLimit, v1Own: "1073741824\n"}, 1 << 30},
		{"v1 parent's limit", map[string]string{memInfoFile: meminfo, selfCgroup: v1Self, v1Own: v1NoLimit, v1Parent: "2147483648"}, 2 << 30},
		{"v1 and v2: the lower", map[string]string{memInfoFile: meminfo, v2Root: "3221225472", v1Root: "2147483648"}, 2 << 30},
		{"a cgroup limit, no meminfo", map[string]string{v2Root: "1073741824\n"}, 1 << 30},
		{"meminfo without MemTotal", map[string]string{memInfoFile: "MemFree: 1 kB\n"}, 0},
		{"garbled", map[string]string{memInfoFile: "MemTotal: lots kB\n", v2Root: "-5\n", selfCgroup: "nonsense\n::\n"}, 0},
		{"nothing readable", nil, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			read := func(name string) ([]byte, error) {
				if s, ok := c.files[name]; ok {
					return []byte(s), nil
				}
				return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
			}
			if got := memoryAvailable(read); got != c.want {
				t.Errorf("memoryAvailable = %d, want %d", got, c.want)
			}
		})
	}
}

// TestTuneGC: without GOGC and GOMEMLIMIT in the environment tuneGC sets
// the controller's collector target and a memory limit of
// controllerMemoryShare of this machine's memory; GOMEMLIMIT set leaves
// the limit alone.
func TestTuneGC(t *testing.T) {
	avail := memoryAvailable(os.ReadFile)
	if avail == 0 {
		t.Skip("neither /proc/meminfo nor a cgroup memory limit can be read here")
	}
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1))
	for _, env := range []string{"GOGC", "GOMEMLIMIT"} {
		t.Setenv(env, "") // restored after the test
		if err := os.Unsetenv(env); err != nil {
			t.Fatal(err)
		}
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	debug.SetMemoryLimit(1 << 62)
	tuneGC(log)
	if got := debug.SetGCPercent(controllerGOGC); got != controllerGOGC {
		t.Errorf("GOGC after tuneGC = %d, want %d", got, controllerGOGC)
	}
	want := int64(float64(avail) * controllerMemoryShare)
	if got := debug.SetMemoryLimit(-1); got != want {
		t.Errorf("memory limit after tuneGC = %d, want %d (%g of %d)", got, want, controllerMemoryShare, avail)
	}
	t.Setenv("GOMEMLIMIT", "1GiB")
	debug.SetMemoryLimit(1 << 62)
	tuneGC(log)
	if got := debug.SetMemoryLimit(-1); got != 1<<62 {
		t.Errorf("with GOMEMLIMIT set, tuneGC changed the memory limit to %d", got)
	}
}
