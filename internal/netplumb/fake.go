package netplumb

import (
	"context"
	"fmt"
	"sync"
)

// Fake is the network driver of simulated hosts: it checks and keeps what
// it is given, and programs nothing.
type Fake struct {
	mu   sync.Mutex
	last Desired
	// Fail, if set, is returned by Ensure (a fault knob for tests).
	Fail error
}

// NewFake returns a fake network driver.
func NewFake() *Fake { return &Fake{} }

// Ensure checks want (every port on a subnet given) and keeps it.
func (f *Fake) Ensure(_ context.Context, want Desired) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.Fail != nil {
		return f.Fail
	}
	subnets := map[string]bool{}
	for _, s := range want.Subnets {
		subnets[s.ID] = true
	}
	for _, p := range want.Ports {
		if !subnets[p.SubnetID] {
			return fmt.Errorf("netplumb: port %s: subnet %s is not on this host", p.ID, p.SubnetID)
		}
	}
	f.last = want
	return nil
}

// Last is what the last successful Ensure was given.
func (f *Fake) Last() Desired {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.last
}

// Close does nothing.
func (f *Fake) Close() error { return nil }
