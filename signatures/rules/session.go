package rules

import (
	"fmt"
	"strconv"
	"strings"
)

// Session and header keywords on Input facts the engine fills per packet:
//
//	stream_size:<server|client|both|either>,<op>,<n>   Input.StreamBytesToClient (server) / ToServer (client)
//	ssl_version:[!]sslv2|sslv3|tls1.0|tls1.1|tls1.2|tls1.3[,...]   Input.TLSVersion
//	ssl_state:[!]client_hello|server_hello|client_keyx|server_keyx|unknown[|...]   Input.TLSState
//	id:<n>          Input.IPID (IPv4 identification)
//	icmp_id:<n>     Input.ICMPID  (echo request/reply only)
//	icmp_seq:<n>    Input.ICMPSeq (echo request/reply only)
//	tag:...         accepted, no effect; counted in Set.Ignored
//
// Each is one comparison in the rule's packet checks (packet.go).

// TLS handshake messages for Input.TLSState and ssl_state.
const (
	TLSClientHello uint8 = 1 << iota
	TLSServerHello
	TLSClientKeyX
	TLSServerKeyX
	TLSUnknown // a handshake message of another type
)

var sslStates = map[string]uint32{
	"client_hello": uint32(TLSClientHello), "server_hello": uint32(TLSServerHello),
	"client_keyx": uint32(TLSClientKeyX), "server_keyx": uint32(TLSServerKeyX), "unknown": uint32(TLSUnknown),
}

// sslVersions maps ssl_version names to their bit in pktCheck.bits.
var sslVersions = map[string]uint16{
	"sslv2": 0x0200, "sslv3": 0x0300, "tls1.0": 0x0301, "tls1.1": 0x0302, "tls1.2": 0x0303, "tls1.3": 0x0304,
}

func sslVersionBit(v uint16) uint32 {
	switch {
	case v == 0x0200 || v == 0x0002: // SSLv2 record version
		return 1
	case v >= 0x0300 && v <= 0x0304:
		return 2 << (v - 0x0300)
	}
	return 0
}

func init() {
	keywords["stream_size"] = streamSizeOpt
	keywords["ssl_version"] = sslVersionOpt
	keywords["ssl_state"] = sslStateOpt
	keywords["id"] = u16Opt(pIPID)
	keywords["icmp_id"] = u16Opt(pICMPID)
	keywords["icmp_seq"] = u16Opt(pICMPSeq)
	keywords["tag"] = ignoredOpt("tag")
}

// ignoredOpt accepts a keyword that has no effect on an inline box (tag
// asks Suricata to log the following packets) and notes it on the rule.
func ignoredOpt(name string) optionFunc {
	return func(p *ruleParser, v string) error {
		p.r.ignored = append(p.r.ignored, name)
		return nil
	}
}

func u16Opt(kind pktKind) optionFunc {
	return func(p *ruleParser, v string) error {
		n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 16)
		if err != nil {
			return fmt.Errorf("%q is not a number 0..65535", v)
		}
		p.r.pkt = append(p.r.pkt, pktCheck{kind: kind, rng: uintRange{op: "=", lo: n}})
		return nil
	}
}

// streamSizeOpt parses stream_size:<side>,<op>,<bytes> with op one of
// < > = != <= >=.
func streamSizeOpt(p *ruleParser, v string) error {
	f := strings.Split(v, ",")
	if len(f) != 3 {
		return fmt.Errorf("%q: want <server|client|both|either>,<op>,<bytes>", v)
	}
	c := pktCheck{kind: pStreamSize}
	switch strings.TrimSpace(f[0]) {
	case "server":
		c.side = 's'
	case "client":
		c.side = 'c'
	case "both":
		c.side = 'b'
	case "either":
		c.side = 'e'
	default:
		return fmt.Errorf("side %q is not server, client, both or either", strings.TrimSpace(f[0]))
	}
	op := strings.TrimSpace(f[1])
	switch op {
	case "<", ">", "=", "<=", ">=":
	case "!=":
		op = "!"
	default:
		return fmt.Errorf("operator %q is not one of < > = != <= >=", op)
	}
	n, err := strconv.ParseUint(strings.TrimSpace(f[2]), 10, 32)
	if err != nil {
		return fmt.Errorf("%q is not a byte count", strings.TrimSpace(f[2]))
	}
	c.rng = uintRange{op: op, lo: n}
	p.r.pkt = append(p.r.pkt, c)
	if p.r.ipProto == 0 {
		p.r.ipProto = 6
	}
	return nil
}

// sslVersionOpt parses ssl_version:v[,v...], each optionally negated:
// the rule matches when the session's version is one of the plain names,
// or is none of the negated ones (Suricata's reading).
func sslVersionOpt(p *ruleParser, v string) error {
	c := pktCheck{kind: pSSLVersion}
	for _, name := range strings.Split(v, ",") {
		name = strings.ToLower(strings.TrimSpace(name))
		neg := false
		if rest, ok := strings.CutPrefix(name, "!"); ok {
			neg, name = true, strings.TrimSpace(rest)
		}
		ver, ok := sslVersions[name]
		if !ok {
			return fmt.Errorf("%q is not one of sslv2 sslv3 tls1.0 tls1.1 tls1.2 tls1.3", name)
		}
		if neg {
			c.mask2 |= sslVersionBit(ver)
		} else {
			c.bits |= sslVersionBit(ver)
		}
	}
	p.r.pkt = append(p.r.pkt, c)
	return nil
}

// sslStateOpt parses ssl_state:s[|s...] (each optionally negated). As in
// Suricata, it matches when (named & current) ^ negated != 0: a plain name
// is a message seen in this packet, a negated one a message not seen.
func sslStateOpt(p *ruleParser, v string) error {
	c := pktCheck{kind: pSSLState}
	for _, name := range strings.Split(v, "|") {
		name = strings.ToLower(strings.TrimSpace(name))
		neg := false
		if rest, ok := strings.CutPrefix(name, "!"); ok {
			neg, name = true, strings.TrimSpace(rest)
		}
		bit, ok := sslStates[name]
		if !ok {
			return fmt.Errorf("%q is not one of client_hello server_hello client_keyx server_keyx unknown", name)
		}
		c.bits |= bit
		if neg {
			c.mask2 |= bit
		}
	}
	p.r.pkt = append(p.r.pkt, c)
	return nil
}

// sessionOK runs one session keyword.
func (c *pktCheck) sessionOK(in *Input) bool {
	switch c.kind {
	case pStreamSize:
		if in.Proto != 6 {
			return false
		}
		srv, cli := c.rng.match(in.StreamBytesToClient), c.rng.match(in.StreamBytesToServer)
		switch c.side {
		case 's':
			return srv
		case 'c':
			return cli
		case 'b':
			return srv && cli
		default:
			return srv || cli
		}
	case pSSLVersion:
		bit := sslVersionBit(in.TLSVersion)
		if bit == 0 {
			return false // not TLS, or the version is not known yet
		}
		return bit&c.bits != 0 || c.mask2 != 0 && bit&c.mask2 == 0
	case pSSLState:
		return (c.bits&uint32(in.TLSState))^c.mask2 != 0
	case pIPID:
		return in.Src.Is4() && c.rng.match(uint64(in.IPID))
	case pICMPID, pICMPSeq:
		echo := in.Proto == 1 && (in.ICMPType == 0 || in.ICMPType == 8) ||
			in.Proto == 58 && (in.ICMPType == 128 || in.ICMPType == 129)
		x := in.ICMPID
		if c.kind == pICMPSeq {
			x = in.ICMPSeq
		}
		return echo && c.rng.match(uint64(x))
	}
	return false
}
