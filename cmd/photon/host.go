package main

import (
	"context"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/client"
)

// host finds a host by id, or by address when no host has that id.
func (a *app) host(ctx context.Context, c *client.Client, arg string) (*api.Host, error) {
	if arg == "" {
		return nil, usagef("name a host (ID or ADDRESS)")
	}
	h, err := c.GetHost(ctx, arg)
	if !isNotFound(err) {
		return h, err
	}
	hs, err := c.ListHosts(ctx)
	if err != nil {
		return nil, err
	}
	var match []*api.Host
	for i := range hs {
		if hs[i].Address == arg {
			match = append(match, &hs[i])
		}
	}
	switch len(match) {
	case 0:
		return nil, api.Errorf(codeHostNotFound, "no host with id or address %q", arg)
	case 1:
		return match[0], nil
	}
	ids := make([]string, len(match))
	for i, m := range match {
		ids[i] = m.ID
	}
	return nil, usagef("%d hosts have address %q: give the id (%s)", len(match), arg, strings.Join(ids, ", "))
}

func hostID(h *api.Host) string      { return h.ID }
func hostAddress(h *api.Host) string { return h.Address }

// hostObject names a host: by id or address.
func (a *app) hostObject() object[api.Host] {
	return object[api.Host]{kind: "host", flags: noFlags(a.host), id: hostID, name: hostAddress}
}

var getHost = getter((*client.Client).GetHost)

func (a *app) hostCmd() *cobra.Command {
	host := a.hostObject()
	op := func(verb, short, past string, call func(*client.Client, context.Context, string) (*api.Task, error)) *cobra.Command {
		return opCmd(a, host, verb, short, "  photon host "+verb+" 10.0.0.5\n  photon host "+verb+" 0193c9b2-7d1e-7c4a-9f00-3b5e2a1c4d5e",
			past, call, getHost)
	}
	return a.group("host", "Manage hosts (system administrators): join, suspend, maintenance, delete",
		`  photon host join-token
  photon host list
  photon host suspend 10.0.0.5 && photon host enter-maintenance 10.0.0.5`,
		a.hostCreateCmd(), a.hostJoinTokenCmd(), a.hostListCmd(), a.hostShowCmd(), a.hostDeleteCmd(),
		a.hostListVMsCmd(),
		a.entityTasksCmd("host", "  photon host tasks 10.0.0.5\n  photon host tasks 10.0.0.5 --state ERROR", host.resolver, (*client.Client).ListHostTasks),
		op("suspend", "Suspend a READY host: its VMs keep running, no new VM is placed on it", "Suspended", (*client.Client).SuspendHost),
		op("resume", "Resume a SUSPENDED host: it takes new VMs again", "Resumed", (*client.Client).ResumeHost),
		op("enter-maintenance", "Put a SUSPENDED host without VMs in MAINTENANCE", "Put in maintenance", (*client.Client).EnterHostMaintenance),
		op("exit-maintenance", "Bring a host out of MAINTENANCE", "Brought out of maintenance", (*client.Client).ExitHostMaintenance),
	)
}

func (a *app) hostCreateCmd() *cobra.Command {
	var address, zone, tags, metadata string
	cmd := &cobra.Command{
		Use:   "create -i ADDRESS [-z ZONE] [-t TAGS] [-m METADATA]",
		Short: "Pre-register a host that joins later with a join token",
		Long: `Pre-register a host. It stays NOT_PROVISIONED until an agent on it joins:
make a token bound to it with 'photon host join-token --host ID' and run
'photond agent --join-token TOKEN ...' there.`,
		Example: `  photon host create -i 10.0.0.5 -z zone-a -t CLOUD -m "rack=r1, row=3"
  photon -n host create -i 10.0.0.6   # prints only the id`,
		Args: cobra.NoArgs,
		RunE: a.action(func(cmd *cobra.Command, args []string) error {
			if strings.TrimSpace(address) == "" {
				return usagef("host create needs -i ADDRESS")
			}
			md, err := parseKV("--metadata", metadata)
			if err != nil {
				return err
			}
			var usage []string
			for _, t := range splitList(tags) {
				usage = append(usage, strings.ToUpper(t))
			}
			spec := &api.HostCreateSpec{Address: strings.TrimSpace(address), AvailabilityZone: zone, UsageTags: usage, Metadata: md}
			c, err := a.client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			t, err := c.CreateHost(ctx, spec)
			if t, err = a.wait(ctx, c, t, err); err != nil {
				return err
			}
			if err := a.created(ctx, "host", spec.Address, t, getHost(c)); err != nil {
				return err
			}
			a.say("Make its join token with: photon host join-token --host %s", t.Entity.ID)
			return nil
		}),
	}
	f := cmd.Flags()
	f.StringVarP(&address, "address", "i", "", "address the host's agent will report, e.g. 10.0.0.5")
	f.StringVarP(&zone, "availability-zone", "z", "", "availability zone, e.g. zone-a")
	f.StringVarP(&tags, "tags", "t", "", "comma-separated usage tags, e.g. CLOUD or CLOUD,MGMT")
	f.StringVarP(&metadata, "metadata", "m", "", `metadata, "KEY=VALUE, ..."`)
	return cmd
}

