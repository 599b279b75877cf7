package netplumb

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// nftables: photon owns whole tables (never rules in someone else's).
// Every rule carries its key in UserData; a table whose chains and rule
// keys already match is left alone (its rule handles do not change), and
// one that differs is replaced in one atomic batch.
const (
	tableL2     = "photon-l2"  // bridge family, host namespace: the gateways stay local
	tableNAT    = "photon-nat" // ip family, host namespace: transit links out the uplink
	tableRouter = "photon"     // ip family, each router namespace: SNAT, DNAT, filter
)

type ruleSpec struct {
	key   string
	exprs []expr.Any
}

type chainSpec struct {
	name   string
	typ    nftables.ChainType
	hook   *nftables.ChainHook
	prio   *nftables.ChainPriority
	policy nftables.ChainPolicy
	rules  []ruleSpec
}

type tableSpec struct {
	name   string
	family nftables.TableFamily
	sets   []setSpec
	chains []chainSpec
}

// setSpec is a named set of the table (of a concatenated type); rules refer to it by name (a
// lookupSet expression). Rules that use a set carry a digest of its
// elements in their key, so a changed set is a changed table.
type setSpec struct {
	name  string
	typ   nftables.SetDatatype
	elems [][]byte
}

// syncTable makes table t exactly spec (nil: no table).
func syncTable(c *nftables.Conn, name string, family nftables.TableFamily, spec *tableSpec) error {
	cur, err := c.ListTableOfFamily(name, family)
	if err != nil && !errors.Is(err, os.ErrNotExist) && !isNoEnt(err) {
		return fmt.Errorf("nftables: list table %s: %w", name, err)
	}
	if err != nil {
		cur = nil
	}
	if spec == nil {
		if cur == nil {
			return nil
		}
		c.DelTable(cur)
		if err := c.Flush(); err != nil {
			return fmt.Errorf("nftables: delete table %s: %w", name, err)
		}
		return nil
	}
	if cur != nil {
		same, err := tableMatches(c, cur, spec)
		if err != nil {
			return err
		}
		if same {
			return nil
		}
		c.DelTable(cur)
	}
	t := c.AddTable(&nftables.Table{Name: spec.name, Family: spec.family})
	sets := map[string]*nftables.Set{}
	for _, ss := range spec.sets {
		set := &nftables.Set{Table: t, Name: ss.name, KeyType: ss.typ, Concatenation: true}
		var elems []nftables.SetElement
		for _, e := range ss.elems {
			elems = append(elems, nftables.SetElement{Key: e})
		}
		if err := c.AddSet(set, elems); err != nil {
			return fmt.Errorf("nftables: table %s: set %s: %w", name, ss.name, err)
		}
		sets[ss.name] = set
	}
	for _, cs := range spec.chains {
		for _, r := range cs.rules {
			for _, e := range r.exprs {
				if lk, ok := e.(*expr.Lookup); ok {
					set := sets[lk.SetName]
					if set == nil {
						return fmt.Errorf("nftables: table %s: rule %q: no set %s", name, r.key, lk.SetName)
					}
					lk.SetID = set.ID
				}
			}
		}
	}
	for _, cs := range spec.chains {
		pol := cs.policy
		ch := c.AddChain(&nftables.Chain{Name: cs.name, Table: t, Type: cs.typ, Hooknum: cs.hook, Priority: cs.prio, Policy: &pol})
		for _, r := range cs.rules {
			c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: r.exprs, UserData: []byte(r.key)})
		}
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("nftables: program table %s: %w", name, err)
	}
	return nil
}

func isNoEnt(err error) bool {
	var errno unix.Errno
	return errors.As(err, &errno) && errno == unix.ENOENT
}

func tableMatches(c *nftables.Conn, t *nftables.Table, spec *tableSpec) (bool, error) {
	chains, err := c.ListChainsOfTableFamily(t.Family)
	if err != nil {
		return false, fmt.Errorf("nftables: list chains of %s: %w", t.Name, err)
	}
	var mine []*nftables.Chain
	for _, ch := range chains {
		if ch.Table.Name == t.Name {
			mine = append(mine, ch)
		}
	}
	if len(mine) != len(spec.chains) {
		return false, nil
	}
	for _, cs := range spec.chains {
		i := slices.IndexFunc(mine, func(ch *nftables.Chain) bool { return ch.Name == cs.name })
		if i < 0 {
			return false, nil
		}
		ch := mine[i]
		if ch.Type != cs.typ || ch.Hooknum == nil || *ch.Hooknum != *cs.hook || ch.Priority == nil || *ch.Priority != *cs.prio ||
			ch.Policy == nil || *ch.Policy != cs.policy {
			return false, nil
		}
		rules, err := c.GetRules(t, ch)
		if err != nil {
			return false, fmt.Errorf("nftables: list rules of %s/%s: %w", t.Name, cs.name, err)
		}
		if len(rules) != len(cs.rules) {
			return false, nil
		}
		for j, r := range rules {
			if string(r.UserData) != cs.rules[j].key {
				return false, nil
			}
		}
	}
	return true, nil
}

// Expression builders.

