package beacon

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Ignore names destinations whose periodic connections are not beaconing:
// an address or prefix, with or without a port, or a port alone. The
// engine skips them before Observe.
type Ignore struct {
	Prefix netip.Prefix // invalid: any address
	Port   uint16       // 0: any port
}

// Matches reports whether connections to server fall under ig.
func (ig Ignore) Matches(server netip.AddrPort) bool {
	return (ig.Port == 0 || ig.Port == server.Port()) && (!ig.Prefix.IsValid() || ig.Prefix.Contains(server.Addr()))
}

// ParseIgnore reads one entry: "10.0.0.0/8", "198.18.2.25",
// "198.18.2.25:993", "[2001:db8::1]:443" or ":993".
func ParseIgnore(s string) (Ignore, error) {
	if p, ok := strings.CutPrefix(s, ":"); ok {
		n, err := strconv.ParseUint(p, 10, 16)
		if err != nil || n == 0 {
			return Ignore{}, fmt.Errorf("beacon ignore %q: %q is not a port", s, p)
		}
		return Ignore{Port: uint16(n)}, nil
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return Ignore{Prefix: netip.PrefixFrom(ap.Addr(), ap.Addr().BitLen()), Port: ap.Port()}, nil
	}
	if p, err := netip.ParsePrefix(s); err == nil {
		return Ignore{Prefix: p.Masked()}, nil
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return Ignore{Prefix: netip.PrefixFrom(a, a.BitLen())}, nil
	}
	return Ignore{}, fmt.Errorf("beacon ignore %q: want an address, a prefix, address:port or :port", s)
}
