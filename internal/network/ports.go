package network

import (
	"context"
	"net/netip"
	"strconv"

	"github.com/google/uuid"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/internal/store"
)

// MaxNICs bounds a VM's NICs.
const MaxNICs = 8

// Port is a VM's NIC as its record keeps it: what its host gets, and
// the prefix length of its subnet.
type Port struct {
	api.NICDesired
	Bits int `json:"bits"`
}

// ValidateSubnetIDs checks a VM create spec's subnets (field "subnets").
func ValidateSubnetIDs(ids []string) error {
	if len(ids) > MaxNICs {
		return fieldErr("subnets", "at most %d subnets", MaxNICs)
	}
	seen := map[string]bool{}
	for i, id := range ids {
		f := "subnets[" + strconv.Itoa(i) + "]"
		if !validID(id) {
			return fieldErr(f, "want a subnet id")
		}
		if seen[id] {
			return fieldErr(f, "subnet %s appears twice", id)
		}
		seen[id] = true
	}
	return nil
}

// SubnetsOf is the subnets a VM of project projectID gets a NIC on: ids,
// or when none is given the project's default subnet, if any (read in
// tx: see DefaultKey).
func SubnetsOf(ctx context.Context, tx *store.Txn, projectID string, ids []string) ([]string, error) {
	if len(ids) > 0 {
		return ids, nil
	}
	var def string
	if ok, err := tx.Get(ctx, defaultKey(projectID), &def); err != nil || !ok {
		return nil, err
	}
	return []string{def}, nil
}

// AllocatePorts allocates in tx a port (id, MAC, address) on each of
// subnets for a VM of project projectID. A subnet of another project
// answers as a missing one (SubnetNotFound); a full one is IpExhausted,
// naming it. Each address's key is written conditioned on its absence.
// st lists a subnet's addresses when its cursor finds none free nearby.
func AllocatePorts(ctx context.Context, st *store.Store, tx *store.Txn, projectID string, subnets []string) ([]Port, error) {
	out := make([]Port, 0, len(subnets))
	for i, id := range subnets {
		rec, err := getSubnet(ctx, tx, id)
		if err != nil || rec.ProjectID != projectID {
			if err == nil || api.StatusForCode(codeOf(err)) == 404 {
				e := api.Errorf(api.CodeSubnetNotFound, "subnet %s not found", id)
				e.Data = map[string]string{"field": "subnets[" + strconv.Itoa(i) + "]"}
				return nil, e
			}
			return nil, err
		}
		p, err := allocate(ctx, st, tx, rec)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

func codeOf(err error) string {
	if e, ok := err.(*api.Error); ok {
		return e.Code
	}
	return ""
}

// maxProbes bounds the addresses an allocation tries from its subnet's
// cursor (each a read, and a condition of the commit) before it lists
// the subnet's allocated addresses instead.
const maxProbes = 4

// PortOps bounds the reads, and the writes, one port adds to its VM's
// create transaction (the subnet, maxProbes addresses and the one found
// after a list, the host's subnet record; the address, the subnet, the
// host's subnet and peer records): group commit keeps room for them under
// etcd's bound on a transaction's operations.
const PortOps = 1 + maxProbes + 1 + 1 + 1

// allocate takes the subnet's next free address from its cursor: before
// the cursor first wraps, the next one is free; after, it tries a few,
// then lists the subnet's addresses (outside tx) and takes the first free
// one after the cursor, its absence a condition of the commit.
func allocate(ctx context.Context, st *store.Store, tx *store.Txn, rec *Record) (Port, error) {
	cidr, err := netip.ParsePrefix(rec.PrivateIPCidr)
	if err != nil {
		return Port{}, err
	}
	n := capacity(cidr)
	if rec.Ports >= n {
		return Port{}, exhausted(rec, n)
	}
	take := func(off uint32) (Port, bool, error) {
		ip := portAddr(cidr, off)
		key := ipKey(rec.ID, ip)
		if !rec.Wrapped && !tx.Knows(key) {
			// Before the cursor first wraps, no address at or after it
			// was ever handed out: the key's absence is checked by the
			// commit, not read first.
			tx.SeedKV(key, nil, 0)
		}
		taken, err := tx.Exists(ctx, key)
		if err != nil || taken {
			return Port{}, false, err
		}
		rec.Next = off + 1
		if rec.Next >= n {
			rec.Next, rec.Wrapped = 0, true
		}
		p := Port{NICDesired: api.NICDesired{ID: uuid.Must(uuid.NewV7()).String(), SubnetID: rec.ID,
			MAC: MAC(rec.VNI, ip), IP: ip.String()}, Bits: cidr.Bits()}
		if err := tx.Put(key, p.ID); err != nil {
			return Port{}, false, err
		}
		rec.Ports++
		kept := *rec // the next port of a batch reads it undecoded
		return p, true, tx.PutKept(subnetKey(rec.ID), &kept)
	}
	for i := range min(n, maxProbes) {
		if p, ok, err := take((rec.Next + i) % n); err != nil || ok {
			return p, err
		}
	}
	// Fragmented (or the record read is stale): the allocated addresses,
	// listed now.
	keys, err := st.Keys(ctx, store.Prefix("ipam", rec.ID))
	if err != nil {
		return Port{}, err
	}
	used := make(map[string]bool, len(keys))
	for _, k := range keys {
		used[k] = true
	}
	for i := range n {
		off := (rec.Next + maxProbes + i) % n
		if used[ipKey(rec.ID, portAddr(cidr, off))] {
			continue
		}
		p, ok, err := take(off)
		if err != nil || ok {
			return p, err
		}
		break
	}
	// Taken since the list, or the record counts ports that are gone
	// or not yet seen: run again on fresh reads.
	if uint32(len(keys)) >= n {
		return Port{}, exhausted(rec, n)
	}
	return Port{}, store.ErrConflict
}

func exhausted(rec *Record, n uint32) error {
	e := api.Errorf(api.CodeIPExhausted, "subnet %s (%s) has no free address: all %d are taken", rec.Name, rec.PrivateIPCidr, n)
	e.Data = map[string]string{"subnet": rec.ID, "field": "subnets"}
	return e
}

// ReleasePorts returns ports' addresses to their subnets in tx. A subnet
// or address already gone is fine.
func ReleasePorts(ctx context.Context, tx *store.Txn, ports []Port) error {
	for _, p := range ports {
		ip, err := netip.ParseAddr(p.IP)
		if err != nil {
			continue
		}
		key := ipKey(p.SubnetID, ip)
		var holder string
		if ok, err := tx.Get(ctx, key, &holder); err != nil {
			return err
		} else if !ok || holder != p.ID {
			continue
		}
		tx.Delete(key)
		rec, err := getSubnet(ctx, tx, p.SubnetID)
		if err != nil {
			if codeOf(err) == api.CodeSubnetNotFound {
				continue
			}
			return err
		}
		if rec.Ports > 0 {
			rec.Ports--
		}
		if err := tx.Put(subnetKey(rec.ID), rec); err != nil {
			return err
		}
	}
	return nil
}

// SubnetRecord reads a subnet's record in tx (for the hosts carrying it).
func SubnetRecord(ctx context.Context, tx *store.Txn, id string) (*Record, error) {
	return getSubnet(ctx, tx, id)
}
