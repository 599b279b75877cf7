package hosts

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/google/uuid"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/internal/store"
)

// Console sessions. A VM's serial console lives on its host; a user's
// GET /v1/vms/{id}/console reaches a controller, which
//
//  1. puts consolereq/<host>/<session> (an api.ConsoleSession) under a
//     short lease it keeps alive while the GET lasts (OpenConsole);
//  2. the hub wakes the host's desired-state long poll, whose answer lists
//     the session (Desired);
//  3. the agent streams the console to POST
//     /v1/agent/hosts/{id}/console/{session}, which hands its body to the
//     waiting GET in this process (DeliverConsole, Wait);
//  4. the GET copies it to the user until the agent's body ends (the whole
//     log, or the VM was deleted) or the user goes away, and then Close
//     answers the POST and revokes the lease.
//
// The rendezvous is in memory: with several controllers, the agent's POST
// must reach the controller holding the GET. Agents talk to one controller
// URL; behind a load balancer that spreads requests, a POST landing
// elsewhere is refused (ConsoleSessionNotFound) and the GET times out with
// a clear error. Relaying (a controller forwarding the POST to the one the
// session names) is not done yet.

// Error codes of console sessions.
const (
	// CodeConsoleSessionNotFound: no GET waits for this session here.
	CodeConsoleSessionNotFound = "ConsoleSessionNotFound"
)

// consoleLeaseTTL is the lease of a session key: a controller that dies
// mid-session leaves it at most this long.
const consoleLeaseTTL = 10

func consolePrefix(host string) string { return store.Prefix("consolereq", host) }
func consoleKey(host, session string) string {
	return store.Key("consolereq", host, session)
}

// ConsoleStream is the agent's POST as the waiting GET sees it.
type ConsoleStream struct {
	// Body is the console (or, if Error, a JSON api.Error: the agent could
	// not read it).
	Body  io.Reader
	Error bool
	// Stop makes a blocked Read of Body return at once (it ends the POST's
	// read deadline); the GET calls it when its user goes away.
	Stop func()
	done chan struct{}
}

// ConsoleWait is one waiting GET, from OpenConsole to Close.
type ConsoleWait struct {
	s       *Service
	Session api.ConsoleSession
	Host    string
	lease   store.Lease
	attach  chan *ConsoleStream
	closed  chan struct{}
	stop    context.CancelFunc
	stream  *ConsoleStream
}

// OpenConsole asks the host for a VM's console: it records the session
// (leased) and waits in this process for the agent's stream. The caller
// must Close it.
func (s *Service) OpenConsole(ctx context.Context, hostID, vmID string, follow bool) (*ConsoleWait, error) {
	ctrl, _ := os.Hostname()
	w := &ConsoleWait{s: s, Host: hostID,
		Session: api.ConsoleSession{Session: uuid.NewString(), VMID: vmID, Follow: follow, Controller: fmt.Sprintf("%s/%d", ctrl, os.Getpid())},
		attach:  make(chan *ConsoleStream), closed: make(chan struct{})}
	s.mu.Lock()
	if s.consoles == nil {
		s.consoles = map[string]*ConsoleWait{}
	}
	s.consoles[w.Session.Session] = w
	s.mu.Unlock()
	l, err := s.st.PutWithLease(ctx, consoleKey(hostID, w.Session.Session), &w.Session, consoleLeaseTTL)
	if err != nil {
		s.forget(w)
		return nil, err
	}
	w.lease = l
	kctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	w.stop = cancel
	go func() {
		t := time.NewTicker(consoleLeaseTTL * time.Second / 3)
		defer t.Stop()
		for {
			select {
			case <-kctx.Done():
				return
			case <-t.C:
				if err := s.st.KeepAlive(kctx, l); err != nil && kctx.Err() == nil {
					s.log.Warn("console session lease", "session", w.Session.Session, "error", err)
				}
			}
		}
	}()
	return w, nil
}

func (s *Service) forget(w *ConsoleWait) {
	s.mu.Lock()
	delete(s.consoles, w.Session.Session)
	s.mu.Unlock()
}

// Wait waits up to timeout for the agent's stream. It fails with
// ServiceUnavailable if the agent does not answer in time or the host
// stops being READY meanwhile (checked every poll).
func (w *ConsoleWait) Wait(ctx context.Context, timeout, poll time.Duration) (*ConsoleStream, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(poll)
	defer tick.Stop()
	for {
		select {
		case st := <-w.attach:
			w.stream = st
			return st, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-deadline.C:
			return nil, api.Errorf(api.CodeUnavailable, "the agent of host %s did not send the console of VM %s within %s; retry, or check the host (photon host show %s)",
				w.Host, w.Session.VMID, timeout, w.Host)
		case <-tick.C:
			if err := w.s.ConsoleReachable(ctx, w.Host); err != nil {
				return nil, err
			}
		}
	}
}

// Close ends the session: the agent's POST (if any) is answered once the
// GET stopped reading its body, and the session key goes.
func (w *ConsoleWait) Close() {
	w.s.forget(w)
	close(w.closed)
	if w.stream != nil {
		close(w.stream.done)
	}
	w.stop()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := w.s.st.Revoke(ctx, w.lease); err != nil {
		w.s.log.Warn("console session: revoke lease", "session", w.Session.Session, "error", err)
	}
}

// DeliverConsole hands an agent's POST body to the GET waiting for the
// session, and returns once that GET is done with it (or ctx ends: the
// agent went away). stop must make a blocked Read of body return.
func (s *Service) DeliverConsole(ctx context.Context, hostID, session string, body io.Reader, isError bool, stop func()) error {
	s.mu.Lock()
	w := s.consoles[session]
	s.mu.Unlock()
	if w == nil || w.Host != hostID {
		return api.Errorf(CodeConsoleSessionNotFound, "no console request %s waits on this controller (it ended, timed out, or is held by another controller)", session)
	}
	st := &ConsoleStream{Body: body, Error: isError, Stop: stop, done: make(chan struct{})}
	select {
	case w.attach <- st:
	case <-w.closed:
		return api.Errorf(CodeConsoleSessionNotFound, "console request %s has ended", session)
	case <-ctx.Done():
		return ctx.Err()
	}
	// The GET owns the body until it closes the session.
	<-st.done
	return nil
}

// ConsoleReachable reports, as ServiceUnavailable, a host that cannot
// send a console now (down, or not joined); nil otherwise.
func (s *Service) ConsoleReachable(ctx context.Context, hostID string) error {
	h, err := s.Get(ctx, hostID)
	if err != nil {
		var ae *api.Error
		if errors.As(err, &ae) {
			return api.Errorf(api.CodeUnavailable, "the VM's host %s is gone; its console cannot be read", hostID)
		}
		return err
	}
	switch {
	case !h.Joined:
		return api.Errorf(api.CodeUnavailable, "host %s (%s) has not joined; its VMs' consoles cannot be read", h.ID, h.Address)
	case h.State == api.HostError:
		reason := h.Reason
		if reason == "" {
			reason = "it is ERROR"
		}
		return api.Errorf(api.CodeUnavailable, "host %s (%s) is down (%s); its VMs' consoles cannot be read now", h.ID, h.Address, reason)
	}
	return nil
}
