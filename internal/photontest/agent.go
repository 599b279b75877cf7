package photontest

import (
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/photon-cloud/photon/internal/agent"
	"github.com/photon-cloud/photon/internal/driver/fake"
	"github.com/photon-cloud/photon/internal/netplumb"
)

var agentSeq atomic.Int64

// Agent is a host agent running in this process, on the fake driver and
// the fake network driver (Network.Last() is the network it was last
// given).
type Agent struct {
	*agent.Agent
	Driver  *fake.Driver
	Network *netplumb.Fake
	cancel  context.CancelFunc
	done    chan error
}

// NewAgent joins a host with the fake driver configured by cfg to the
// controller and runs its agent until the test ends (or Stop). The host's
// heartbeat interval is short (200 ms) so liveness tests run fast.
// Options adjust the agent's Config before it starts, e.g. its Address
// (a host pre-registered at that address joins as that host).
func NewAgent(t testing.TB, c *Cloud, cfg fake.Config, options ...func(*agent.Config)) *Agent {
	t.Helper()
	dir := t.TempDir()
	if cfg.DataDir == "" {
		cfg.DataDir = filepath.Join(dir, "fake")
	}
	drv, err := fake.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	jt, err := c.Server.Hosts.NewJoinToken(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	seq := agentSeq.Add(1)
	network := netplumb.NewFake()
	acfg := agent.Config{ControllerURL: c.URL, CACertFile: c.CACert, JoinToken: jt.Token, DataDir: dir,
		Driver: drv, Network: network, Address: fmt.Sprintf("10.0.0.%d", seq), UnderlayIP: fmt.Sprintf("192.0.2.%d", seq%250+1),
		HeartbeatInterval: 200 * time.Millisecond, Log: Logger(t)}
	for _, o := range options {
		o(&acfg)
	}
	a, err := agent.New(acfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ag := &Agent{Agent: a, Driver: drv, Network: network, cancel: cancel, done: make(chan error, 1)}
	if err := a.Join(ctx); err != nil {
		cancel()
		t.Fatal(err)
	}
	go func() { ag.done <- a.Run(ctx) }()
	t.Cleanup(ag.Stop)
	return ag
}

// Stop stops the agent (its VMs stay in the driver, as real ones would).
func (a *Agent) Stop() {
	if a.cancel != nil {
		a.cancel()
		<-a.done
		a.cancel = nil
	}
}
