package rules

import (
	"bufio"
	_ "embed"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/openutm/utm/signatures/pcre"
)

// Action is what a matching rule asks for.
type Action uint8

// Actions.
const (
	Alert Action = iota
	Drop
	Reject
	Pass
)

func (a Action) String() string {
	return [...]string{"alert", "drop", "reject", "pass"}[a]
}

// Buffer names what a content inspects.
type Buffer uint8

// Buffers.
const (
	BufPayload Buffer = iota
	BufHTTPURI
	BufHTTPRawURI
	BufHTTPMethod
	BufHTTPHeader
	BufHTTPRawHeader
	BufHTTPCookie
	BufHTTPUserAgent
	BufHTTPHost
	BufHTTPRequestBody
	BufHTTPResponseBody
	BufHTTPStatCode
	BufHTTPStatMsg
	BufDNSQuery
	BufTLSSNI
	BufHTTPContentType  // Content-Type header value
	BufHTTPHeaderNames  // "\r\nName1\r\nName2\r\n\r\n", as Suricata
	BufHTTPRequestLine  // "GET /x HTTP/1.1"
	BufHTTPResponseLine // "HTTP/1.1 200 OK"
	BufHTTPReferer      // header values, one buffer each
	BufHTTPAccept
	BufHTTPAcceptEnc
	BufHTTPAcceptLang
	BufHTTPConnection
	BufHTTPProtocol // "HTTP/1.1"
	BufHTTPStart    // start line and headers, raw
	BufHTTPServer
	BufHTTPLocation
	BufHTTPContentLen
	BufHTTPRequestHeader  // request headers (the HTTP/2 keyword, served from HTTP/1 headers)
	BufHTTPResponseHeader // response headers
	BufTLSCertSubject
	BufTLSCertIssuer
	BufTLSCertSerial
	BufTLSCertFingerprint
	BufJA3Hash   // hex MD5 of the JA3 string
	BufJA3String // the JA3 string of the ClientHello
	BufJA3SHash
	BufFileName
	BufJA4Hash // the ClientHello's JA4 fingerprint ("t13d1516h2_8daaf6152771_e5627efa2ab1")
	NumBuffers
)

// Input is what one inspection offers the rules. The engine reuses one.
type Input struct {
	Proto            uint8  // 6, 17, 1, 58
	App              string // "", "http", "dns", "tls"
	Src, Dst         netip.Addr
	SrcPort, DstPort uint16
	ToServer         bool
	Established      bool
	Buf              [NumBuffers][]byte // nil: absent in this inspection

	// Packet facts for the packet keywords (packet.go): the packet this
	// inspection runs on.
	PayloadLen         int   // transport payload bytes (dsize)
	TTL                uint8 // IPv4 TTL / IPv6 hop limit (ttl)
	TCPFlags           uint8 // FIN 0x01 .. CWR 0x80 (flags); TCP only
	ICMPType, ICMPCode uint8 // itype, icode; ICMP/ICMPv6 only

	// Session and header facts (session.go); zero when unknown.
	IPID    uint16 // IPv4 identification (id); IPv4 only
	ICMPID  uint16 // echo request/reply identifier (icmp_id)
	ICMPSeq uint16 // echo request/reply sequence number (icmp_seq)
	// StreamBytesToServer and StreamBytesToClient are the TCP payload
	// bytes the client and the server have sent on this flow so far,
	// this packet included (stream_size: client and server).
	StreamBytesToServer, StreamBytesToClient uint64
	// TLSVersion is the flow's TLS version as on the wire (0x0300 SSLv3,
	// 0x0301 TLS 1.0 .. 0x0304 TLS 1.3, 0x0200 SSLv2): the server hello's
	// (its supported_versions for 1.3) once seen, else the client hello's
	// record version; 0: not TLS or not known (ssl_version).
	TLSVersion uint16
	// TLSState holds the handshake messages in this packet, TLSClientHello
	// | TLSServerHello | TLSClientKeyX | TLSServerKeyX | TLSUnknown
	// (ssl_state).
	TLSState uint8

	// File is the file that just ended on this flow, for the file
	// keywords (file.go: filename, fileext, filemagic, filesize, filemd5,
	// filesha1, filesha256); nil on other inspections. The engine fills it
	// once per file, at its end (or the flow's end, Complete false).
	File *FileFacts

	// Stateful keywords (PostMatch, flowbits.go, threshold.go).
	Flowbits *Bits     // the flow's flowbits; nil: no flow (conditions fail)
	Tracker  *Tracker  // threshold/detection_filter counts; nil: no limiting
	Now      time.Time // the packet's timestamp (windows use packet time)

	// Match's working memory (prefilter.go), made on the first Match and
	// reused: an Input serves one goroutine at a time.
	scratch *scratch
	rx      *pcre.Matcher // PCRE2 match state, made on the first pcre
}

