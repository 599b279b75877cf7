package main

import (
	"fmt"
	"math"

	"github.com/spf13/cobra"

	"github.com/photon-cloud/photon/internal/controller"
	"github.com/photon-cloud/photon/internal/fleet"
)

// placementFlags tune the controller's scheduler; `photond controller` and
// `photond dev` both take them. They are not the qemu driver's
// --qemu-*-overcommit flags: those set what one qemu host reports as its
// capacity, these scale what the controller places on every host's
// reported capacity (so the two multiply).
type placementFlags struct {
	cpuOvercommit, memOvercommit float64
	sample                       int
}

func (p *placementFlags) add(cmd *cobra.Command) {
	f := cmd.Flags()
	f.Float64Var(&p.cpuOvercommit, "cpu-overcommit", 1,
		"scheduler: vCPUs placed per CPU a host reports, on every host (e.g. 4: a host reporting 16 CPUs takes VMs of 64 vCPUs in all); "+
			"host metadata overcommit.cpu overrides it per host. Not --qemu-cpu-overcommit, which sets what a qemu host reports (the two multiply)")
	f.Float64Var(&p.memOvercommit, "memory-overcommit", 1,
		"scheduler: memory placed per MB a host reports, on every host (e.g. 1.5: a 64 GB host takes VMs of 96 GB in all; 0.9 keeps 10% free); "+
			"host metadata overcommit.memory overrides it per host. Not --qemu-memory-overcommit, which sets what a qemu host reports")
	f.IntVar(&p.sample, "placement-sample", 0,
		fmt.Sprintf("scheduler: how many feasible hosts (picked at random) a placement scores before choosing the best: "+
			"0 = the built-in default (%d), -1 = every feasible host (the best placement, slower on large fleets), e.g. 256", fleet.DefaultSample))
}

// apply checks the flags and copies them into cfg.
func (p *placementFlags) apply(cfg *controller.Config) error {
	for _, o := range []struct {
		flag string
		v    float64
	}{{"--cpu-overcommit", p.cpuOvercommit}, {"--memory-overcommit", p.memOvercommit}} {
		if !(o.v > 0) || math.IsInf(o.v, 0) {
			return fmt.Errorf("%s %g: want a ratio above 0, e.g. 1 (no overcommit) or 4 (four times what hosts report)", o.flag, o.v)
		}
	}
	if p.sample < -1 {
		return fmt.Errorf("--placement-sample %d: want a count of hosts, 0 (the default, %d) or -1 (every feasible host)", p.sample, fleet.DefaultSample)
	}
	cfg.CPUOvercommit, cfg.MemoryOvercommit, cfg.PlacementSample = p.cpuOvercommit, p.memOvercommit, p.sample
	return nil
}
