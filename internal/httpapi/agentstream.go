package httpapi

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/internal/store"
)

// StreamLifetime bounds a host's stream (api.HostDesiredState.Stream):
// the controller ends it then, and the host opens another, its credential
// checked again (a deleted host's stops working at the latest then; its
// reports are refused at once).
const StreamLifetime = 10 * time.Minute

// agentStream serves a host's stream: the reports it reads, each recorded
// as POST .../status records one and acknowledged in order, and the desired
// state, sent as GET .../desired would answer it, one after the other, from
// ?after= (with ?changes=true, each after the first lists only the VMs
// that changed: api.HostDesiredState.Changes). One request instead of one
// per report and per answer: a message costs no headers, no stream set up
// and torn down, no handler.
func (s *Server) agentStream(w http.ResponseWriter, r *http.Request) (int, any, error) {
	if s.Hosts == nil || s.Compute == nil {
		return 0, nil, unavailable("hosts")
	}
	after, err := afterParam(r)
	if err != nil {
		return 0, nil, err
	}
	changes, err := boolParam(r, "changes")
	if err != nil {
		return 0, nil, err
	}
	id := r.PathValue("id")
	rc := http.NewResponseController(w)
	// The server's bounds on a request's reads and writes are for
	// requests; StreamLifetime bounds this one.
	_ = rc.SetReadDeadline(time.Time{})
	_ = rc.SetWriteDeadline(time.Time{})
	_ = rc.EnableFullDuplex() // HTTP/1.1 only; HTTP/2 streams are
	ctx, cancel := context.WithTimeout(r.Context(), StreamLifetime)
	defer cancel()
	defer context.AfterFunc(s.streams, cancel)()
	// Ended (its lifetime, shutdown, a broken half), a read of the next
	// report or a write the host does not take must not hold the handler:
	// their deadlines pass (while the handler runs: rc is invalid after).
	var deadlines sync.Mutex
	running := true
	stop := context.AfterFunc(ctx, func() {
		deadlines.Lock()
		defer deadlines.Unlock()
		if running {
			now := time.Now()
			_ = rc.SetReadDeadline(now)
			_ = rc.SetWriteDeadline(now)
		}
	})
	defer func() {
		stop()
		deadlines.Lock()
		running = false
		deadlines.Unlock()
	}()
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	var mu sync.Mutex
	ended := false
	// send writes a message; the last (an acknowledgement that ends the
	// stream) is the last written: the desired states stop there.
	send := func(b []byte, last bool) error {
		mu.Lock()
		defer mu.Unlock()
		if ended {
			return errStreamEnded
		}
		ended = last
		if _, err := w.Write(b); err != nil {
			return err
		}
		return rc.Flush()
	}
	if err := send(nil, false); err != nil {
		return 0, nil, nil // the host went away
	}
	answered := make(chan struct{})
	go func() {
		defer close(answered)
		defer cancel()
		var sent map[string]int64 // the VMs' records' revisions as last sent
		// One buffer for the stream's messages: each is written before
		// send returns (60,000 desired states for 30,000 VMs started on
		// 5,000 hosts allocated 240 MB, 2% of the controller's bytes).
		var buf []byte
		for ctx.Err() == nil {
			ds, err := s.desired(ctx, id, after)
			if err != nil {
				if ctx.Err() == nil {
					s.Log.Warn("desired state on a host's stream", "host", id, "error", err)
				}
				return
			}
			if changes {
				sent = ds.Diff(sent)
			}
			if cap(buf) == 0 || cap(buf) > maxStreamBuffer {
				buf = make([]byte, 0, 4096) // one grown past the bound is dropped
			}
			b, err := ds.AppendJSON(append(buf[:0], `{"desired":`...))
			if err != nil || send(append(b, "}\n"...), false) != nil {
				return
			}
			buf = b
			after = ds.Revision
		}
	}()
	s.streamReports(ctx, r, id, bufio.NewReader(r.Body), send)
	cancel()
	<-answered
	return 0, nil, nil
}

// maxStreamBuffer bounds the buffer a host's stream keeps between its
// messages (a host with many VMs sends a large state first, then
// changes).
const maxStreamBuffer = 64 << 10

// streamReports records the reports on a host's stream until it ends, and
// acknowledges each; one that cannot be read ends the stream after an
// acknowledgement saying why.
func (s *Server) streamReports(ctx context.Context, r *http.Request, id string, br *bufio.Reader, send func(b []byte, last bool) error) {
	for ctx.Err() == nil {
		line, err := api.ReadStreamLine(br, MaxBodyBytes)
		if err != nil {
			if !errors.Is(err, io.EOF) && ctx.Err() == nil {
				_ = ack(send, 0, s.answerError(r, err), true)
			}
			return
		}
		m, err := ParseStreamReport(line)
		if err != nil {
			_ = ack(send, 0, err.(*api.Error), true)
			return
		}
		rctx, rcancel := context.WithTimeout(ctx, RequestTimeout)
		err = s.report(rctx, id, &m.Report)
		rcancel()
		var refused *api.Error
		if err != nil {
			refused = s.answerError(r, err)
		}
		if ack(send, m.Seq, refused, false) != nil {
			return
		}
	}
}

// ack acknowledges report seq (0: none read), refused with e if not nil;
// last ends the stream.
func ack(send func(b []byte, last bool) error, seq int64, e *api.Error, last bool) error {
	b, err := store.Encode(api.HostStreamMessage{Ack: seq, Error: e})
	if err != nil {
		return err
	}
	return send(append(b, '\n'), last)
}

// errStreamEnded: a message after the one that ended a host's stream.
var errStreamEnded = errors.New("the host's stream ended")

// ParseStreamReport decodes one line a host sent on its stream (the fuzz
// target's entry): {"seq": n > 0, "report": {...}}. A line that is not is
// an *api.Error (InvalidJson).
func ParseStreamReport(line []byte) (*api.HostStreamReport, error) {
	var m api.HostStreamReport
	if err := store.Decode(line, &m); err != nil || m.Seq <= 0 {
		return nil, api.Errorf(api.CodeInvalidJSON, "a report on the stream: want {\"seq\": n > 0, \"report\": {...}} on one line")
	}
	return &m, nil
}