// matcher returns the Input's PCRE2 match state, made on first use; nil
// (pcre falls back to a pool) only when C memory ran out.
func (in *Input) matcher() *pcre.Matcher {
	if in.rx == nil {
		in.rx, _ = pcre.NewMatcher()
	}
	return in.rx
}

// Rule is one loaded signature.
type Rule struct {
	Action    Action
	Proto     string
	GID       int
	SID       int
	Rev       int
	Msg       string
	Classtype string
	Category  string              // the classtype's description
	Priority  int                 // 1 (high) .. 4
	Metadata  map[string][]string // "signature_severity" -> ["Major"], ...
	Refs      []string            // reference values, e.g. "cve,2021-44228"
	File      string
	Line      int
	Raw       string

	ipProto  uint8 // 0: any; 1 (icmp) also matches 58
	app      string
	src, dst addrSet
	sp, dp   portSet
	bidir    bool

	flowToServer, flowToClient, flowEstablished bool

	contents []content
	hasPcre  bool     // some list has a pcre: full passes the Input's Matcher
	pre      *content // the fast pattern's content (prefilter.go); nil: none

	lists []inspList // payload.go: per buffer, the ordered match elements
	pkt   []pktCheck // packet.go: dsize, flags, ttl, itype, ...
	nvars int        // byte_extract variables the lists use

	fb      []flowbitOp // flowbits.go
	fbRank  uint8       // evaluation order in PostMatch
	fbGen   uint64      // the Set generation that numbered fb
	noAlert bool
	thr, df *threshold // threshold.go: threshold, detection_filter
	ignored []string   // keywords accepted without effect (tag)
}

// LoadError reports a rule that was not loaded.
type LoadError struct {
	File   string
	Line   int
	Reason string
}

func (e LoadError) Error() string { return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Reason) }

// Vars maps rule variables (without "$") to their values.
type Vars map[string]string

// DefaultVars returns the variables a box uses when its config names none.
// HOME_NET is the lab range 198.18.0.0/15 plus the private ranges (RFC 1918
// and IPv6 ULA fc00::/7), so a box works in a typical office unconfigured.
// EXTERNAL_NET is "any" rather than "!$HOME_NET": it is the simplest safe
// default for an inline box at the office's exit — traffic between office
// hosts does not cross the box anyway, and a rule still fires when the
// "external" side uses a private address (carrier-grade NAT, a VPN, a
// misconfigured HOME_NET) instead of silently never matching.
func DefaultVars() Vars {
	return Vars{
		"HOME_NET":        "[198.18.0.0/15,10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,fc00::/7]",
		"EXTERNAL_NET":    "any",
		"HTTP_SERVERS":    "$HOME_NET",
		"SMTP_SERVERS":    "$HOME_NET",
		"SQL_SERVERS":     "$HOME_NET",
		"DNS_SERVERS":     "$HOME_NET",
		"TELNET_SERVERS":  "$HOME_NET",
		"AIM_SERVERS":     "$EXTERNAL_NET",
		"DC_SERVERS":      "$HOME_NET",
		"DNP3_SERVER":     "$HOME_NET",
		"DNP3_CLIENT":     "$HOME_NET",
		"MODBUS_CLIENT":   "$HOME_NET",
		"MODBUS_SERVER":   "$HOME_NET",
		"ENIP_CLIENT":     "$HOME_NET",
		"ENIP_SERVER":     "$HOME_NET",
		"HTTP_PORTS":      "[80,81,311,383,591,593,901,1220,1414,1741,1830,2301,2381,2809,3037,3128,3702,4343,4848,5250,6988,7000,7001,7144,7145,7510,7777,7779,8000,8008,8014,8028,8080,8085,8088,8090,8118,8123,8180,8181,8243,8280,8300,8800,8888,8899,9000,9060,9080,9090,9091,9443,9999,11371,34443,34444,41080,50002,55555]",
		"SHELLCODE_PORTS": "!80",
		"ORACLE_PORTS":    "1521",
		"SSH_PORTS":       "22",
		"DNP3_PORTS":      "20000",
		"MODBUS_PORTS":    "502",
		"FILE_DATA_PORTS": "[$HTTP_PORTS,110,143]",
		"FTP_PORTS":       "21",
		"GENEVE_PORTS":    "6081",
		"VXLAN_PORTS":     "4789",
		"TEREDO_PORTS":    "3544",
	}
}

//go:embed classification.config
var classificationConfig string

type class struct {
	desc     string
	priority int
}

var classes = parseClassification(classificationConfig)

func parseClassification(s string) map[string]class {
	m := make(map[string]class)
	for _, line := range strings.Split(s, "\n") {
		line = strings.TrimSpace(line)
		rest, ok := strings.CutPrefix(line, "config classification:")
		if !ok {
			continue
		}
		f := strings.Split(rest, ",")
		if len(f) != 3 {
			continue
		}
		p, _ := strconv.Atoi(strings.TrimSpace(f[2]))
		m[strings.TrimSpace(f[0])] = class{strings.TrimSpace(f[1]), p}
	}
	return m
}