func ifname(name string) []byte {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, name)
	return b
}

func matchIif(name string) []expr.Any {
	return []expr.Any{&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1}, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: ifname(name)}}
}

func matchOif(name string) []expr.Any {
	return []expr.Any{&expr.Meta{Key: expr.MetaKeyOIFNAME, Register: 1}, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: ifname(name)}}
}

// matchIifPrefix/matchOifPrefix match names starting with prefix (nft's
// "pv*"): cmp compares only len(prefix) bytes.
func matchIifPrefix(prefix string) []expr.Any {
	return []expr.Any{&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1}, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte(prefix)}}
}

func matchOifPrefix(prefix string) []expr.Any {
	return []expr.Any{&expr.Meta{Key: expr.MetaKeyOIFNAME, Register: 1}, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte(prefix)}}
}

func loadPayload(base expr.PayloadBase, off, n uint32) *expr.Payload {
	return &expr.Payload{OperationType: expr.PayloadLoad, DestRegister: 1, Base: base, Offset: off, Len: n}
}

func matchBytes(base expr.PayloadBase, off uint32, val []byte) []expr.Any {
	return []expr.Any{loadPayload(base, off, uint32(len(val))), &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: val}}
}

func matchMasked(base expr.PayloadBase, off uint32, mask, val []byte) []expr.Any {
	return []expr.Any{
		loadPayload(base, off, uint32(len(val))),
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: uint32(len(val)), Mask: mask, Xor: make([]byte, len(val))},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: val},
	}
}

func setBytes(base expr.PayloadBase, off uint32, val []byte) []expr.Any {
	return []expr.Any{
		&expr.Immediate{Register: 1, Data: val},
		&expr.Payload{OperationType: expr.PayloadWrite, SourceRegister: 1, Base: base, Offset: off, Len: uint32(len(val))},
	}
}

var (
	etherDst   = uint32(0)
	etherSrc   = uint32(6)
	etherType  = uint32(12)
	arpOp      = uint32(6)
	arpSHA     = uint32(8)
	arpSPA     = uint32(14)
	arpTPA     = uint32(24)
	ipSrc      = uint32(12)
	ipDst      = uint32(16)
	ll         = expr.PayloadBaseLLHeader
	nh         = expr.PayloadBaseNetworkHeader
	macMask24  = []byte{0xff, 0xff, 0xff, 0, 0, 0}
	etherARP   = []byte{0x08, 0x06}
	arpRequest = []byte{0, 1}
	arpReply   = []byte{0, 2}
)

func gwMACPrefixBytes() []byte {
	return []byte{gatewayMACPrefix[0], gatewayMACPrefix[1], gatewayMACPrefix[2], 0, 0, 0}
}

func matchSrcPrefix(p netip.Prefix) []expr.Any {
	a := p.Addr().As4()
	return matchMasked(nh, ipSrc, net.CIDRMask(p.Bits(), 32), a[:])
}

func matchIP(off uint32, a netip.Addr) []expr.Any {
	b := a.As4()
	return matchBytes(nh, off, b[:])
}

func ctStateEstablished() []expr.Any {
	mask := make([]byte, 4)
	binary.NativeEndian.PutUint32(mask, expr.CtStateBitESTABLISHED|expr.CtStateBitRELATED)
	return []expr.Any{
		&expr.Ct{Key: expr.CtKeySTATE, Register: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: mask, Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: make([]byte, 4)},
	}
}

func ctStatusDNAT() []expr.Any {
	mask := make([]byte, 4)
	binary.NativeEndian.PutUint32(mask, 0x20) // IPS_DST_NAT
	return []expr.Any{
		&expr.Ct{Key: expr.CtKeySTATUS, Register: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: mask, Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: make([]byte, 4)},
	}
}

func natTo(typ expr.NATType, a netip.Addr) []expr.Any {
	b := a.As4()
	return []expr.Any{
		&expr.Immediate{Register: 1, Data: b[:]},
		&expr.NAT{Type: typ, Family: unix.NFPROTO_IPV4, RegAddrMin: 1, RegAddrMax: 1, Specified: true},
	}
}

func verdict(k expr.VerdictKind) expr.Any { return &expr.Verdict{Kind: k} }

func cat(parts ...[]expr.Any) []expr.Any {
	var out []expr.Any
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func one(e expr.Any) []expr.Any { return []expr.Any{e} }

// Registers for concatenations: 32-bit registers, a component at a
// 4-byte boundary (an interface name takes four, a MAC two).
const (
	reg32a = unix.NFT_REG32_00
	reg32b = unix.NFT_REG32_00 + 4
)

// notInSet loads the input interface's name and the payload at base/off
// (n bytes) and matches when that pair is not in set.
func ifPairNotInSet(base expr.PayloadBase, off, n uint32, set string) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: reg32a},
		&expr.Payload{OperationType: expr.PayloadLoad, DestRegister: reg32b, Base: base, Offset: off, Len: n},
		&expr.Lookup{SourceRegister: reg32a, SetName: set, Invert: true},
	}
}

// pad4 pads b with zeros to a multiple of 4 bytes (a concatenation's
// component).
func pad4(b []byte) []byte {
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}
