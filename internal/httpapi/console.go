package httpapi

import (
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"time"

	"github.com/photon-cloud/photon/api"
)

// Serial consoles: GET /v1/vms/{id}/console waits for the VM's host to
// POST the console to /v1/agent/hosts/{id}/console/{session} and copies it
// to the user (see internal/hosts/console.go for the session protocol).

// ConsoleAgentWait bounds how long a console GET waits for the host's
// agent to start sending.
var ConsoleAgentWait = 10 * time.Second

// consoleHostPoll is how often a waiting console GET checks that the host
// is still up.
const consoleHostPoll = 500 * time.Millisecond

// maxConsoleError bounds an agent's error body.
const maxConsoleError = 64 << 10

func (s *Server) vmConsole(w http.ResponseWriter, r *http.Request) (int, any, error) {
	if s.Compute == nil || s.Hosts == nil {
		return 0, nil, unavailable("VMs")
	}
	follow, err := boolParam(r, "follow")
	if err != nil {
		return 0, nil, err
	}
	ctx := r.Context()
	vm, err := s.Compute.GetVM(ctx, r.PathValue("id"))
	if err != nil {
		return 0, nil, err
	}
	if vm.HostID == "" {
		return 0, nil, api.Errorf("InvalidVmState", "VM %s is %s and not on a host yet: it has no console", vm.Name, vm.State)
	}
	if err := s.Hosts.ConsoleReachable(ctx, vm.HostID); err != nil {
		return 0, nil, err
	}
	// A follow may be quiet for long: no read deadline (the server's
	// ReadTimeout would end it), and writes move theirs forward.
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Time{})
	sess, err := s.Hosts.OpenConsole(ctx, vm.HostID, vm.ID, follow)
	if err != nil {
		return 0, nil, err
	}
	defer sess.Close()
	st, err := sess.Wait(ctx, ConsoleAgentWait, consoleHostPoll)
	if err != nil {
		return 0, nil, err
	}
	if st.Error {
		var ae api.Error
		b, _ := io.ReadAll(io.LimitReader(st.Body, maxConsoleError))
		if json.Unmarshal(b, &ae) != nil || ae.Code == "" {
			return 0, nil, errors.New("console: the agent sent an error that is not an API error: " + string(b))
		}
		return 0, nil, &ae
	}
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	_ = rc.Flush()
	out := &idleWriter{ResponseWriter: w, rc: rc}
	out.extend()
	copied := make(chan error, 1)
	go func() {
		buf := make([]byte, 32<<10)
		for {
			n, err := st.Body.Read(buf)
			if n > 0 {
				if _, werr := out.Write(buf[:n]); werr != nil {
					copied <- werr
					return
				}
				_ = rc.Flush()
			}
			if err != nil {
				copied <- err
				return
			}
		}
	}()
	select {
	case <-copied:
	case <-ctx.Done():
		st.Stop() // the user went away: end the agent's POST
		<-copied
	}
	return 0, nil, nil
}

// agentConsole receives a console from a host's agent and hands it to the
// GET waiting for the session; it answers once that GET is done.
func (s *Server) agentConsole(w http.ResponseWriter, r *http.Request) (int, any, error) {
	if s.Hosts == nil {
		return 0, nil, unavailable("hosts")
	}
	isError := false
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err == nil && mt == "application/json" {
		isError = true // the agent could not read the console: an api.Error
	}
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Time{}) // a follow sends when the VM writes
	stop := func() { _ = rc.SetReadDeadline(time.Now()) }
	err := s.Hosts.DeliverConsole(r.Context(), r.PathValue("id"), r.PathValue("session"), r.Body, isError, stop)
	_ = rc.SetWriteDeadline(time.Now().Add(RequestTimeout))
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, struct{}{}, nil
}