// Stars rates the rule's alerts (★★★ = act now):
//
//	★★★  classtype trojan-activity, command-and-control, malware-cnc,
//	     domain-c2, successful-admin, successful-user, exploit-kit;
//	     or metadata signature_severity Critical
//	★★   metadata signature_severity Major, or priority 1
//	★    everything else
//
// The priority is the rule's "priority" option, else its classtype's
// default from classification.config, else 3.
func (r *Rule) Stars() int {
	switch r.Classtype {
	case "trojan-activity", "command-and-control", "malware-cnc", "domain-c2",
		"successful-admin", "successful-user", "exploit-kit":
		return 3
	}
	for _, v := range r.Metadata["signature_severity"] {
		if strings.EqualFold(v, "critical") {
			return 3
		}
	}
	for _, v := range r.Metadata["signature_severity"] {
		if strings.EqualFold(v, "major") {
			return 2
		}
	}
	if r.Priority == 1 {
		return 2
	}
	return 1
}

// Set is a loaded rule set, indexed for matching. It is read-only after
// Parse and safe for concurrent Match calls.
type Set struct {
	rules []*Rule
	pf    prefilter // prefilter.go: automata per buffer, groups, profiling

	fbNames  map[string]uint32 // flowbits.go: flowbit name -> bit
	gen      uint64            // generation, set when a rule uses flowbits
	stateful bool              // a rule uses flowbits, noalert, threshold or detection_filter
	ignored  map[string]int    // keywords accepted without effect, by rules using them
}

// Ignored returns, per keyword accepted without effect on this box (tag:
// Suricata's extra packet logging), how many rules use it.
func (s *Set) Ignored() map[string]int {
	if s == nil {
		return nil
	}
	return s.ignored
}

// Len returns the number of rules.
func (s *Set) Len() int {
	if s == nil {
		return 0
	}
	return len(s.rules)
}

// Rules returns the rules in load order.
func (s *Set) Rules() []*Rule { return s.rules }

func (s *Set) add(r *Rule) {
	r = s.internFlowbits(r) // flowbits.go: bit numbers are per Set
	s.rules = append(s.rules, r)
	for _, k := range r.ignored {
		if s.ignored == nil {
			s.ignored = make(map[string]int)
		}
		s.ignored[k]++
	}
	s.pf.add(int32(len(s.rules)-1), r)
}

// Merge returns a set with the rules of all sets.
func Merge(sets ...*Set) *Set {
	out := &Set{}
	for _, s := range sets {
		if s == nil {
			continue
		}
		for _, r := range s.rules {
			out.add(r)
		}
	}
	out.pf.compile() // the automata; a Set from Parse alone builds them on its first Match
	return out
}

// ParseFile loads the rules in path. The error is for a file that cannot be
// read; rules that do not load are in the LoadErrors.
func ParseFile(path string, vars Vars) (*Set, []LoadError, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("rules: %w", err)
	}
	defer f.Close()
	s, errs := Parse(f, path, vars)
	return s, errs, nil
}

// Parse loads rules from r; file names them in LoadErrors. Lines may be
// continued with a trailing backslash; '#' starts a comment line.
func Parse(r io.Reader, file string, vars Vars) (*Set, []LoadError) {
	if vars == nil {
		vars = DefaultVars()
	}
	s := &Set{}
	var errs []LoadError
	sids := make(map[[2]int]int) // gid, sid -> line
	dir := filepath.Dir(file)    // hash lists are named relative to it
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	lineNo, start := 0, 0
	var buf strings.Builder
	for sc.Scan() {
		lineNo++
		line := sc.Text()
		if buf.Len() == 0 {
			start = lineNo
			t := strings.TrimSpace(line)
			if t == "" || t[0] == '#' {
				continue
			}
		}
		if strings.HasSuffix(line, "\\") {
			buf.WriteString(strings.TrimSuffix(line, "\\"))
			continue
		}
		buf.WriteString(line)
		text := strings.TrimSpace(buf.String())
		buf.Reset()
		rule, err := parseRule(text, vars, dir)
		if err != nil {
			errs = append(errs, LoadError{File: file, Line: start, Reason: err.Error()})
			continue
		}
		if first, dup := sids[[2]int{rule.GID, rule.SID}]; dup {
			errs = append(errs, LoadError{File: file, Line: start,
				Reason: fmt.Sprintf("duplicate sid %d (first at line %d); remove or renumber one", rule.SID, first)})
			continue
		}
		sids[[2]int{rule.GID, rule.SID}] = start
		rule.File, rule.Line = file, start
		s.add(rule)
	}
	if err := sc.Err(); err != nil {
		errs = append(errs, LoadError{File: file, Line: lineNo + 1, Reason: "reading stopped: " + err.Error()})
	}
	return s, errs
}
