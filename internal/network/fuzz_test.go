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
