package netplumb

import (
	"context"
	"sync"
)

// Fake is the network driver of simulated hosts: it checks what it is
// given with the same rules as the Linux driver (ports on known subnets,
// subnets on known routers, valid CIDRs, MACs and addresses, gateways
// inside their CIDR), keeps it, and programs nothing.
type Fake struct {
	mu   sync.Mutex
	last Desired
	// Fail, if set, is returned by Ensure (a fault knob for tests).
	Fail error
}

// NewFake returns a fake network driver.
func NewFake() *Fake { return &Fake{} }

// Ensure checks want as the Linux driver does and keeps it; a refused
// want leaves the last one in place.
func (f *Fake) Ensure(_ context.Context, want Desired) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.Fail != nil {
		return f.Fail
	}
	if _, err := check(want); err != nil {
		return err
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
