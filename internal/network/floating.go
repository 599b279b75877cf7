package network

import (
	"context"
	"net/netip"
	"strings"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/internal/store"
)

// Floating IPs: addresses of a range given to the controller
// (--floating-ip-range), each mapped to one VM's port; the VM's host
// answers for it on its uplink and translates it to the port's address.
//
//	fip/<ip>       an acquired floating IP: its VM and port
//	fip-cursor     where the next allocation starts, and whether it wrapped

// FloatingQuotaKey is the project quota key of floating IPs.
const FloatingQuotaKey = "sdn.floatingip.size"

// MaxFloatingRange bounds the addresses of a floating IP range.
const MaxFloatingRange = 1 << 16

// Range is a range of IPv4 addresses, First to Last inclusive.
type Range struct{ First, Last netip.Addr }

// Size is the number of addresses in r (0 for the zero Range).
func (r Range) Size() uint32 {
	if !r.First.IsValid() {
		return 0
	}
	f, l := num(r.First), num(r.Last)
	return l - f + 1
}

// At is the i-th address of r.
func (r Range) At(i uint32) netip.Addr { return addr(num(r.First) + i) }

func num(a netip.Addr) uint32 {
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

// String is r as ParseRange reads it.
func (r Range) String() string {
	if !r.First.IsValid() {
		return ""
	}
	return r.First.String() + "-" + r.Last.String()
}

// ParseRange parses a floating IP range: "203.0.113.10-203.0.113.50"
// (inclusive) or a CIDR, "203.0.113.0/28" (its network and broadcast
// addresses left out when it has more than two). IPv4 only, at most
// MaxFloatingRange addresses. "" is no range.
func ParseRange(s string) (Range, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Range{}, nil
	}
	bad := func(format string, args ...any) (Range, error) {
		return Range{}, fieldErr("floatingIpRange", format, args...)
	}
	if len(s) > 64 {
		return bad("too long")
	}
	var r Range
	if a, b, ok := strings.Cut(s, "-"); ok {
		first, err1 := netip.ParseAddr(strings.TrimSpace(a))
		last, err2 := netip.ParseAddr(strings.TrimSpace(b))
		if err1 != nil || err2 != nil || !first.Is4() || !last.Is4() {
			return bad("%q is not a range like 203.0.113.10-203.0.113.50", s)
		}
		if last.Less(first) {
			return bad("%s comes after %s", first, last)
		}
		r = Range{first, last}
	} else {
		p, err := netip.ParsePrefix(s)
		if err != nil || !p.Addr().Is4() {
			return bad("%q is not a range like 203.0.113.10-203.0.113.50 or a CIDR like 203.0.113.0/28", s)
		}
		p = p.Masked()
		if 32-p.Bits() > 16 {
			return bad("%s holds more than %d addresses", p, MaxFloatingRange)
		}
		f, l := span(p)
		if p.Bits() < 31 {
			f, l = f+1, l-1
		}
		r = Range{addr(f), addr(l)}
	}
	if uint64(num(r.Last))-uint64(num(r.First))+1 > MaxFloatingRange {
		return bad("%s holds more than %d addresses", s, MaxFloatingRange)
	}
	for _, a := range []netip.Addr{r.First, r.Last} {
		if a.IsUnspecified() || a.IsMulticast() || a.IsLoopback() || a == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
			return bad("%s cannot be a floating IP", a)
		}
	}
	return r, nil
}

func fipKey(ip netip.Addr) string { return store.Key("fip", ip.String()) }

var fipCursorKey = store.Key("fip-cursor")

type fipCursor struct {
	Next    uint32 `json:"next"`
	Wrapped bool   `json:"wrapped,omitempty"`
	// Range the cursor is for: a changed range starts again.
	Range string `json:"range"`
}

// FloatingIP is an acquired floating IP's record.
type FloatingIP struct {
	VMID   string `json:"vmId"`
	PortID string `json:"portId"`
}

// AcquireFloating allocates in tx a floating IP of r for port portID of
// VM vmID; st lists the range's addresses when its cursor finds none free
// nearby. No range is InvalidState; a full one IpExhausted.
func AcquireFloating(ctx context.Context, st *store.Store, tx *store.Txn, r Range, vmID, portID string) (string, error) {
	n := r.Size()
	if n == 0 {
		return "", api.Errorf(api.CodeInvalidState, "this cloud has no floating IPs (photond controller --floating-ip-range)")
	}
	var cur fipCursor
	if _, err := tx.Get(ctx, fipCursorKey, &cur); err != nil {
		return "", err
	}
	if cur.Range != r.String() {
		cur = fipCursor{Range: r.String(), Wrapped: true} // addresses of another range may be held
	}
	take := func(off uint32) (string, bool, error) {
		ip := r.At(off)
		key := fipKey(ip)
		if !cur.Wrapped && !tx.Knows(key) {
			tx.SeedKV(key, nil, 0) // never handed out: the commit checks it
		}
		taken, err := tx.Exists(ctx, key)
		if err != nil || taken {
			return "", false, err
		}
		if cur.Next = off + 1; cur.Next >= n {
			cur.Next, cur.Wrapped = 0, true
		}
		if err := tx.Put(key, FloatingIP{VMID: vmID, PortID: portID}); err != nil {
			return "", false, err
		}
		return ip.String(), true, tx.Put(fipCursorKey, cur)
	}
	for i := range min(n, maxProbes) {
		if ip, ok, err := take((cur.Next + i) % n); err != nil || ok {
			return ip, err
		}
	}
	keys, err := st.Keys(ctx, store.Prefix("fip"))
	if err != nil {
		return "", err
	}
	used := make(map[string]bool, len(keys))
	for _, k := range keys {
		used[k] = true
	}
	for i := range n {
		off := (cur.Next + maxProbes + i) % n
		if used[fipKey(r.At(off))] {
			continue
		}
		ip, ok, err := take(off)
		if err != nil || ok {
			return ip, err
		}
		return "", store.ErrConflict // taken since the list: run again
	}
	e := api.Errorf(api.CodeIPExhausted, "all %d floating IPs (%s) are taken", n, r)
	e.Data = map[string]string{"subnet": "floating"}
	return "", e
}

// ReleaseFloating returns a VM's floating IP in tx (one held by another
// VM, or gone, is left be).
func ReleaseFloating(ctx context.Context, tx *store.Txn, ip, vmID string) error {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return nil
	}
	var f FloatingIP
	if ok, err := tx.Get(ctx, fipKey(a), &f); err != nil || !ok || f.VMID != vmID {
		return err
	}
	tx.Delete(fipKey(a))
	return nil
}
