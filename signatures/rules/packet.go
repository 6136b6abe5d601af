package rules

import (
	"fmt"
	"strconv"
	"strings"
)

// Packet keywords: dsize, urilen, flags, ttl, itype, icode, ip_proto,
// app-layer-protocol. They test the packet facts of the Input (PayloadLen,
// TTL, TCPFlags, ICMPType, ICMPCode, Proto, App) or a buffer's length, at a
// comparison each, before the payload lists.

type pktKind uint8

const (
	pDsize pktKind = iota
	pURILen
	pFlags
	pTTL
	pIType
	pICode
	pIPProto
	pAppProto
	pStreamSize // session.go
	pSSLVersion
	pSSLState
	pIPID
	pICMPID
	pICMPSeq
	pFileName // file.go
	pFileExt
	pFileMagic
	pFileSize
	pFileHash
)

// pktCheck is one packet keyword.
type pktCheck struct {
	kind pktKind
	rng  uintRange
	buf  Buffer // urilen

	// flags
	flags, mask uint8 // mask: the bits that count (the rest ignored)
	mod         byte  // 0 exact, '+' all these and any others, '*' any of these, '!' not all of these

	app    string // app-layer-protocol
	negApp bool

	side  byte   // stream_size: 's' server, 'c' client, 'b' both, 'e' either
	bits  uint32 // ssl_version, ssl_state: the named values; ssl_state: negated ones in mask2
	mask2 uint32
	str   string    // filename, fileext, filemagic (lowercase where caseless)
	neg   bool      // filename, fileext, filemagic, filemd5/sha1/sha256: !
	hash  *hashList // filemd5, filesha1, filesha256
}

// TCP flag bits as on the wire.
const (
	tcpFIN = 0x01
	tcpSYN = 0x02
	tcpRST = 0x04
	tcpPSH = 0x08
	tcpACK = 0x10
	tcpURG = 0x20
	tcpECE = 0x40
	tcpCWR = 0x80
)

var tcpFlagBits = map[byte]uint8{
	'F': tcpFIN, 'S': tcpSYN, 'R': tcpRST, 'P': tcpPSH, 'A': tcpACK, 'U': tcpURG,
	'E': tcpECE, 'C': tcpCWR, '2': tcpECE, '1': tcpCWR,
}

var ipProtoNames = map[string]uint64{
	"ip": 0, "icmp": 1, "igmp": 2, "tcp": 6, "udp": 17, "ipv6": 41, "gre": 47,
	"esp": 50, "ah": 51, "ipv6-icmp": 58, "icmpv6": 58, "sctp": 132,
}

func init() {
	rangeKW := func(kind pktKind, limit uint64) optionFunc {
		return func(p *ruleParser, v string) error {
			rg, err := parseRange(v, limit)
			if err != nil {
				return err
			}
			p.r.pkt = append(p.r.pkt, pktCheck{kind: kind, rng: rg})
			return nil
		}
	}
	keywords["dsize"] = rangeKW(pDsize, 65535)
	keywords["ttl"] = rangeKW(pTTL, 255)
	keywords["itype"] = rangeKW(pIType, 255)
	keywords["icode"] = rangeKW(pICode, 255)
	keywords["urilen"] = urilenOpt
	keywords["flags"] = flagsOpt
	keywords["ip_proto"] = ipProtoOpt
	keywords["app-layer-protocol"] = appProtoOpt
}

func urilenOpt(p *ruleParser, v string) error {
	val, norm, _ := strings.Cut(v, ",")
	c := pktCheck{kind: pURILen, buf: BufHTTPURI}
	switch strings.TrimSpace(norm) {
	case "", "norm":
	case "raw":
		c.buf = BufHTTPRawURI
	default:
		return fmt.Errorf("%q is neither raw nor norm", norm)
	}
	rg, err := parseRange(val, 65535)
	if err != nil {
		return err
	}
	c.rng = rg
	p.r.pkt = append(p.r.pkt, c)
	if p.r.app == "" {
		p.r.app = "http"
	}
	return nil
}

