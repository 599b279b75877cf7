package qemu

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/digitalocean/go-qemu/qmp"
)

// monitor is one QMP session with a VM's QEMU: go-qemu's SocketMonitor,
// with every call bounded by a context (the library's calls have no
// deadline of their own: a hung QEMU would hang the agent).
type monitor struct {
	m *qmp.SocketMonitor
}

// qmpTimeout bounds a QMP session's handshake and each command unless the
// caller's context is shorter.
const qmpTimeout = 10 * time.Second

// dialQMP connects to a QMP socket and does the capabilities handshake.
// QEMU answers the handshake only once its machine is set up, so a
// successful dial also means QEMU got past its start-up checks.
func dialQMP(ctx context.Context, socket string) (*monitor, error) {
	m, err := qmp.NewSocketMonitor("unix", socket, 2*time.Second)
	if err != nil {
		return nil, err
	}
	if err := bounded(ctx, m, m.Connect); err != nil {
		return nil, fmt.Errorf("QMP handshake: %w", err)
	}
	return &monitor{m: m}, nil
}

// bounded runs f, disconnecting m (which makes f return) if ctx ends or
// qmpTimeout passes first.
func bounded(ctx context.Context, m *qmp.SocketMonitor, f func() error) error {
	ctx, cancel := context.WithTimeout(ctx, qmpTimeout)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		_ = m.Disconnect()
		<-done
		return ctx.Err()
	}
}

func (mo *monitor) close() {
	if mo != nil {
		_ = mo.m.Disconnect()
	}
}

// run executes one QMP command with arguments (nil for none) and decodes
// its "return" into out (nil to ignore it).
func (mo *monitor) run(ctx context.Context, command string, args any, out any) error {
	req := qmp.Command{Execute: command}
	if args != nil {
		req.Args = args
	}
	cmd, err := json.Marshal(req)
	if err != nil {
		return err
	}
	var raw []byte
	err = bounded(ctx, mo.m, func() error {
		var err error
		raw, err = mo.m.Run(cmd)
		return err
	})
	if err != nil {
		return fmt.Errorf("QMP %s: %w", command, err)
	}
	if out == nil {
		return nil
	}
	var resp struct {
		Return json.RawMessage `json:"return"`
	}
	if err := json.Unmarshal(raw, &resp); err != nil {
		return fmt.Errorf("QMP %s: %w", command, err)
	}
	if len(resp.Return) == 0 {
		return fmt.Errorf("QMP %s: %w", command, errors.New("no return value"))
	}
	return json.Unmarshal(resp.Return, out)
}

// status is QMP query-status: "running", "paused", "shutdown", ...
func (mo *monitor) status(ctx context.Context) (string, error) {
	var st struct {
		Status string `json:"status"`
	}
	err := mo.run(ctx, "query-status", nil, &st)
	return st.Status, err
}
