package agent

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/client"
)

// The host's stream (api.HostDesiredState.Stream): one long request whose
// body carries the host's reports and whose answer carries the desired
// state and the reports' acknowledgements. While it is up the agent
// neither polls nor sends reports on their own; it is opened once an
// answer says the controller takes it, and when it breaks the agent polls
// (which also paces the next attempt) until an answer says so again.

// streamReportTimeout bounds the wait for a report's acknowledgement; a
// stream that takes longer is taken for broken.
const streamReportTimeout = 30 * time.Second

// streamLived: a stream that broke after being up this long is opened
// again at once; one that broke sooner, after a poll.
const streamLived = time.Minute

// noStreamFor is how long the agent polls after a controller refused the
// stream's route (an older one): it may be upgraded meanwhile.
const noStreamFor = 5 * time.Minute

// hostStream is the sending side of an open stream.
type hostStream struct {
	w    *io.PipeWriter
	acks chan api.HostStreamMessage
	// done is closed once the stream ended; err says why.
	done   chan struct{}
	once   sync.Once
	err    error
	cancel context.CancelFunc
	seq    int64 // (reportMu)
}

func (s *hostStream) end(err error) {
	s.once.Do(func() {
		s.err = err
		close(s.done)
		s.cancel()
		_ = s.w.CloseWithError(err)
	})
}

// send sends r (reportMu held) and waits for its acknowledgement: nil once
// the controller recorded it; an error if it refused it or the stream
// broke, which ends the stream.
func (s *hostStream) send(ctx context.Context, r *api.HostStatusReport) error {
	s.seq++
	b, err := json.Marshal(api.HostStreamReport{Seq: s.seq, Report: *r})
	if err != nil {
		return err
	}
	if _, err := s.w.Write(append(b, '\n')); err != nil {
		s.end(err)
		return fmt.Errorf("agent: report on the stream: %w", err)
	}
	t := time.NewTimer(streamReportTimeout)
	defer t.Stop()
	for {
		select {
		case m := <-s.acks:
			switch {
			case m.Ack < s.seq:
				continue // a report given up on before
			case m.Ack > s.seq:
				err = fmt.Errorf("agent: stream acknowledged report %d, want %d", m.Ack, s.seq)
			case m.Error != nil:
				err = m.Error
			default:
				return nil
			}
		case <-s.done:
			err = fmt.Errorf("agent: the stream ended before report %d was acknowledged: %w", s.seq, s.err)
		case <-t.C:
			err = fmt.Errorf("agent: report %d not acknowledged in %s", s.seq, streamReportTimeout)
		case <-ctx.Done():
			err = ctx.Err()
		}
		s.end(err)
		return err
	}
}

// stream runs the host's stream from revision rev until it ends, converging
// on every desired state it brings. It returns the revision of the last
// one, and nil if the controller ended the stream (its lifetime).
func (a *Agent) stream(ctx context.Context, rev int64) (int64, error) {
	// The request ends with the stream; what an answer set going (the
	// VMs' actions, consoles) does not.
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pr, pw := io.Pipe()
	s := &hostStream{w: pw, acks: make(chan api.HostStreamMessage, 1), done: make(chan struct{}), cancel: cancel}
	resp, err := a.c.Stream(sctx, http.MethodPost, "/v1/agent/hosts/"+a.id.HostID+"/stream?changes=true&after="+strconv.FormatInt(rev, 10), "application/x-ndjson", pr)
	if err != nil {
		s.end(err)
		return rev, err
	}
	defer resp.Body.Close()
	a.streaming.Store(s) // before it is counted: a stream counted takes reports
	a.streams.Add(1)
	defer a.streaming.CompareAndSwap(s, nil)
	err = a.readStream(ctx, bufio.NewReader(resp.Body), s, &rev)
	s.end(fmt.Errorf("agent: the stream ended: %w", err))
	if errors.Is(err, io.EOF) {
		err = nil
	}
	return rev, err
}

// readStream reads the controller's side of the stream: desired states
// (converged on, in order) and acknowledgements (passed to send).
func (a *Agent) readStream(ctx context.Context, br *bufio.Reader, s *hostStream, rev *int64) error {
	var vms []api.VMDesired // the VMs desired, as the stream has told (by id)
	for {
		m, err := readMessage(br)
		if err != nil {
			return err
		}
		if m.Desired == nil {
			if m.Ack == 0 && m.Error != nil {
				return m.Error // the controller could not read what it was sent
			}
			select {
			case s.acks <- *m:
			default: // none awaited
			}
			continue
		}
		ds := m.Desired
		if err := a.checkAnswer(ds); err != nil {
			return err
		}
		if vms, err = applyChanges(vms, ds); err != nil {
			return err
		}
		*rev = ds.Revision
		a.answered(ctx, ds)
	}
}

// readMessage reads one line of the controller's side of the stream: at
// most maxStreamLine bytes (a longer one is not read into memory whole).
func readMessage(br *bufio.Reader) (*api.HostStreamMessage, error) {
	line, err := api.ReadStreamLine(br, maxStreamLine)
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return nil, fmt.Errorf("agent: a stream message over %d bytes", maxStreamLine)
	} else if err != nil {
		return nil, err
	}
	var m api.HostStreamMessage
	if err := client.DecodeJSON(line, &m); err != nil {
		return nil, fmt.Errorf("agent: a stream message: %w", err)
	}
	return &m, nil
}

// applyChanges applies a desired state from the stream to vms, the VMs
// desired as the stream told them so far, by id (nil before its first),
// and makes ds whole: a desired state of changes
// (api.HostDesiredState.Changes) then lists every VM desired, by id, like
// one that is whole. A change is applied where its VM sorts: a host's
// state is not sorted again for each.
func applyChanges(vms []api.VMDesired, ds *api.HostDesiredState) ([]api.VMDesired, error) {
	if !ds.Changes {
		// By id, each once: the last listed, as a later change would.
		// (Not nil, even empty: the stream's changes apply to it.)
		vms = append(make([]api.VMDesired, 0, len(ds.VMs)), ds.VMs...)
		slices.SortStableFunc(vms, func(a, b api.VMDesired) int { return strings.Compare(a.ID, b.ID) })
		once := vms[:0]
		for i, v := range vms {
			if i+1 == len(vms) || vms[i+1].ID != v.ID {
				once = append(once, v)
			}
		}
		return once, nil
	}
	if vms == nil {
		// Changes against nothing: taken for all, the host would delete
		// the VMs not listed.
		return nil, fmt.Errorf("agent: the stream's first desired state (revision %d) lists changes, not the whole state", ds.Revision)
	}
	for _, id := range ds.RemovedVMs {
		if i, ok := slices.BinarySearchFunc(vms, id, vmByID); ok {
			vms = slices.Delete(vms, i, i+1)
		}
	}
	for _, v := range ds.VMs {
		vms = upsertVM(vms, v)
	}
	ds.VMs = slices.Clone(vms) // the next changes apply to vms
	ds.Changes, ds.RemovedVMs = false, nil
	return vms, nil
}

// upsertVM puts v in vms (sorted by id) in place of the VM with its id, or
// where it sorts.
func upsertVM(vms []api.VMDesired, v api.VMDesired) []api.VMDesired {
	i, ok := slices.BinarySearchFunc(vms, v.ID, vmByID)
	if ok {
		vms[i] = v
		return vms
	}
	return slices.Insert(vms, i, v)
}

func vmByID(v api.VMDesired, id string) int { return strings.Compare(v.ID, id) }

// maxStreamLine bounds one message from the controller (a desired state of
// thousands of VMs is a few MB).
const maxStreamLine = 64 << 20