// flagsOpt parses flags:[!+*]FSRPAUCE12 or 0[,mask], the modifier before
// or after the letters; the mask names bits to ignore.
func flagsOpt(p *ruleParser, v string) error {
	set, ignore, hasMask := strings.Cut(v, ",")
	set = strings.TrimSpace(set)
	c := pktCheck{kind: pFlags, mask: 0xff}
	if set == "" {
		return fmt.Errorf("no flags")
	}
	for i := 0; i < len(set); i++ {
		ch := set[i]
		switch ch {
		case '!', '+', '*':
			if c.mod != 0 {
				return fmt.Errorf("%q has two modifiers", set)
			}
			c.mod = ch
		case '0':
			if len(strings.Trim(set, "!+*")) != 1 {
				return fmt.Errorf("0 (no flags) cannot be combined with flags in %q", set)
			}
		default:
			b, ok := tcpFlagBits[ch]
			if !ok {
				return fmt.Errorf("unknown flag %q in %q (want F S R P A U C E 1 2 0 and ! + *)", ch, set)
			}
			c.flags |= b
		}
	}
	if hasMask {
		ignore = strings.TrimSpace(ignore)
		if ignore == "" {
			return fmt.Errorf("empty mask after ','")
		}
		for i := 0; i < len(ignore); i++ {
			b, ok := tcpFlagBits[ignore[i]]
			if !ok {
				return fmt.Errorf("unknown flag %q in mask %q", ignore[i], ignore)
			}
			c.mask &^= b
		}
	}
	p.r.pkt = append(p.r.pkt, c)
	if p.r.ipProto == 0 {
		p.r.ipProto = 6
	}
	return nil
}

func ipProtoOpt(p *ruleParser, v string) error {
	v = strings.TrimSpace(v)
	prefix := ""
	for _, op := range []string{"!", "<", ">"} {
		if rest, ok := strings.CutPrefix(v, op); ok {
			prefix, v = op, strings.TrimSpace(rest)
			break
		}
	}
	n, ok := ipProtoNames[strings.ToLower(v)]
	if !ok {
		x, err := strconv.ParseUint(v, 10, 8)
		if err != nil {
			return fmt.Errorf("%q is neither a protocol number nor a known name", v)
		}
		n = x
	}
	rg, err := parseRange(prefix+strconv.FormatUint(n, 10), 255)
	if err != nil {
		return err
	}
	p.r.pkt = append(p.r.pkt, pktCheck{kind: pIPProto, rng: rg})
	if prefix == "" && p.r.ipProto == 0 && n != 0 {
		// "ip ... ip_proto:41" can match protocol 41 alone: grouped
		// with it, the rule is not walked for every other packet (the
		// check above stays, for ip_proto:1 against ICMPv6).
		p.r.ipProto = uint8(n)
	}
	return nil
}

func appProtoOpt(p *ruleParser, v string) error {
	v = strings.TrimSpace(v)
	c := pktCheck{kind: pAppProto}
	if rest, ok := strings.CutPrefix(v, "!"); ok {
		c.negApp, v = true, strings.TrimSpace(rest)
	}
	if v == "" || strings.ContainsAny(v, " ,") {
		return fmt.Errorf("%q is not one protocol name", v)
	}
	c.app = strings.ToLower(v)
	p.r.pkt = append(p.r.pkt, c)
	return nil
}

// packetOK runs the rule's packet keywords.
func (r *Rule) packetOK(in *Input) bool {
	for i := range r.pkt {
		c := &r.pkt[i]
		switch c.kind {
		case pDsize:
			if !c.rng.match(uint64(in.PayloadLen)) {
				return false
			}
		case pURILen:
			b := in.Buf[c.buf]
			if b == nil || !c.rng.match(uint64(len(b))) {
				return false
			}
		case pFlags:
			if in.Proto != 6 {
				return false
			}
			f := in.TCPFlags & c.mask
			var ok bool
			switch c.mod {
			case '*':
				ok = f&c.flags != 0
			case '+':
				ok = f&c.flags == c.flags
			case '!':
				ok = f&c.flags != c.flags
			default:
				ok = f == c.flags
			}
			if !ok {
				return false
			}
		case pTTL:
			if !c.rng.match(uint64(in.TTL)) {
				return false
			}
		case pIType, pICode:
			if in.Proto != 1 && in.Proto != 58 {
				return false
			}
			x := in.ICMPType
			if c.kind == pICode {
				x = in.ICMPCode
			}
			if !c.rng.match(uint64(x)) {
				return false
			}
		case pIPProto:
			if !c.rng.match(uint64(in.Proto)) {
				return false
			}
		case pAppProto:
			if (in.App == c.app) == c.negApp {
				return false
			}
		case pStreamSize, pSSLVersion, pSSLState, pIPID, pICMPID, pICMPSeq:
			if !c.sessionOK(in) { // session.go
				return false
			}
		default:
			if !c.fileOK(in.File) { // file.go
				return false
			}
		}
	}
	return true
}
