package agent

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/internal/driver"
	"github.com/photon-cloud/photon/internal/netplumb"
)

// networkTimeout bounds one Ensure of the host's network: a driver that
// hangs must not stop the agent from converging its VMs without NICs.
const networkTimeout = time.Minute

// Network retries back off from networkRetryMin to networkRetryMax.
const (
	networkRetryMin = time.Second
	networkRetryMax = 30 * time.Second
)

// networkDesired is the network the host should have for ds: its routers
// and subnets, and a port for each NIC of each VM it should hold (of any
// power state: a stopped VM keeps its port, so it boots onto it). A VM
// with a NIC on a subnet ds's network lacks gets no port at all (bad says
// why; the VM is not ensured). subnets are ds's, by id.
func networkDesired(ds *api.HostDesiredState) (want netplumb.Desired, bad map[string]error, subnets map[string]api.SubnetDesired) {
	if ds.Networks != nil {
		want.HostNetworkDesired = *ds.Networks
	}
	subnets = make(map[string]api.SubnetDesired, len(want.Subnets))
	for _, s := range want.Subnets {
		subnets[s.ID] = s
	}
	for _, vm := range ds.VMs {
		if vm.Power == api.VMDeleted || len(vm.NICs) == 0 {
			continue
		}
		var err error
		for _, n := range vm.NICs {
			if _, ok := subnets[n.SubnetID]; !ok {
				err = fmt.Errorf("NIC %s: subnet %q is not in the host's desired network", n.ID, n.SubnetID)
				break
			}
		}
		if err != nil {
			if bad == nil {
				bad = map[string]error{}
			}
			bad[vm.ID] = err
			continue
		}
		for _, n := range vm.NICs {
			want.Ports = append(want.Ports, netplumb.Port{NICDesired: n, VMID: vm.ID})
		}
	}
	return want, bad, subnets
}

// ensureNetwork makes the host's network want (nil error: programmed, or
// no network driver) and remembers it for the retry loop, which a failure
// wakes.
func (a *Agent) ensureNetwork(ctx context.Context, want netplumb.Desired) error {
	if a.cfg.Network == nil {
		return nil
	}
	a.netMu.Lock()
	defer a.netMu.Unlock()
	a.netWant = &want
	err := a.programNetwork(ctx, want)
	if err != nil {
		select {
		case a.netRetry <- struct{}{}:
		default:
		}
	}
	return err
}

// programNetwork runs the network driver's Ensure (netMu held).
func (a *Agent) programNetwork(ctx context.Context, want netplumb.Desired) error {
	ctx, cancel := context.WithTimeout(ctx, networkTimeout)
	defer cancel()
	err := a.cfg.Network.Ensure(ctx, want)
	if err != nil {
		if ctx.Err() == nil || errors.Is(ctx.Err(), context.DeadlineExceeded) {
			a.log.Warn("host network", "ports", len(want.Ports), "subnets", len(want.Subnets), "error", err)
		}
		return fmt.Errorf("host network: %w", err)
	}
	return nil
}

// networkRetryLoop programs the network again, backing off, while the
// last desired state's could not be; once it is, it ensures the VMs that
// waited for it.
func (a *Agent) networkRetryLoop(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-a.netRetry:
		}
		for backoff := networkRetryMin; ; backoff = min(2*backoff, networkRetryMax) {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(backoff):
			}
			a.netMu.Lock()
			want := a.netWant
			a.mu.Lock()
			failed := a.netErr != nil
			a.mu.Unlock()
			if !failed || want == nil {
				a.netMu.Unlock() // a later desired state's Ensure succeeded
				break
			}
			err := a.programNetwork(ctx, *want)
			// Only the latest network's outcome counts: converge sets
			// netErr with netMu released, after the Ensure it made.
			a.mu.Lock()
			if a.netWant == want {
				a.netErr = err
			}
			var waiting []string
			if err == nil {
				for id, d := range a.desired {
					if len(d.NICs) > 0 && d.Power != api.VMDeleted {
						waiting = append(waiting, id)
					}
				}
			}
			a.mu.Unlock()
			a.netMu.Unlock()
			if err == nil {
				a.log.Info("host network programmed", "ports", len(want.Ports), "subnets", len(want.Subnets))
				for _, id := range waiting {
					a.act(ctx, id)
				}
				break
			}
		}
	}
}

// nicSpec fills in the network part of a VM's spec: the subnets of its
// NICs, or an error if its network is not there (the host's network
// failed, or a NIC's subnet is unknown). Without a network driver the
// VM's NICs are left out: it gets no network.
func (a *Agent) nicSpec(spec *driver.VMSpec) error {
	if len(spec.NICs) == 0 {
		return nil
	}
	if a.cfg.Network == nil {
		spec.NICs = nil
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.badNICs[spec.ID]; err != nil {
		return err
	}
	if a.netErr != nil {
		return a.netErr
	}
	spec.Subnets = make(map[string]api.SubnetDesired, len(spec.NICs))
	for _, n := range spec.NICs {
		spec.Subnets[n.SubnetID] = a.subnets[n.SubnetID]
	}
	return nil
}