func (a *app) hostJoinTokenCmd() *cobra.Command {
	var hostArg string
	cmd := &cobra.Command{
		Use:   "join-token [--host ID|ADDRESS]",
		Short: "Make a one-time token with which an agent joins the cloud",
		Long: `Make a one-time token with which 'photond agent --join-token TOKEN' joins
the cloud as a host. --host binds the token to a host pre-registered with
'photon host create'. With -n only the token is printed.`,
		Example: `  photon host join-token
  photond agent --controller https://10.0.0.1:9000 --ca-cert ca.crt --data-dir /var/lib/photon \
      --join-token "$(photon -n host join-token)"
  photon host join-token --host 10.0.0.5`,
		Args: cobra.NoArgs,
		RunE: a.connected(func(ctx context.Context, c *client.Client, args []string) error {
			hostID := ""
			if hostArg != "" {
				h, err := a.host(ctx, c, hostArg)
				if err != nil {
					return err
				}
				hostID = h.ID
			}
			jt, err := c.CreateJoinToken(ctx, hostID)
			if err != nil {
				return err
			}
			switch {
			case a.jsonOut():
				return a.printJSON(jt)
			case a.plain():
				a.line("%s", jt.Token)
				return nil
			}
			kv := []string{"Join token", jt.Token, "Expires", msTime(jt.ExpiresAt)}
			if jt.HostID != "" {
				kv = append(kv, "Host", jt.HostID)
			}
			if err := a.fields(kv...); err != nil {
				return err
			}
			a.line("\nOn the host, run:\n  photond agent --controller %s --ca-cert CA_CERT --data-dir DIR --join-token %s", c.BaseURL(), jt.Token)
			return nil
		}),
	}
	cmd.Flags().StringVar(&hostArg, "host", "", "bind the token to this pre-registered host (id or address)")
	return cmd
}

var hostHeader = []string{"ID", "ADDRESS", "STATE", "ZONE", "TAGS", "CPU (USED/TOTAL)", "MEMORY GB (USED/TOTAL)"}

func hostRow(h api.Host) []string {
	return []string{h.ID, h.Address, h.State, orDash(h.AvailabilityZone), orDash(strings.Join(h.UsageTags, ",")),
		strconv.Itoa(h.Usage.CPUCount) + "/" + strconv.Itoa(h.Capacity.CPUCount),
		gb(h.Usage.MemoryMB) + "/" + gb(h.Capacity.MemoryMB)}
}

// gb formats megabytes as gigabytes with at most two decimals: "1.5".
func gb(mb int64) string {
	return strconv.FormatFloat(float64(mb*100/1024)/100, 'f', -1, 64)
}

func (a *app) hostListCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List hosts with their state and what is used of them",
		Long: `List hosts. With -n each line is ID ADDRESS STATE ZONE TAGS CPU MEMORY,
tab-separated, TAGS comma-separated, CPU as USED/TOTAL and MEMORY as
USED/TOTAL in GB.`,
		Example: "  photon host list\n  photon -n host list\n  photon host list -o json",
		Args:    cobra.NoArgs,
		RunE: a.connected(func(ctx context.Context, c *client.Client, args []string) error {
			hs, err := c.ListHosts(ctx)
			if err != nil {
				return err
			}
			return printList(a, hs, hostHeader, hostRow)
		}),
	}
}

func (a *app) hostShowCmd() *cobra.Command {
	return showCmd(a, &cobra.Command{
		Use:     "show ID|ADDRESS",
		Short:   "Show a host: state (and why, if ERROR), capacity, usage, datastores",
		Example: "  photon host show 10.0.0.5\n  photon host show 0193c9b2-7d1e-7c4a-9f00-3b5e2a1c4d5e -o json",
		Args:    exactArgs(1, "ID|ADDRESS"),
	}, a.hostObject(), func(h *api.Host) error {
		kv := []string{"ID", h.ID, "Address", h.Address, "State", h.State}
		if h.Reason != "" {
			kv = append(kv, "Reason", h.Reason)
		}
		kv = append(kv, "Zone", orDash(h.AvailabilityZone), "Usage tags", orDash(joinComma(h.UsageTags)),
			"Hypervisor", orDash(h.EsxVersion),
			"CPU", strconv.Itoa(h.Usage.CPUCount)+" of "+strconv.Itoa(h.Capacity.CPUCount)+" used",
			"Memory", gb(h.Usage.MemoryMB)+" of "+gb(h.Capacity.MemoryMB)+" GB used",
			"Datastores", orDash(joinComma(h.Datastores)), "Metadata", kvString(h.Metadata),
			"Last seen", msTime(h.LastSeen))
		return a.show(h, hostRow(*h), kv, nil)
	})
}

func (a *app) hostDeleteCmd() *cobra.Command {
	return deleteCmd(a, &cobra.Command{
		Use:     "delete ID|ADDRESS",
		Short:   "Delete a host that is NOT_PROVISIONED, in MAINTENANCE or in ERROR",
		Example: "  photon host delete 10.0.0.5",
		Args:    exactArgs(1, "ID|ADDRESS"),
	}, a.hostObject(), (*client.Client).DeleteHost, nil)
}

func (a *app) hostListVMsCmd() *cobra.Command {
	return findCmd(a, &cobra.Command{
		Use:   "list-vms ID|ADDRESS",
		Short: "List the VMs placed on a host",
		Long: `List the VMs placed on a host. With -n each line is ID NAME STATE FLAVOR HOST,
tab-separated.`,
		Example: "  photon host list-vms 10.0.0.5\n  photon host list-vms 10.0.0.5 -o json",
		Args:    exactArgs(1, "ID|ADDRESS"),
	}, a.hostObject(), func(ctx context.Context, c *client.Client, h *api.Host) error {
		vms, err := c.ListHostVMs(ctx, h.ID)
		if err != nil {
			return err
		}
		return a.printVMs(vms)
	})
}
