package rules

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// addrSet is a header address: any, or a list of prefixes with negations.
type addrSet struct {
	any      bool
	pos, neg []netip.Prefix

	v4   []v4Range      // addrindex.go: pos's IPv4 ranges, sorted; nil: not indexed
	pos6 []netip.Prefix // pos's IPv6 prefixes when indexed
}

func (a *addrSet) match(ip netip.Addr) bool {
	if a.any {
		return true
	}
	ok := len(a.pos) == 0
	if a.v4 != nil {
		ok = a.matchIndexed(ip)
	} else {
		for _, p := range a.pos {
			if p.Contains(ip) {
				ok = true
				break
			}
		}
	}
	if !ok {
		return false
	}
	for _, p := range a.neg {
		if p.Contains(ip) {
			return false
		}
	}
	return true
}

type portRange struct{ lo, hi uint16 }

type portSet struct {
	any      bool
	pos, neg []portRange
}

func (s *portSet) match(p uint16) bool {
	if s.any {
		return true
	}
	ok := len(s.pos) == 0
	for _, r := range s.pos {
		if p >= r.lo && p <= r.hi {
			ok = true
			break
		}
	}
	if !ok {
		return false
	}
	for _, r := range s.neg {
		if p >= r.lo && p <= r.hi {
			return false
		}
	}
	return true
}

var errDepth = errors.New("variables nest too deep")

// expand resolves $VARS in a header field, recursively.
func expand(s string, vars Vars, depth int) (string, error) {
	if depth > 8 {
		return "", errDepth
	}
	if !strings.Contains(s, "$") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' {
			b.WriteByte(s[i])
			continue
		}
		j := i + 1
		for j < len(s) && (s[j] == '_' || s[j] >= 'A' && s[j] <= 'Z' || s[j] >= 'a' && s[j] <= 'z' || s[j] >= '0' && s[j] <= '9') {
			j++
		}
		name := s[i+1 : j]
		v, ok := vars[name]
		if !ok {
			return "", fmt.Errorf("undefined variable $%s", name)
		}
		v, err := expand(v, vars, depth+1)
		if err != nil {
			return "", err
		}
		b.WriteString(v)
		i = j - 1
	}
	return b.String(), nil
}

// splitList splits "[a,[b,c],!d]" at top-level commas.
func splitList(s string) ([]string, error) {
	s = strings.TrimSpace(s)
	if !strings.HasPrefix(s, "[") {
		return []string{s}, nil
	}
	if !strings.HasSuffix(s, "]") {
		return nil, fmt.Errorf("unbalanced brackets in %q", s)
	}
	s = s[1 : len(s)-1]
	var out []string
	depth, start := 0, 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '[':
			depth++
		case ']':
			depth--
			if depth < 0 {
				return nil, fmt.Errorf("unbalanced brackets")
			}
		case ',':
			if depth == 0 {
				out = append(out, strings.TrimSpace(s[start:i]))
				start = i + 1
			}
		}
	}
	if depth != 0 {
		return nil, fmt.Errorf("unbalanced brackets")
	}
	return append(out, strings.TrimSpace(s[start:])), nil
}

func parseAddr(field string, vars Vars) (addrSet, error) {
	s, err := expand(field, vars, 0)
	if err != nil {
		return addrSet{}, err
	}
	var a addrSet
	if err := a.add(s, false, 0); err != nil {
		return addrSet{}, fmt.Errorf("address %q: %v", field, err)
	}
	if !a.any && len(a.pos) == 0 && len(a.neg) == 0 {
		return addrSet{}, fmt.Errorf("address %q is empty", field)
	}
	a.index()
	return a, nil
}

func (a *addrSet) add(s string, neg bool, depth int) error {
	if depth > 8 {
		return errDepth
	}
	s = strings.TrimSpace(s)
	for strings.HasPrefix(s, "!") {
		neg = !neg
		s = strings.TrimSpace(s[1:])
	}
	if strings.HasPrefix(s, "[") {
		items, err := splitList(s)
		if err != nil {
			return err
		}
		for _, it := range items {
			if err := a.add(it, neg, depth+1); err != nil {
				return err
			}
		}
		return nil
	}
	if s == "any" {
		if neg {
			return fmt.Errorf("!any matches nothing")
		}
		a.any = true
		return nil
	}
	var p netip.Prefix
	var err error
	if strings.Contains(s, "/") {
		p, err = netip.ParsePrefix(s)
		if err == nil {
			p = p.Masked()
		}
	} else {
		var ip netip.Addr
		ip, err = netip.ParseAddr(s)
		if err == nil {
			p = netip.PrefixFrom(ip, ip.BitLen())
		}
	}
	if err != nil {
		return fmt.Errorf("bad address %q", s)
	}
	if neg {
		a.neg = append(a.neg, p)
	} else {
		a.pos = append(a.pos, p)
	}
	// "[any, !x]" means everything but x.
	if a.any && len(a.neg) > 0 {
		a.any = false
	}
	return nil
}

func parsePorts(field string, vars Vars) (portSet, error) {
	s, err := expand(field, vars, 0)
	if err != nil {
		return portSet{}, err
	}
	var ps portSet
	if err := ps.add(s, false, 0); err != nil {
		return portSet{}, fmt.Errorf("port %q: %v", field, err)
	}
	return ps, nil
}

func (ps *portSet) add(s string, neg bool, depth int) error {
	if depth > 8 {
		return errDepth
	}
	s = strings.TrimSpace(s)
	for strings.HasPrefix(s, "!") {
		neg = !neg
		s = strings.TrimSpace(s[1:])
	}
	if strings.HasPrefix(s, "[") {
		items, err := splitList(s)
		if err != nil {
			return err
		}
		for _, it := range items {
			if err := ps.add(it, neg, depth+1); err != nil {
				return err
			}
		}
		return nil
	}
	if s == "any" {
		if neg {
			return fmt.Errorf("!any matches nothing")
		}
		ps.any = true
		return nil
	}
	r := portRange{0, 65535}
	lo, hi, isRange := strings.Cut(s, ":")
	var err error
	if lo != "" {
		r.lo, err = port(lo)
		if err != nil {
			return err
		}
	}
	switch {
	case !isRange:
		r.hi = r.lo
	case hi != "":
		r.hi, err = port(hi)
		if err != nil {
			return err
		}
	}
	if r.lo > r.hi {
		return fmt.Errorf("empty port range %q", s)
	}
	if neg {
		ps.neg = append(ps.neg, r)
	} else {
		ps.pos = append(ps.pos, r)
	}
	if ps.any && len(ps.neg) > 0 {
		ps.any = false
	}
	return nil
}

func port(s string) (uint16, error) {
	n, err := strconv.ParseUint(strings.TrimSpace(s), 10, 16)
	if err != nil {
		return 0, fmt.Errorf("bad port %q", s)
	}
	return uint16(n), nil
}

// protocols maps a header protocol to the IP protocol and application
// protocol it implies.
var protocols = map[string]struct {
	ip  uint8
	app string
}{
	"ip": {0, ""}, "tcp": {6, ""}, "udp": {17, ""}, "icmp": {1, ""},
	"tcp-pkt": {6, ""}, "tcp-stream": {6, ""},
	"http": {6, "http"}, "tls": {6, "tls"}, "dns": {0, "dns"},
	"smtp": {6, "smtp"}, "ftp": {6, "ftp"}, "pop3": {6, "pop3"}, "imap": {6, "imap"},
	"ssh": {6, "ssh"},
}
