package rules

import (
	"bytes"
	"math/rand"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

// matches loads one rule (options only, on "tcp any any -> any any") and
// reports whether it matches in.
func matches(t *testing.T, opts string, in *Input) bool {
	t.Helper()
	s := load(t, `alert tcp any any -> any any (msg:"t"; `+opts+` sid:1;)`)
	return len(s.Match(in, nil)) == 1
}

func pay(data string) *Input { return bufIn(BufPayload, data, 6, "") }

func TestPayloadKeywords(t *testing.T) {
	cases := []struct {
		name, opts string
		in         *Input
		want       bool
	}{
		// isdataat
		{"isdataat abs yes", `content:"a"; isdataat:3;`, pay("abcd"), true},
		{"isdataat abs no", `content:"a"; isdataat:4;`, pay("abcd"), false},
		{"isdataat rel yes", `content:"ab"; isdataat:2,relative;`, pay("abcd"), true},
		{"isdataat rel no", `content:"ab"; isdataat:3,relative;`, pay("abcd"), false},
		{"isdataat !rel end", `content:"cd"; isdataat:!1,relative;`, pay("abcd"), true},
		{"isdataat !rel more", `content:"bc"; isdataat:!1,relative;`, pay("abcd"), false},
		{"isdataat rawbytes", `content:"a"; isdataat:1,relative,rawbytes;`, pay("ab"), true},
		// a later occurrence is tried when the relative rest fails
		{"isdataat backtrack", `content:"x"; isdataat:!1,relative;`, pay("x1x"), true},

		// byte_test
		{"byte_test > yes", `content:"L"; byte_test:2,>,255,0,relative;`, pay("L\x01\x00"), true},
		{"byte_test > no", `content:"L"; byte_test:2,>,256,0,relative;`, pay("L\x01\x00"), false},
		{"byte_test little", `content:"L"; byte_test:2,=,1,0,relative,little;`, pay("L\x01\x00"), true},
		{"byte_test !=", `content:"L"; byte_test:1,!=,5,0,relative;`, pay("L\x05"), false},
		{"byte_test & ", `content:"L"; byte_test:1,&,0x80,0,relative;`, pay("L\x81"), true},
		{"byte_test & no", `content:"L"; byte_test:1,&,0x80,0,relative;`, pay("L\x7f"), false},
		{"byte_test <=", `byte_test:1,<=,3,1;`, pay("a\x03"), true},
		{"byte_test >=", `byte_test:1,>=,4,1;`, pay("a\x03"), false},
		{"byte_test string dec", `content:"len="; byte_test:3,>,99,0,relative,string,dec;`, pay("len=120;"), true},
		{"byte_test string dec small", `content:"len="; byte_test:3,>,99,0,relative,string,dec;`, pay("len=12;x"), false},
		{"byte_test string hex", `content:"x"; byte_test:2,=,255,0,relative,string,hex;`, pay("xff"), true},
		{"byte_test string not a number", `content:"x"; byte_test:2,<,1000,0,relative,string,dec;`, pay("xzz"), false},
		{"byte_test 0 bytes string", `http.content_len; byte_test:0,<=,30000,0,string,dec;`, bufsIn(map[Buffer]string{BufHTTPContentLen: "29999"}), true},
		{"byte_test 0 bytes string big", `http.content_len; byte_test:0,<=,30000,0,string,dec;`, bufsIn(map[Buffer]string{BufHTTPContentLen: "300000"}), false},
		{"http_content_len sticky", `http_content_len; content:"0"; startswith; endswith;`, bufsIn(map[Buffer]string{BufHTTPContentLen: "0"}), true},
		{"byte_test bitmask", `byte_test:1,=,3,0,bitmask 0x30;`, pay("\x3f"), true},
		{"byte_test out of data", `content:"L"; byte_test:4,>,0,0,relative;`, pay("L\x01"), false},
		{"byte_test negative relative", `content:"B"; byte_test:1,=,0x41,-2,relative;`, pay("AB"), true},

		// byte_jump
		{"byte_jump then content", `content:"J"; byte_jump:1,0,relative; content:"Z"; within:1;`, pay("J\x02abZ"), true},
		{"byte_jump wrong target", `content:"J"; byte_jump:1,0,relative; content:"Z"; within:1;`, pay("J\x01abZ"), false},
		{"byte_jump multiplier", `content:"J"; byte_jump:1,0,relative,multiplier 2; content:"Z"; within:1;`, pay("J\x02abcdZ"), true},
		{"byte_jump align", `content:"J"; byte_jump:1,0,relative,align; content:"Z"; within:1;`, pay("J\x03abcdZ"), true},
		{"byte_jump from_beginning", `byte_jump:1,0,from_beginning; content:"Z"; within:1;`, pay("\x03abZ"), true},
		{"byte_jump post_offset", `content:"J"; byte_jump:1,0,relative,post_offset -1; content:"bZ"; within:2;`, pay("J\x02abZ"), true},
		{"byte_jump past the end", `content:"J"; byte_jump:1,0,relative;`, pay("J\x09ab"), false},
		{"byte_jump to the end", `content:"J"; byte_jump:1,0,relative; isdataat:!1,relative;`, pay("J\x02ab"), true},
		{"byte_jump string", `content:"J"; byte_jump:2,0,relative,string,dec; content:"Z"; within:1;`, pay("J03abcZ"), true},

		// byte_extract and its variables
		{"byte_extract depth", `byte_extract:1,0,n; content:"Z"; depth:n;`, pay("\x04abZ"), true},
		{"byte_extract depth short", `byte_extract:1,0,n; content:"Z"; depth:n;`, pay("\x03abZ"), false},
		{"byte_extract distance", `content:"L"; byte_extract:1,0,skip,relative; content:"Z"; distance:skip; within:1;`, pay("L\x02abZ"), true},
		{"byte_extract distance wrong", `content:"L"; byte_extract:1,0,skip,relative; content:"Z"; distance:skip; within:1;`, pay("L\x01abZ"), false},
		{"byte_extract byte_test value", `byte_extract:1,0,a; byte_test:1,=,a,1;`, pay("\x07\x07"), true},
		{"byte_extract byte_test value no", `byte_extract:1,0,a; byte_test:1,=,a,1;`, pay("\x07\x08"), false},
		{"byte_extract isdataat", `byte_extract:1,0,n,relative; isdataat:n,relative;`, pay("\x02ab"), true},
		{"byte_extract isdataat short", `byte_extract:1,0,n,relative; isdataat:n,relative;`, pay("\x03ab"), false},
		{"byte_extract offset", `byte_extract:1,0,o; content:"Z"; offset:o; depth:1;`, pay("\x03abZ"), true},
		{"byte_extract string multiplier", `byte_extract:1,0,n,string,dec,multiplier 2; content:"Z"; offset:n; depth:1;`, pay("2abcZ"), true},
		{"byte_extract byte_jump offset", `byte_extract:1,0,o; byte_jump:1,o; content:"Z"; within:1;`, pay("\x02x\x01yZ"), true},
		// backtracking re-extracts: the second "L" carries the right length
		{"byte_extract backtrack", `content:"L"; byte_extract:1,0,n,relative; content:"Z"; distance:n; within:1;`, pay("L\x05L\x00Z"), true},

		// bsize
		{"bsize =", `http.uri; content:"/a"; bsize:2;`, httpReq("/a", ""), true},
		{"bsize = no", `http.uri; content:"/a"; bsize:3;`, httpReq("/a", ""), false},
		{"bsize range", `http.uri; content:"/a"; bsize:1<>5;`, httpReq("/abc", ""), true},
		{"bsize <", `http.uri; content:"/a"; bsize:<4;`, httpReq("/abcd", ""), false},

		// startswith / endswith
		{"startswith", `http.uri; content:"/a"; startswith;`, httpReq("/ab", ""), true},
		{"startswith no", `http.uri; content:"/a"; startswith;`, httpReq("x/ab", ""), false},
		{"endswith", `http.uri; content:".exe"; endswith;`, httpReq("/x.exe", ""), true},
		{"endswith no", `http.uri; content:".exe"; endswith;`, httpReq("/x.exe?a", ""), false},
		{"endswith repeated", `http.uri; content:".exe"; endswith;`, httpReq("/a.exe/b.exe", ""), true},
		{"startswith endswith", `http.uri; content:"/x"; startswith; endswith;`, httpReq("/x", ""), true},
		{"rawbytes", `content:"a"; rawbytes;`, pay("a"), true},

		// relative elements follow the previous content's buffer (legacy modifier)
		{"relative after legacy modifier", `content:"/a"; http_uri; isdataat:!1,relative;`, httpReq("/a", ""), true},
		{"relative after legacy modifier more", `content:"/a"; http_uri; isdataat:!1,relative;`, httpReq("/ab", ""), false},
		{"sticky element", `http.uri; isdataat:3; content:"/";`, httpReq("/abc", ""), true},
	}
	for _, c := range cases {
		if got := matches(t, c.opts, c.in); got != c.want {
			t.Errorf("%s: %s on %q: match=%v, want %v", c.name, c.opts, c.in.Buf[BufPayload], got, c.want)
		}
	}
}

func TestPcre(t *testing.T) {
	cases := []struct {
		name, opts string
		in         *Input
		want       bool
	}{
		{"payload", `pcre:"/ab+c/";`, pay("xabbbc"), true},
		{"payload no", `pcre:"/ab+c/";`, pay("xac"), false},
		{"caseless", `pcre:"/ABC/i";`, pay("abc"), true},
		{"case", `pcre:"/ABC/";`, pay("abc"), false},
		{"negated", `content:"a"; pcre:!"/b/";`, pay("a"), true},
		{"negated hit", `content:"a"; pcre:!"/b/";`, pay("ab"), false},
		{"escaped quote", `pcre:"/say \"hi\"/";`, pay(`say "hi"`), true},
		{"dotall", `pcre:"/a.b/s";`, pay("a\nb"), true},
		{"no dotall", `pcre:"/a.b/";`, pay("a\nb"), false},
		{"multiline", `pcre:"/^b$/m";`, pay("a\nb\nc"), true},
		{"no multiline", `pcre:"/^b$/";`, pay("a\nb\nc"), false},
		{"ungreedy", `pcre:"/a.+b/G"; content:"c"; distance:0;`, pay("a1b2bc"), true},
		{"anchored", `pcre:"/b/A";`, pay("ab"), false},
		{"relative", `content:"a"; pcre:"/^b/R";`, pay("ab"), true},
		{"relative no", `content:"a"; pcre:"/^c/R";`, pay("abc"), false},
		{"relative backtracks the content", `content:"a"; pcre:"/^b/R";`, pay("acab"), true},
		{"content after pcre", `pcre:"/k=\d+/"; content:"&"; within:1;`, pay("k=12&"), true},
		{"content after pcre no", `pcre:"/k=\d+/"; content:"&"; within:1;`, pay("k=12x&"), false},
		{"pcre retried", `pcre:"/k=\d/"; content:"!"; within:1;`, pay("k=1 k=2!"), true},
		{"U uri", `pcre:"/\.php$/U";`, httpReq("/x.php", ""), true},
		{"U not payload", `pcre:"/\.php$/U";`, pay("/x.php"), false},
		{"I raw uri", `pcre:"/%2e/I";`, bufsIn(map[Buffer]string{BufHTTPRawURI: "/a%2e"}), true},
		{"P request body", `pcre:"/pw=/P";`, bufsIn(map[Buffer]string{BufHTTPRequestBody: "pw=1"}), true},
		{"Q response body", `pcre:"/<html/Q";`, bufsIn(map[Buffer]string{BufHTTPResponseBody: "<html>"}), true},
		{"H header", `pcre:"/^X-A: 1/mH";`, bufsIn(map[Buffer]string{BufHTTPHeader: "Host: h\r\nX-A: 1\r\n"}), true},
		{"D raw header", `pcre:"/X-A/D";`, bufsIn(map[Buffer]string{BufHTTPRawHeader: "X-A: 1\r\n"}), true},
		{"M method", `pcre:"/^POST$/M";`, bufsIn(map[Buffer]string{BufHTTPMethod: "POST"}), true},
		{"C cookie", `pcre:"/sid=/C";`, bufsIn(map[Buffer]string{BufHTTPCookie: "sid=1"}), true},
		{"S stat code", `pcre:"/^404$/S";`, bufsIn(map[Buffer]string{BufHTTPStatCode: "404"}), true},
		{"Y stat msg", `pcre:"/Not Found/Y";`, bufsIn(map[Buffer]string{BufHTTPStatMsg: "Not Found"}), true},
		{"V user agent", `pcre:"/^curl/V";`, bufsIn(map[Buffer]string{BufHTTPUserAgent: "curl/8"}), true},
		{"W host caseless", `pcre:"/evil\.com$/W";`, bufsIn(map[Buffer]string{BufHTTPHost: "EVIL.com"}), true},
		{"Z raw host", `pcre:"/evil/Z";`, bufsIn(map[Buffer]string{BufHTTPHost: "evil.com"}), true},
		{"backreference", `pcre:"/(ab)\1/";`, pay("xabab"), true},
		{"lookbehind", `pcre:"/(?<=a)b/";`, pay("cb ab"), true},
		{"lookbehind no", `pcre:"/(?<=a)b/";`, pay("cb"), false},
		{"relative subject starts at the match end", `content:"a"; pcre:"/(?<!a)b/R";`, pay("ab"), true},
		{"B O accepted", `pcre:"/a/BO";`, pay("a"), true},
		{"sticky", `http.user_agent; pcre:"/^Mozilla/";`, bufsIn(map[Buffer]string{BufHTTPUserAgent: "Mozilla/5"}), true},
		{"sticky not payload", `http.user_agent; pcre:"/^Mozilla/";`, pay("Mozilla/5"), false},
		{"relative follows legacy buffer", `content:"/a"; http_uri; pcre:"/^\d+$/R";`, httpReq("/a123", ""), true},
		{"relative follows legacy buffer no", `content:"/a"; http_uri; pcre:"/^\d+$/R";`, httpReq("/a12x", ""), false},
		{"U then relative content", `pcre:"/id=\d+/U"; content:"&x"; http_uri; within:2;`, httpReq("/?id=5&x", ""), true},
	}
	for _, c := range cases {
		if got := matches(t, c.opts, c.in); got != c.want {
			t.Errorf("%s: %s: match=%v, want %v", c.name, c.opts, got, c.want)
		}
	}
	// A buffer implies the rule's application.
	for opts, app := range map[string]string{
		`tls.cert_subject; content:"CN=x";`: "tls", `ja3.hash; content:"abc";`: "tls",
		`dns.query; pcre:"/x/";`: "dns", `content:"a"; http_uri;`: "http", `content:"a";`: "",
	} {
		s := load(t, `alert tcp any any -> any any (msg:"t"; `+opts+` sid:1;)`)
		if got := s.Rules()[0].app; got != app {
			t.Errorf("%s: app %q, want %q", opts, got, app)
		}
	}
	// A pcre with a buffer flag makes the rule an HTTP rule.
	s := load(t, `alert tcp any any -> any any (msg:"t"; pcre:"/x/U"; sid:1;)`)
	if app := s.Rules()[0].app; app != "http" {
		t.Errorf("pcre /U: app %q, want http", app)
	}
}

func TestPacketKeywords(t *testing.T) {
	with := func(f func(in *Input)) *Input {
		in := pay("abcdef")
		in.PayloadLen = 6
		f(in)
		return in
	}
	tcp := func(flags uint8) *Input { return with(func(in *Input) { in.TCPFlags = flags }) }
	icmp := func(typ, code uint8) *Input {
		return with(func(in *Input) { in.Proto, in.ICMPType, in.ICMPCode = 1, typ, code })
	}
	cases := []struct {
		name, rule string
		in         *Input
		want       bool
	}{
		{"dsize =", `dsize:6;`, with(func(*Input) {}), true},
		{"dsize = no", `dsize:5;`, with(func(*Input) {}), false},
		{"dsize >", `dsize:>5;`, with(func(*Input) {}), true},
		{"dsize <", `dsize:<6;`, with(func(*Input) {}), false},
		{"dsize range", `dsize:5<>7;`, with(func(*Input) {}), true},
		{"dsize range exclusive", `dsize:6<>9;`, with(func(*Input) {}), false},
		{"dsize !", `dsize:!6;`, with(func(*Input) {}), false},
		{"dsize ! other", `dsize:!5;`, with(func(*Input) {}), true},
		{"dsize 0", `dsize:0;`, with(func(in *Input) { in.PayloadLen = 0 }), true},
		{"urilen", `urilen:3;`, httpReq("/ab", ""), true},
		{"urilen >", `urilen:>3;`, httpReq("/ab", ""), false},
		{"urilen range", `urilen:1<>4;`, httpReq("/ab", ""), true},
		{"urilen raw", `urilen:5,raw;`, bufsIn(map[Buffer]string{BufHTTPRawURI: "/%41b", BufHTTPURI: "/Ab"}), true},
		{"urilen no uri", `urilen:>0;`, pay("x"), false},
		{"flags exact", `flags:S;`, tcp(tcpSYN), true},
		{"flags exact extra", `flags:S;`, tcp(tcpSYN | tcpACK), false},
		{"flags exact SA", `flags:SA;`, tcp(tcpSYN | tcpACK), true},
		{"flags +", `flags:A+;`, tcp(tcpPSH | tcpACK), true},
		{"flags + missing", `flags:PA+;`, tcp(tcpACK), false},
		{"flags *", `flags:*SF;`, tcp(tcpFIN | tcpACK), true},
		{"flags * none", `flags:*SF;`, tcp(tcpACK), false},
		{"flags !", `flags:!R;`, tcp(tcpACK), true},
		{"flags ! set", `flags:!R;`, tcp(tcpRST), false},
		{"flags mask", `flags:S,12;`, tcp(tcpSYN | tcpCWR | tcpECE), true},
		{"flags mask CE", `flags:S,CE;`, tcp(tcpSYN | tcpECE), true},
		{"flags no mask", `flags:S;`, tcp(tcpSYN | tcpECE), false},
		{"flags 0", `flags:0;`, tcp(0), true},
		{"flags 0 set", `flags:0;`, tcp(tcpACK), false},
		{"flags 1 2 aliases", `flags:12+;`, tcp(tcpCWR | tcpECE | tcpSYN), true},
		{"flags not tcp", `flags:*S;`, with(func(in *Input) { in.Proto, in.TCPFlags = 17, tcpSYN }), false},
		{"ttl", `ttl:64;`, with(func(in *Input) { in.TTL = 64 }), true},
		{"ttl <", `ttl:<5;`, with(func(in *Input) { in.TTL = 64 }), false},
		{"ttl range", `ttl:1-10;`, with(func(in *Input) { in.TTL = 5 }), true},
		{"itype", `itype:8;`, icmp(8, 0), true},
		{"itype other", `itype:8;`, icmp(0, 0), false},
		{"itype >", `itype:>10;`, icmp(13, 0), true},
		{"itype range", `itype:10<>20;`, icmp(20, 0), false},
		{"itype not icmp", `itype:0;`, with(func(*Input) {}), false},
		{"icode", `icode:3;`, icmp(3, 3), true},
		{"icode <", `icode:<3;`, icmp(3, 3), false},
		{"ip_proto", `ip_proto:6;`, with(func(*Input) {}), true},
		{"ip_proto name", `ip_proto:UDP;`, with(func(*Input) {}), false},
		{"ip_proto !", `ip_proto:!17;`, with(func(*Input) {}), true},
		{"ip_proto 41", `ip_proto:41;`, with(func(in *Input) { in.Proto = 41 }), true},
		{"ip_proto 1 not ICMPv6", `ip_proto:1;`, with(func(in *Input) { in.Proto = 58 }), false},
		{"ip_proto 58", `ip_proto:58;`, with(func(in *Input) { in.Proto = 58 }), true},
		{"app-layer-protocol", `app-layer-protocol:http;`, httpReq("/", ""), true},
		{"app-layer-protocol other", `app-layer-protocol:tls;`, httpReq("/", ""), false},
		{"app-layer-protocol !", `app-layer-protocol:!tls;`, httpReq("/", ""), true},
	}
	for _, c := range cases {
		s := load(t, `alert ip any any -> any any (msg:"t"; `+c.rule+` sid:1;)`)
		if got := len(s.Match(c.in, nil)) == 1; got != c.want {
			t.Errorf("%s: %s: match=%v, want %v", c.name, c.rule, got, c.want)
		}
	}
}

// TestIPProtoGroups: an "ip" rule with one ip_proto value is grouped
// under that protocol, so packets of other protocols do not walk it.
func TestIPProtoGroups(t *testing.T) {
	s := load(t, `alert ip any any -> any any (msg:"6in4"; ip_proto:41; sid:1;)
alert ip any any -> any any (msg:"not tcp"; ip_proto:!6; sid:2;)
alert ip $HOME_NET any -> $EXTERNAL_NET any (msg:"6in4 out (ET sid 2012141)"; ip_proto:41; sid:3;)
alert ip $HOME_NET any -> [203.0.113.0/24] any (msg:"6in4 to a short list"; ip_proto:41; sid:4;)`)
	s.pf.compile()
	grouped := map[int]bool{}
	for _, g := range s.pf.groups {
		for _, r := range g.rules {
			grouped[r.SID] = true
			if want := map[int]uint8{1: 41, 2: 0, 3: 41}[r.SID]; g.ipProto != want {
				t.Errorf("sid %d is grouped under protocol %d, want %d", r.SID, g.ipProto, want)
			}
		}
	}
	// The IP-only index would check sid 3 on every packet from the
	// office; a short address list still keys sid 4 there.
	for sid, want := range map[int]bool{1: true, 2: true, 3: true, 4: false} {
		if grouped[sid] != want {
			t.Errorf("sid %d grouped by protocol: %v, want %v", sid, grouped[sid], want)
		}
	}
	tcp := bufIn(BufPayload, "x", 6, "")
	tcp.Src, tcp.Dst = netip.MustParseAddr("192.168.1.23"), netip.MustParseAddr("203.0.113.9")
	in41 := *tcp
	in41.Proto = 41
	if got := sids(s.Match(&in41, nil)); !slices.Equal(got, []int{1, 2, 3, 4}) {
		t.Errorf("protocol 41 from the office matched %v, want [1 2 3 4]", got)
	}
	if got := sids(s.Match(tcp, nil)); len(got) != 0 {
		t.Errorf("TCP matched %v, want none", got)
	}
}

func TestPayloadRejected(t *testing.T) {
	cases := []struct{ opts, reason string }{
		{`pcre:"/a/q";`, `pcre: unknown flag 'q'`},
		{`pcre:"a";`, `does not start with /`},
		{`pcre:"/a";`, `no closing /`},
		{`pcre:/a/;`, `is not quoted`},
		{`pcre:"/a/UH";`, `name two buffers`},
		{`pcre:"/a(/";`, `pcre: /a(/:`},
		{`isdataat:x;`, `isdataat: "x" is neither a number nor a byte_extract variable`},
		{`isdataat:1,sideways;`, `unknown option "sideways"`},
		{`byte_test:2,>,1;`, `needs at least 4 values`},
		{`byte_test:2,~,1,0;`, `unknown operator "~"`},
		{`byte_test:9,>,1,0;`, `9 bytes is more than 8`},
		{`byte_test:0,>,1,0;`, `byte count 0 (the whole number) needs string`},
		{`byte_jump:0,0;`, `byte count "0" is not a positive number`},
		{`byte_test:2,>,v,0;`, `value "v" is neither a number nor a byte_extract variable`},
		{`byte_test:2,>,1,0,hex;`, `hex must follow string`},
		{`byte_test:2,>,1,0,bitmask x;`, `bitmask "x"`},
		{`byte_jump:2;`, `needs at least 2 values`},
		{`byte_jump:2,0,post_offset x;`, `bad post_offset`},
		{`byte_extract:2,0,1x;`, `bad variable name "1x"`},
		{`byte_extract:1,0,a; byte_extract:1,1,a;`, `variable "a" is already defined`},
		{`byte_extract:1,0,a; byte_extract:1,0,b; byte_extract:1,0,c; byte_extract:1,0,d; byte_extract:1,0,e; byte_extract:1,0,f; byte_extract:1,0,g; byte_extract:1,0,h; byte_extract:1,0,i;`, `more than 8 byte_extract variables`},
		{`byte_extract:1,0,a,align 3;`, `bad align`},
		{`content:"a"; depth:n; byte_extract:1,0,n;`, `depth: "n" is neither a number nor a byte_extract variable defined before`},
		{`bsize:5<>2;`, `range 5<>2 is empty`},
		{`startswith;`, `startswith without a preceding content`},
		{`content:"a"; offset:2; startswith;`, `cannot be combined`},
		{`dsize:x;`, `dsize: "x" is not a number`},
		{`dsize:70000;`, `70000 is more than 65535`},
		{`ttl:300;`, `300 is more than 255`},
		{`itype:5<>5;`, `is empty`},
		{`urilen:3,cooked;`, `"cooked" is neither raw nor norm`},
		{`flags:SX;`, `unknown flag 'X'`},
		{`flags:+*S;`, `two modifiers`},
		{`flags:S,;`, `empty mask`},
		{`flags:0S;`, `0 (no flags) cannot be combined`},
		{`ip_proto:bogus;`, `"bogus" is neither a protocol number nor a known name`},
		{`app-layer-protocol:;`, `is not one protocol name`},
	}
	for _, c := range cases {
		rule := `alert tcp any any -> any any (msg:"x"; ` + c.opts + ` sid:1;)`
		s, errs := Parse(strings.NewReader("\n"+rule), "bad.rules", nil)
		if s.Len() != 0 || len(errs) != 1 || !strings.Contains(errs[0].Reason, c.reason) || errs[0].Error()[:11] != "bad.rules:2" {
			t.Errorf("%s\n  loaded %d, errors %v; want one at bad.rules:2 containing %q", c.opts, s.Len(), errs, c.reason)
		}
	}
}

// TestElementListsAllocs: verification with every element kind, a pcre
// included, does not allocate.
func TestElementListsAllocs(t *testing.T) {
	s := load(t, `alert tcp any any -> any any (msg:"t"; content:"GET"; byte_extract:1,1,n,relative; content:"Z"; distance:n; within:1; isdataat:!2,relative; byte_test:1,=,0x21,0,relative; byte_jump:1,4; content:"Z!"; within:2; pcre:"/^GET/"; content:" "; within:1; dsize:>3; sid:1;)
alert tcp any any -> any any (msg:"t"; http.uri; content:"/a"; bsize:<20; pcre:"/b$/"; content:"a"; endswith; urilen:>1; sid:2;)`)
	in := pay("GET \x02abZ!")
	in.PayloadLen = len(in.Buf[BufPayload])
	in.Buf[BufHTTPURI] = []byte("/a?b")
	out := s.Match(in, nil)
	if len(out) != 1 || out[0].SID != 1 {
		t.Fatalf("matched %v, want sid 1", sids(out))
	}
	out = make([]*Rule, 0, 4)
	if n := testing.AllocsPerRun(100, func() { out = s.Match(in, out) }); n != 0 {
		t.Errorf("Match allocates %v times; want 0", n)
	}
}

// TestRetriesStopEarlyOnlyWhenHopeless: a content that is not found stops
// the retries of the earlier elements only when no retry could find it:
// it must still be found after a pcre's or byte_jump's later match that
// ends earlier, within a later occurrence's window, or after a content
// retried under another byte_extract value. And over every ET Open rule and the traffic mix (TLS
// certificates, HTTP, DNS) plus random buffers rich in the bytes ET's
// binary rules look for, stopping early never changes a result.
func TestRetriesStopEarlyOnlyWhenHopeless(t *testing.T) {
	s := load(t, `alert tcp any any -> any any (msg:"pcre then content"; content:"X"; pcre:"/^Y[^!]*Z|^W/R"; content:"Q"; distance:0; sid:1;)
alert tcp any any -> any any (msg:"byte_jump then content"; content:"X"; byte_jump:1,0,relative; content:"Q"; distance:0; sid:2;)
alert tcp any any -> any any (msg:"content within"; content:"X"; content:"Q"; distance:0; within:2; sid:3;)
alert tcp any any -> any any (msg:"byte_extract before"; content:"K"; byte_extract:1,0,v,relative; content:"B"; distance:0; content:"C"; distance:0; byte_test:1,=,v,0,relative; sid:4;)
alert tcp any any -> any any (msg:"relative content, window used up"; content:"X"; content:"Q"; distance:0; within:3; pcre:"/^Z/R"; sid:5;)
alert tcp any any -> any any (msg:"absolute tail reads a variable"; content:"K"; byte_extract:1,0,v,relative; content:"B"; byte_test:1,=,v,5; sid:6;)
`)
	for _, tc := range []struct {
		data string
		sids []int
	}{
		{"XYXWQZ", []int{1, 3, 5}},                // after the first X, Y..Z ends past Q; after the second, W ends before it
		{"XYXWZ", nil},                            // no Q at all
		{"XabXQ", []int{3}},                       // not within 2 of the first X, within 2 of the second
		{"KxKyBCyB", []int{4}},                    // the second K extracts the y that follows C; after the first K the second B finds no C
		{"X\x0fX\x00Q.............", []int{2, 3}}, // the first X's jump lands past Q, the second X's on it
		{"XQaXQZ", []int{3, 5}},                   // the first X's Q window holds no Q followed by Z, the second X's does
		{"KxKyBy", []int{6}},                      // after the first K the absolute test fails; after the second it holds
	} {
		for _, on := range []bool{true, false} {
			useFailed = on
			got := sids(s.Match(bufIn(BufPayload, tc.data, 6, ""), nil))
			useFailed = true
			if !slices.Equal(got, tc.sids) {
				t.Errorf("%q (early stop %v): sids %v; want %v", tc.data, on, got, tc.sids)
			}
		}
	}

	et := etOpen(t)
	inputs := trafficMix()
	r := rand.New(rand.NewSource(11))
	alpha := []byte{0, 0, 1, 2, 3, 0x0b, 0x16, 0x30, 0x55, 0x04, 0x06, 'a', '/', ' ', '\r', '\n'}
	for i := 0; i < 300; i++ {
		b := make([]byte, 20+r.Intn(1500))
		for j := range b {
			b[j] = alpha[r.Intn(len(alpha))]
		}
		for _, proto := range []uint8{6, 17} {
			in := bufIn(BufPayload, string(b), proto, "")
			in.SrcPort, in.DstPort = uint16(r.Intn(2000)), uint16(r.Intn(2000))
			inputs = append(inputs, in)
		}
	}
	checked := 0
	for _, in := range inputs {
		for _, rl := range et.Rules() {
			if !rl.quick(in) {
				continue
			}
			useFailed = true
			a := rl.full(in)
			useFailed = false
			b := rl.full(in)
			useFailed = true
			if a != b {
				t.Fatalf("sid %d on %q: %v with the early stop, %v without", rl.SID, in.Buf[BufPayload], a, b)
			}
			checked++
		}
	}
	t.Logf("%d inputs, %d rule checks agree", len(inputs), checked)
}

// BenchmarkRetriesHostile: ET's Dridex certificate rule (a chain of
// relative contents and pcres after "|16|") over a segment crafted to
// make it retry: its first contents at every few bytes, its fast pattern
// once, a later content nowhere. Read Early as a ratio to Exhaustive (the
// same retries without stopping when a relative content is not found).
// ...HostilePcre: the same chain with the country present but not upper
// case, so a relative pcre fails after the absolute fast pattern: once
// that tail has failed, no retry of "|16|" can change it.
func BenchmarkRetriesHostileEarly(b *testing.B)          { benchRetries(b, true, "") }
func BenchmarkRetriesHostileExhaustive(b *testing.B)     { benchRetries(b, false, "") }
func BenchmarkRetriesHostilePcreEarly(b *testing.B)      { benchRetries(b, true, lowerCountry) }
func BenchmarkRetriesHostilePcreExhaustive(b *testing.B) { benchRetries(b, false, lowerCountry) }

// lowerCountry is a certificate's country attribute with a value the
// rule's /^[A-Z]{2}/R refuses.
const lowerCountry = "\x30\x09\x06\x03\x55\x04\x06\x13\x02us"

func benchRetries(b *testing.B, early bool, tail string) {
	s := load(b, `alert tcp any any -> any any (msg:"Dridex certificate (ET sid 2023476's contents)"; flow:established,from_server; content:"|16|"; content:"|0b|"; within:8; byte_test:3,<,1200,0,relative; content:"|03 02 01 02 02 09 00|"; fast_pattern; content:"|30 09 06 03 55 04 06 13 02|"; distance:0; pcre:"/^[A-Z]{2}/R"; content:"|55 04 07|"; distance:0; sid:1;)`)
	data := append(bytes.Repeat([]byte("\x16\x00\x0b\x00\x01\x00"), 230), "\x03\x02\x01\x02\x02\x09\x00"...)
	data = append(data, tail...)
	in := bufIn(BufPayload, string(data), 6, "")
	in.ToServer, in.Established = false, true
	defer func() { useFailed = true }()
	useFailed = early
	for i := 0; i < b.N; i++ {
		if len(s.Match(in, nil)) != 0 {
			b.Fatal("matched")
		}
	}
}

// TestListOrder: a rule's buffer lists are verified without a regex first
// (a failed header content spares the URI pcre), except when byte_extract
// variables could cross lists; the order changes no result.
func TestListOrder(t *testing.T) {
	s := load(t, `alert http any any -> any any (msg:"exe"; content:".exe"; http_uri; pcre:"/\/[a-z]\.exe$/U"; content:"Mozilla/4.0"; http_header; sid:1;)
alert http any any -> any any (msg:"vars"; content:"n="; byte_extract:1,0,len,relative,string,dec; pcre:"/n=\d/"; content:"/x"; http_uri; sid:2;)`)
	order := func(sid int) []Buffer {
		for _, r := range s.Rules() {
			if r.SID == sid {
				var bs []Buffer
				for _, l := range r.lists {
					bs = append(bs, l.buf)
				}
				return bs
			}
		}
		return nil
	}
	if got := order(1); !slices.Equal(got, []Buffer{BufHTTPHeader, BufHTTPURI}) {
		t.Errorf("sid 1 lists %v, want the header's (no pcre) before the URI's", got)
	}
	if got := order(2); !slices.Equal(got, []Buffer{BufPayload, BufHTTPURI}) {
		t.Errorf("sid 2 lists %v, want the buffer order (byte_extract)", got)
	}
	for _, c := range []struct {
		uri, header string
		want        bool
	}{
		{"/a.exe", "User-Agent: Mozilla/4.0 (compatible)\r\n", true},
		{"/a.exe", "User-Agent: Mozilla/5.0\r\n", false},
		{"/ab.exe", "User-Agent: Mozilla/4.0\r\n", false},
	} {
		in := bufsIn(map[Buffer]string{BufHTTPURI: c.uri, BufHTTPHeader: c.header})
		got := len(s.Match(in, nil)) == 1
		if got != c.want {
			t.Errorf("uri %q header %q: matched %v, want %v", c.uri, c.header, got, c.want)
		}
	}
	in := bufsIn(map[Buffer]string{BufPayload: "n=5", BufHTTPURI: "/x"})
	if m := s.Match(in, nil); len(m) != 1 || m[0].SID != 2 {
		t.Errorf("sid 2 did not match its input: %v", m)
	}
}
