package network

import (
	"errors"
	"net/netip"
	"regexp"
	"testing"

	"github.com/photon-cloud/photon/api"
)

func TestParseCIDR(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"192.168.0.1/24", "192.168.0.0/24"},
		{"10.10.0.0/16", "10.10.0.0/16"},
		{" 10.1.2.3/8 ", "10.0.0.0/8"},
		{"10.0.0.0/7", ""},
		{"10.0.0.0", ""},
		{"fd00::/64", ""},
		{"::ffff:10.0.0.0/104", ""},
		{"10.0.0.0/33", ""},
		{"169.254.64.0/24", ""},    // the hosts' transit links (netplumb)
		{"169.254.127.248/29", ""}, // its last /29
		{"169.254.0.0/16", ""},     // containing it
		{"169.254.128.0/24", "169.254.128.0/24"},
	} {
		p, err := ParseCIDR("f", tc.in)
		if tc.want == "" {
			var ae *api.Error
			if !errors.As(err, &ae) || ae.Data["field"] != "f" {
				t.Errorf("ParseCIDR(%q) = %v, %v; want an error naming f", tc.in, p, err)
			}
			continue
		}
		if err != nil || p.String() != tc.want {
			t.Errorf("ParseCIDR(%q) = %v, %v; want %s", tc.in, p, err, tc.want)
		}
	}
	p := netip.MustParsePrefix("10.10.1.0/29")
	if capacity(p) != 5 || Gateway(p).String() != "10.10.1.1" || portAddr(p, 0).String() != "10.10.1.2" || portAddr(p, 4).String() != "10.10.1.6" {
		t.Errorf("/29: capacity %d gateway %s first %s last %s", capacity(p), Gateway(p), portAddr(p, 0), portAddr(p, 4))
	}
	if m := Netmask(29); m != "255.255.255.248" {
		t.Errorf("Netmask(29) = %s", m)
	}
}

var macRE = regexp.MustCompile(`^fa(:[0-9a-f]{2}){5}$`)

// FuzzParseCIDR: any input is refused with an API error naming the field,
// or is an IPv4 prefix of at most /8 with its host bits cleared, whose
// gateway and port addresses lie inside it, apart from its network and
// broadcast addresses, and whose ports' MACs are locally administered
// unicast addresses, distinct for distinct addresses.
func FuzzParseCIDR(f *testing.F) {
	for _, s := range []string{"192.168.0.1/24", "10.0.0.0/8", "10.0.0.0/30", "1.2.3.4/32", "0.0.0.0/0", "fd00::/8", "x", "", "10.0.0.0/08", "01.2.3.4/24"} {
		f.Add(s, uint32(7))
	}
	f.Fuzz(func(t *testing.T, s string, off uint32) {
		p, err := ParseCIDR("privateIpCidr", s)
		if err != nil {
			var ae *api.Error
			if !errors.As(err, &ae) || ae.Data["field"] != "privateIpCidr" || ae.Status() != 400 {
				t.Fatalf("ParseCIDR(%q): %v", s, err)
			}
			return
		}
		if !p.Addr().Is4() || p != p.Masked() || p.Bits() < 8 || p.Bits() > 32 {
			t.Fatalf("ParseCIDR(%q) = %v", s, p)
		}
		if q, err := ParseCIDR("f", p.String()); err != nil || q != p {
			t.Fatalf("%v does not parse back: %v %v", p, q, err)
		}
		if p.Bits() > 30 {
			return // no room for ports
		}
		n := capacity(p)
		first, last := span(p)
		o := off % n
		a := portAddr(p, o)
		if !p.Contains(a) || !p.Contains(Gateway(p)) || a == Gateway(p) || a == addr(first) || a == addr(last) {
			t.Fatalf("%v: port %d at %v (gateway %v)", p, o, a, Gateway(p))
		}
		mac := MAC(off, a)
		if !macRE.MatchString(mac) {
			t.Fatalf("MAC %q", mac)
		}
		if o+1 < n && MAC(off, portAddr(p, o+1)) == mac {
			t.Fatalf("%v: ports %d and %d share MAC %s", p, o, o+1, mac)
		}
	})
}

func TestParseRange(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		size     uint32
	}{
		{"203.0.113.10-203.0.113.50", "203.0.113.10-203.0.113.50", 41},
		{" 203.0.113.10 - 203.0.113.10 ", "203.0.113.10-203.0.113.10", 1},
		{"203.0.113.0/28", "203.0.113.1-203.0.113.14", 14},
		{"203.0.113.7/32", "203.0.113.7-203.0.113.7", 1},
		{"", "", 0},
		{"203.0.113.50-203.0.113.10", "!", 0},
		{"10.0.0.0/8", "!", 0},
		{"10.0.0.0-10.2.0.0", "!", 0},
		{"fd00::1-fd00::5", "!", 0},
		{"0.0.0.0/32", "!", 0},
		{"x-y", "!", 0},
	} {
		r, err := ParseRange(tc.in)
		if tc.want == "!" {
			if err == nil {
				t.Errorf("ParseRange(%q) = %v, want an error", tc.in, r)
			}
			continue
		}
		if err != nil || r.String() != tc.want || r.Size() != tc.size {
			t.Errorf("ParseRange(%q) = %v (%d), %v; want %s (%d)", tc.in, r, r.Size(), err, tc.want, tc.size)
		}
	}
}

// FuzzParseRange: a range is refused with an API error naming the flag's
// field, or is 1 to MaxFloatingRange IPv4 addresses, First to Last, that
// parse back to itself.
func FuzzParseRange(f *testing.F) {
	for _, s := range []string{"203.0.113.10-203.0.113.50", "203.0.113.0/28", "1.2.3.4-1.2.3.3", "-", "0.0.0.0/0", "255.255.255.255/32", "10.0.0.0/16"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRange(s)
		if err != nil {
			var ae *api.Error
			if !errors.As(err, &ae) || ae.Data["field"] != "floatingIpRange" {
				t.Fatalf("ParseRange(%q): %v", s, err)
			}
			return
		}
		if r.Size() == 0 {
			if r.First.IsValid() {
				t.Fatalf("ParseRange(%q) = %v: empty", s, r)
			}
			return
		}
		if !r.First.Is4() || !r.Last.Is4() || r.Last.Less(r.First) || r.Size() > MaxFloatingRange || r.At(r.Size()-1) != r.Last {
			t.Fatalf("ParseRange(%q) = %v (%d)", s, r, r.Size())
		}
		if q, err := ParseRange(r.String()); err != nil || q != r {
			t.Fatalf("%v does not parse back: %v %v", r, q, err)
		}
	})
}
