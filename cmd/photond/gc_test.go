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
	for _, c := range []struct {
		name  string
		files map[string]string
		want  int64
	}{
		{"the machine's, no cgroup files", map[string]string{memInfoFile: meminfo}, machine},
		{"cgroup v2 without a limit", map[string]string{memInfoFile: meminfo, cgroupV2Limit: "max\n"}, machine},
		{"cgroup v2 limit below the machine's", map[string]string{memInfoFile: meminfo, cgroupV2Limit: "4294967296\n"}, 4 << 30},
		{"cgroup v2 limit above the machine's", map[string]string{memInfoFile: meminfo, cgroupV2Limit: "68719476736\n"}, machine},
		{"cgroup v1 without a limit", map[string]string{memInfoFile: meminfo, cgroupV1Limit: "9223372036854771712\n"}, machine},
		{"cgroup v1 limit", map[string]string{memInfoFile: meminfo, cgroupV1Limit: "2147483648\n"}, 2 << 30},
		{"both cgroup versions: the lower", map[string]string{memInfoFile: meminfo, cgroupV2Limit: "3221225472", cgroupV1Limit: "2147483648"}, 2 << 30},
		{"a cgroup limit, no meminfo", map[string]string{cgroupV2Limit: "1073741824\n"}, 1 << 30},
		{"meminfo without MemTotal", map[string]string{memInfoFile: "MemFree: 1 kB\n"}, 0},
		{"garbled", map[string]string{memInfoFile: "MemTotal: lots kB\n", cgroupV2Limit: "-5\n"}, 0},
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
