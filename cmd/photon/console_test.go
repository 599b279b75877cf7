package main

import (
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/photon-cloud/photon/api"
)

// TestVMConsole: `vm console` finds the VM by name, prints the console as
// the controller streams it (with -f asking for a follow), and turns an
// error answer into the CLI's error.
func TestVMConsole(t *testing.T) {
	var mu sync.Mutex
	var queries []string
	f := newFake(t, map[string]http.HandlerFunc{
		"GET /v1/projects/p-1/vms": list(testVMs, func(v api.VM) string { return v.Name }),
		"GET /v1/vms/{id}":         byID(testVMs, func(v api.VM) string { return v.ID }, codeVMNotFound),
		"GET /v1/vms/{id}/console": func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			queries = append(queries, r.PathValue("id")+"?"+r.URL.RawQuery)
			mu.Unlock()
			if r.PathValue("id") != "vm-0" {
				writeJSON(w, 400, api.Error{Code: "InvalidVmState", Message: "VM broken is ERROR and not on a host yet: it has no console"})
				return
			}
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			_, _ = w.Write([]byte("instance-id: vm-0\n"))
			w.(http.Flusher).Flush()
			if r.URL.Query().Get("follow") == "true" {
				_, _ = w.Write([]byte("local-hostname: web-0\n")) // then the VM is deleted: the stream ends
			}
		},
	})
	stdout, stderr, code := runInProject(t, f, true, "vm", "console", "web-0")
	if code != 0 || stdout != "instance-id: vm-0\n" {
		t.Errorf("vm console: %d %q %q", code, stdout, stderr)
	}
	stdout, stderr, code = runInProject(t, f, false, "vm", "console", "vm-0", "-f")
	if code != 0 || stdout != "instance-id: vm-0\nlocal-hostname: web-0\n" {
		t.Errorf("vm console -f: %d %q %q", code, stdout, stderr)
	}
	_, stderr, code = runInProject(t, f, true, "vm", "console", "broken")
	if code != exitError || !strings.HasPrefix(stderr, "photon: InvalidVmState: VM broken is ERROR and not on a host") {
		t.Errorf("console of a VM without host: %d %q", code, stderr)
	}
	_, stderr, code = runInProject(t, f, true, "vm", "console")
	if code == 0 || !strings.Contains(stderr, "ID|NAME") {
		t.Errorf("console without VM: %d %q", code, stderr)
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []string{"vm-0?", "vm-0?follow=true", "vm-2?"}; strings.Join(queries, " ") != strings.Join(want, " ") {
		t.Errorf("console requests %q, want %q", queries, want)
	}
}
