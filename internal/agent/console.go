package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/internal/driver"
)

// Console sessions: a desired-state answer lists the consoles users wait
// for; the agent streams each from its driver (driver.Consoler) to
// POST /v1/agent/hosts/{id}/console/{session}, once. Without follow the
// body ends at the console's end; with it, the agent polls the console for
// more until the controller answers the POST (the user went away), the VM
// is deleted, or the agent stops.

// ConsolePoll is how often a followed console is read again at its end.
var ConsolePoll = 200 * time.Millisecond

// serveConsoles starts a stream for each session not served yet; sessions
// no longer listed are forgotten (their ids are never reused).
func (a *Agent) serveConsoles(ctx context.Context, sessions []api.ConsoleSession) {
	var start []api.ConsoleSession
	a.mu.Lock()
	if a.sessions == nil {
		a.sessions = map[string]bool{}
	}
	listed := make(map[string]bool, len(sessions))
	for _, s := range sessions {
		listed[s.Session] = true
		if !a.sessions[s.Session] {
			a.sessions[s.Session] = true
			start = append(start, s)
		}
	}
	for id := range a.sessions {
		if !listed[id] {
			delete(a.sessions, id)
		}
	}
	a.mu.Unlock()
	for _, s := range start {
		go a.sendConsole(ctx, s)
	}
}

func (a *Agent) sendConsole(ctx context.Context, s api.ConsoleSession) {
	path := "/v1/agent/hosts/" + a.id.HostID + "/console/" + s.Session
	log := a.log.With("vm", s.VMID, "session", s.Session, "follow", s.Follow)
	var r io.ReadCloser
	err := error(api.Errorf(api.CodeUnavailable, "host %s's driver keeps no serial consoles", a.id.HostID))
	if con, ok := a.cfg.Driver.(driver.Consoler); ok {
		r, err = con.Console(s.VMID)
	}
	if err != nil {
		var ae *api.Error
		if !errors.As(err, &ae) {
			ae = api.Errorf(api.CodeInternalError, "host %s could not read the console of VM %s", a.id.HostID, s.VMID)
			if errors.Is(err, driver.ErrNotFound) {
				ae = api.Errorf("InvalidVmState", "VM %s is not on host %s (yet): it has no console there", s.VMID, a.id.HostID)
			}
		}
		log.Warn("console", "error", err)
		b, _ := json.Marshal(ae)
		if resp, err := a.c.Stream(ctx, http.MethodPost, path, "application/json", bytes.NewReader(b)); err == nil {
			resp.Body.Close()
		} else if ctx.Err() == nil {
			log.Warn("console: send error", "error", err)
		}
		return
	}
	defer r.Close()
	// The body reads until the controller answers (sctx ends).
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	body := &consoleBody{ctx: sctx, r: r, follow: s.Follow, gone: func() bool { return a.vmGone(s.VMID) }}
	resp, err := a.c.Stream(sctx, http.MethodPost, path, "text/plain; charset=utf-8", body)
	if err != nil {
		if ctx.Err() == nil {
			log.Warn("console: send", "error", err)
		}
		return
	}
	cancel()
	resp.Body.Close()
	log.Debug("console sent")
}

// vmGone: the host should no longer have the VM (it is being deleted).
func (a *Agent) vmGone(id string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	d, ok := a.desired[id]
	return !ok || d.Power == api.VMDeleted
}

// consoleBody reads a console; with follow, at its end it waits and reads
// again until ctx ends or the VM is gone.
type consoleBody struct {
	ctx    context.Context
	r      io.Reader
	follow bool
	gone   func() bool
}

func (b *consoleBody) Read(p []byte) (int, error) {
	for {
		if err := b.ctx.Err(); err != nil {
			return 0, err
		}
		n, err := b.r.Read(p)
		if n > 0 {
			return n, nil
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return 0, err
		}
		if !b.follow || b.gone() {
			return 0, io.EOF
		}
		t := time.NewTimer(ConsolePoll)
		select {
		case <-b.ctx.Done():
			t.Stop()
			return 0, b.ctx.Err()
		case <-t.C:
		}
	}
}
