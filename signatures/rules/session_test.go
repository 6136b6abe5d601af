package rules

import (
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSessionKeywords(t *testing.T) {
	with := func(f func(in *Input)) *Input {
		in := pay("abcdef")
		f(in)
		return in
	}
	stream := func(toServer, toClient uint64) *Input {
		return with(func(in *Input) { in.StreamBytesToServer, in.StreamBytesToClient = toServer, toClient })
	}
	tlsv := func(v uint16, st uint8) *Input {
		return with(func(in *Input) { in.TLSVersion, in.TLSState = v, st })
	}
	icmp := func(typ uint8, id, seq uint16) *Input {
		return with(func(in *Input) { in.Proto, in.ICMPType, in.ICMPID, in.ICMPSeq = 1, typ, id, seq })
	}
	cases := []struct {
		name, rule string
		in         *Input
		want       bool
	}{
		{"stream_size server >", `stream_size:server,>,100;`, stream(0, 101), true},
		{"stream_size server > no", `stream_size:server,>,100;`, stream(500, 100), false},
		{"stream_size client <", `stream_size:client,<,10;`, stream(9, 1000), true},
		{"stream_size client < no", `stream_size:client,<,10;`, stream(10, 0), false},
		{"stream_size =", `stream_size:server,=,1;`, stream(0, 1), true},
		{"stream_size = spaces", `stream_size:server, =, 1;`, stream(0, 2), false},
		{"stream_size !=", `stream_size:client,!=,5;`, stream(6, 5), true},
		{"stream_size != no", `stream_size:client,!=,5;`, stream(5, 6), false},
		{"stream_size <=", `stream_size:client,<=,5;`, stream(5, 0), true},
		{"stream_size >=", `stream_size:server,>=,5;`, stream(0, 4), false},
		{"stream_size both", `stream_size:both,>,3;`, stream(4, 4), true},
		{"stream_size both one short", `stream_size:both,>,3;`, stream(4, 3), false},
		{"stream_size either", `stream_size:either,>,3;`, stream(0, 4), true},
		{"stream_size either none", `stream_size:either,>,3;`, stream(3, 3), false},
		{"stream_size not tcp", `stream_size:either,>=,0;`, with(func(in *Input) { in.Proto = 17 }), false},
		{"ssl_version", `ssl_version:sslv3;`, tlsv(0x0300, 0), true},
		{"ssl_version other", `ssl_version:sslv3;`, tlsv(0x0303, 0), false},
		{"ssl_version list", `ssl_version:tls1.0,tls1.1;`, tlsv(0x0302, 0), true},
		{"ssl_version tls1.3", `ssl_version:tls1.3;`, tlsv(0x0304, 0), true},
		{"ssl_version sslv2", `ssl_version:sslv2;`, tlsv(0x0200, 0), true},
		{"ssl_version !", `ssl_version:!tls1.2;`, tlsv(0x0301, 0), true},
		{"ssl_version ! same", `ssl_version:!tls1.2;`, tlsv(0x0303, 0), false},
		{"ssl_version unknown", `ssl_version:!tls1.2;`, tlsv(0, 0), false},
		{"ssl_state", `ssl_state:server_hello;`, tlsv(0x0300, TLSServerHello), true},
		{"ssl_state other", `ssl_state:server_hello;`, tlsv(0x0300, TLSClientHello), false},
		{"ssl_state or", `ssl_state:client_hello|client_keyx;`, tlsv(0x0303, TLSClientKeyX), true},
		{"ssl_state !", `ssl_state:!client_hello;`, tlsv(0x0303, TLSServerHello), true},
		{"ssl_state ! seen", `ssl_state:!client_hello;`, tlsv(0x0303, TLSClientHello), false},
		{"ssl_state unknown", `ssl_state:unknown;`, tlsv(0x0303, TLSUnknown|TLSServerKeyX), true},
		{"id", `id:31337;`, with(func(in *Input) { in.IPID = 31337 }), true},
		{"id other", `id:31337;`, with(func(in *Input) { in.IPID = 1 }), false},
		{"id ipv6", `id:0;`, with(func(in *Input) { in.Src = netipAddr("2001:db8::1") }), false},
		{"icmp_id", `icmp_id:666;`, icmp(8, 666, 1), true},
		{"icmp_id other", `icmp_id:666;`, icmp(0, 667, 1), false},
		{"icmp_id not echo", `icmp_id:0;`, icmp(3, 0, 0), false},
		{"icmp_seq", `icmp_seq:0;`, icmp(0, 5, 0), true},
		{"icmp_seq other", `icmp_seq:0;`, icmp(8, 5, 9), false},
		{"icmp_seq v6 echo", `icmp_seq:9;`, with(func(in *Input) { in.Proto, in.ICMPType, in.ICMPSeq = 58, 128, 9 }), true},
		{"icmp_seq not icmp", `icmp_seq:0;`, with(func(*Input) {}), false},
		{"tag ignored", `tag:session,5,packets;`, with(func(*Input) {}), true},
	}
	for _, c := range cases {
		s := load(t, `alert ip any any -> any any (msg:"t"; `+c.rule+` sid:1;)`)
		if got := len(s.Match(c.in, nil)) == 1; got != c.want {
			t.Errorf("%s: %s: match=%v, want %v", c.name, c.rule, got, c.want)
		}
	}
	s := load(t, `alert ip any any -> any any (msg:"a"; tag:session,5,packets; sid:1;)
alert ip any any -> any any (msg:"b"; tag: session, 20, packets; sid:2;)
alert ip any any -> any any (msg:"c"; sid:3;)`)
	if got := s.Ignored()["tag"]; got != 2 {
		t.Errorf("Ignored()[tag] = %d, want 2", got)
	}
}

func TestFileKeywords(t *testing.T) {
	body := []byte("%PDF-1.4 test file")
	f := &FileFacts{Name: "/docs/Report.PDF", Ext: "pdf", Magic: "PDF document, version 1.4", Size: uint64(len(body)),
		MD5: md5.Sum(body), SHA1: sha1.Sum(body), SHA256: sha256.Sum256(body), Complete: true}
	partial := *f
	partial.Complete = false
	dir := t.TempDir()
	other := sha256.Sum256([]byte("other"))
	write := func(name, text string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("md5.txt", "# bad files\n"+hex.EncodeToString(f.MD5[:])+"  report.pdf\n\n")
	write("sha1.txt", strings.ToUpper(hex.EncodeToString(f.SHA1[:]))+"\n")
	write("sha256.txt", hex.EncodeToString(other[:])+",other\n")
	sha := hex.EncodeToString(f.SHA256[:])
	with := func(f *FileFacts) *Input {
		in := pay("x")
		in.File = f
		return in
	}
	cases := []struct {
		name, rule string
		in         *Input
		want       bool
	}{
		{"filename", `filename:"Report";`, with(f), true},
		{"filename case", `filename:"report";`, with(f), false},
		{"filename !", `filename:!"setup.exe";`, with(f), true},
		{"filename no file", `filename:"Report";`, with(nil), false},
		{"fileext", `fileext:"pdf";`, with(f), true},
		{"fileext case", `fileext:"PDF";`, with(f), true},
		{"fileext dot", `fileext:".pdf";`, with(f), true},
		{"fileext other", `fileext:"exe";`, with(f), false},
		{"fileext prefix", `fileext:"pd";`, with(f), false},
		{"fileext !", `fileext:!"exe";`, with(f), true},
		{"filemagic", `filemagic:"pdf document";`, with(f), true},
		{"filemagic other", `filemagic:"JFIF";`, with(f), false},
		{"filemagic !", `filemagic:!"PE32";`, with(f), true},
		{"filesize =", `filesize:18;`, with(f), true},
		{"filesize >", `filesize:>17;`, with(f), true},
		{"filesize <", `filesize:<18;`, with(f), false},
		{"filesize range", `filesize:10<>20;`, with(f), true},
		{"filesize partial >", `filesize:>10;`, with(&partial), true},
		{"filesize partial <", `filesize:<100;`, with(&partial), false},
		{"filemd5 file", `filemd5:md5.txt;`, with(f), true},
		{"filemd5 !", `filemd5:!md5.txt;`, with(f), false},
		{"filesha1 upper", `filesha1:sha1.txt;`, with(f), true},
		{"filesha256 not listed", `filesha256:sha256.txt;`, with(f), false},
		{"filesha256 ! not listed", `filesha256:!sha256.txt;`, with(f), true},
		{"filesha256 inline", `filesha256:` + sha + `;`, with(f), true},
		{"filesha256 inline list", `filesha256:"` + hex.EncodeToString(other[:]) + `, ` + sha + `";`, with(f), true},
		{"filesha256 partial", `filesha256:` + sha + `;`, with(&partial), false},
		{"filemd5 no file", `filemd5:md5.txt;`, with(nil), false},
	}
	for _, c := range cases {
		text := `alert http any any -> any any (msg:"t"; ` + c.rule + ` sid:1;)`
		s, errs := Parse(strings.NewReader(text), filepath.Join(dir, "local.rules"), nil)
		if len(errs) != 0 {
			t.Fatalf("%s: %v", c.name, errs)
		}
		c.in.App = "http"
		if got := len(s.Match(c.in, nil)) == 1; got != c.want {
			t.Errorf("%s: %s: match=%v, want %v", c.name, c.rule, got, c.want)
		}
	}
	in := with(f)
	in.App = "http"
	s, _ := Parse(strings.NewReader(`alert http any any -> any any (msg:"t"; fileext:"pdf"; filemagic:"PDF"; filesha256:`+sha+`; filename:"Report"; filesize:>1; sid:1;)`), "x.rules", nil)
	out := make([]*Rule, 0, 4)
	if n := testing.AllocsPerRun(100, func() { out = s.Match(in, out) }); n != 0 || len(out) != 1 {
		t.Errorf("file keywords: %d matches, %v allocations; want 1, 0", len(out), n)
	}
}

func TestSessionFileRejected(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "bad.txt"), []byte("abcd\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "empty.txt"), []byte("# none\n"), 0o644)
	cases := []struct{ opts, reason string }{
		{`stream_size:server,>;`, `want <server|client|both|either>,<op>,<bytes>`},
		{`stream_size:middle,>,1;`, `side "middle"`},
		{`stream_size:client,~,1;`, `operator "~"`},
		{`stream_size:client,>,x;`, `"x" is not a byte count`},
		{`ssl_version:tls9;`, `"tls9" is not one of`},
		{`ssl_state:client_bye;`, `"client_bye" is not one of`},
		{`id:70000;`, `not a number 0..65535`},
		{`icmp_id:x;`, `not a number`},
		{`icmp_seq:-1;`, `not a number`},
		{`filename:report;`, `want a quoted string`},
		{`fileext:"";`, `empty string`},
		{`filesize:x;`, `"x" is not a number`},
		{`filemd5:missing.txt;`, `no such file`},
		{`filemd5:bad.txt;`, `bad.txt:1: "abcd" is not a 32-hex-digit digest`},
		{`filesha1:empty.txt;`, `holds no digest`},
	}
	for _, c := range cases {
		rule := `alert tcp any any -> any any (msg:"x"; ` + c.opts + ` sid:1;)`
		s, errs := Parse(strings.NewReader("\n"+rule), filepath.Join(dir, "bad.rules"), nil)
		if s.Len() != 0 || len(errs) != 1 || !strings.Contains(errs[0].Reason, c.reason) || !strings.Contains(errs[0].Error(), "bad.rules:2") {
			t.Errorf("%s\n  loaded %d, errors %v; want one at bad.rules:2 containing %q", c.opts, s.Len(), errs, c.reason)
		}
	}
}

func netipAddr(s string) netip.Addr { return netip.MustParseAddr(s) }
