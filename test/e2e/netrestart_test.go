package e2e

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/photon-cloud/photon/client"
	"github.com/vishvananda/netns"
)

// The ping loop of restartUnderTraffic: loopCount packets at 0.2 s, of
// which at most maxLost (a second's worth) may be lost while the agents
// of both ends are killed and started again.
const (
	loopCount = 100
	maxLost   = 5
)

var (
	pingReply = regexp.MustCompile(`seq=\d+ ttl=\d+ time=([0-9.]+) ms`)
	pingSum   = regexp.MustCompile(`(\d+) packets transmitted, (\d+) packets received`)
)

// restartUnderTraffic starts a VM on host 0 whose user-data script pings
// a1 (same host) and a2 (host 1) 20 times each, for the latency, then a2
// loopCount times at 0.2 s; while it does, the agents of host 0 and host
// 1 are killed (SIGKILL) and started again. At most maxLost packets of
// the loop may be lost. It logs the median round-trip times.
func restartUnderTraffic(t *testing.T, ctx context.Context, cl *client.Client, agents []*agent,
	console func(string) string, create func(p, name string, i int, s string, env, meta map[string]string) (string, string),
	project, subnet, a1IP, a2IP string, start time.Time) {
	t.Helper()
	// The comment's PHOTON_PING makes the init wait until both answer.
	script := fmt.Sprintf(`#!/bin/sh
# PHOTON_PING=%[1]s %[2]s
ping -c 20 -i 0.2 %[1]s 2>&1 | sed 's/^/photon-same: /'
ping -c 20 -i 0.2 %[2]s 2>&1 | sed 's/^/photon-cross: /'
echo photon-loop: start
ping -c %[3]d -i 0.2 %[2]s 2>&1 | sed 's/^/photon-loop: /'
`, a1IP, a2IP, loopCount)
	id, _ := create(project, "pinger", 0, subnet, nil, map[string]string{"user-data": script})

	waitFor := func(what string, d time.Duration) string {
		deadline := time.Now().Add(d)
		for {
			c := console(id)
			if strings.Contains(c, what) {
				return c
			}
			if time.Now().After(deadline) || ctx.Err() != nil {
				t.Fatalf("pinger: no %q on its console in %s:\n%s", what, d, tail(netLines(c), 3000))
			}
			time.Sleep(500 * time.Millisecond)
		}
	}
	waitFor("photon-loop: start", 120*time.Second)
	t.Logf("%s: pinger: loop started", time.Since(start).Round(100*time.Millisecond))
	for _, i := range []int{0, 1} {
		time.Sleep(4 * time.Second)
		agents[i].restart(t)
		t.Logf("%s: agent h%d killed and started again", time.Since(start).Round(100*time.Millisecond), i)
	}
	c := waitFor("photon-loop: --- ", time.Duration(loopCount)*200*time.Millisecond+60*time.Second)
	c = waitFor("packets received", 10*time.Second)
	for i, a := range agents {
		select {
		case <-a.done:
			t.Errorf("agent h%d exited after the restarts: %v\n%s", i, a.cmd.ProcessState, tail(a.out.String(), 4000))
		default:
		}
	}

	rtts := map[string][]float64{}
	var sent, received int
	for _, l := range strings.Split(c, "\n") {
		for _, k := range []string{"photon-same: ", "photon-cross: ", "photon-loop: "} {
			if !strings.Contains(l, k) {
				continue
			}
			if m := pingReply.FindStringSubmatch(l); m != nil {
				v, _ := strconv.ParseFloat(m[1], 64)
				rtts[k] = append(rtts[k], v)
			}
			if m := pingSum.FindStringSubmatch(l); m != nil && k == "photon-loop: " {
				sent, _ = strconv.Atoi(m[1])
				received, _ = strconv.Atoi(m[2])
			}
		}
	}
	median := func(k string) float64 {
		v := slices.Clone(rtts[k])
		if len(v) == 0 {
			return -1
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	t.Logf("RTT median: same host %.3f ms (%d replies), two hosts %.3f ms (%d replies), two hosts during the restarts %.3f ms",
		median("photon-same: "), len(rtts["photon-same: "]), median("photon-cross: "), len(rtts["photon-cross: "]), median("photon-loop: "))
	t.Logf("ping loop across the agent restarts: sent %d received %d", sent, received)
	if sent != loopCount || sent-received > maxLost {
		t.Errorf("ping loop: sent %d, received %d: more than %d lost across the agents' restarts:\n%s",
			sent, received, maxLost, tail(netLines(c), 4000))
	}
}

// onHosts lists what the hosts hold of the test's networks: links with a
// photon: alias (taps, bridges, VXLAN devices, with their FDB entries,
// gateway and transit veths), router namespaces (with their DHCP
// responders, whose leases live in the agent's memory), rules and set
// elements of the photon nftables tables, routes and proxy neighbours of
// the floating range or the test's private addresses.
func (n *netTest) onHosts(agents []*agent) []string {
	t := n.t
	var left []string
	for i, a := range agents {
		name := fmt.Sprintf("h%d", i)
		out, err := n.in(name, "ip", "-d", "link", "show").CombinedOutput()
		if err != nil {
			t.Fatalf("ip link in %s: %v\n%s", name, err, out)
		}
		for _, l := range strings.Split(string(out), "\n") {
			if strings.Contains(l, "alias photon:") {
				left = append(left, name+": link "+strings.TrimSpace(l))
			}
		}
		es, _ := os.ReadDir(a.nsDir)
		for _, e := range es {
			left = append(left, name+": router namespace "+e.Name())
		}
		for _, args := range [][]string{{"ip", "route", "show", "table", "all"}, {"ip", "neigh", "show", "proxy"}} {
			out, _ := n.in(name, args...).CombinedOutput()
			for _, l := range strings.Split(string(out), "\n") {
				if strings.HasPrefix(l, "198.51.100.20") || strings.Contains(l, "10.10.") {
					left = append(left, name+": "+args[1]+" "+l)
				}
			}
		}
		left = append(left, nftLeft(t, "/run/netns/"+n.ns(name), name)...)
	}
	return left
}

// noLeftovers checks, once everything was deleted through the API, that
// no host keeps anything of it (onHosts is empty); the agents converge in
// the background: it waits up to 30 s.
func (n *netTest) noLeftovers(ctx context.Context, agents []*agent) {
	var left []string
	deadline := time.Now().Add(30 * time.Second)
	for {
		left = n.onHosts(agents)
		if len(left) == 0 || time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		time.Sleep(time.Second)
	}
	if len(left) > 0 {
		n.t.Errorf("left on the hosts after deleting every VM, subnet and router:\n%s", strings.Join(left, "\n"))
	}
}

// nftLeft lists the rules and set elements of the photon tables in the
// namespace at path.
func nftLeft(t *testing.T, path, name string) []string {
	ns, err := netns.GetFromPath(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	c, err := nftables.New(nftables.WithNetNSFd(int(ns)))
	if err != nil {
		t.Fatal(err)
	}
	tables, err := c.ListTables()
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	for _, tb := range tables {
		if !strings.HasPrefix(tb.Name, "photon") {
			continue
		}
		chains, err := c.ListChainsOfTableFamily(tb.Family)
		if err != nil {
			t.Fatal(err)
		}
		for _, ch := range chains {
			if ch.Table.Name != tb.Name {
				continue
			}
			rs, err := c.GetRules(tb, ch)
			if err != nil {
				t.Fatal(err)
			}
			if len(rs) > 0 {
				left = append(left, fmt.Sprintf("%s: nftables table %s chain %s: %d rules", name, tb.Name, ch.Name, len(rs)))
			}
		}
		sets, err := c.GetSets(tb)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range sets {
			es, err := c.GetSetElements(s)
			if err != nil {
				t.Fatal(err)
			}
			if len(es) > 0 {
				left = append(left, fmt.Sprintf("%s: nftables table %s set %s: %d elements", name, tb.Name, s.Name, len(es)))
			}
		}
	}
	return left
}
