package tlshello

import (
	"crypto/md5"
	"crypto/sha1"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
)

// ja3Of computes the expected JA3 string from what Go's server parsed out
// of the ClientHello, independently of this package's parser.
func ja3Of(version uint16, h *tls.ClientHelloInfo) string {
	list := func(vs []uint16) string {
		var s []string
		for _, v := range vs {
			if !grease(int(v)) {
				s = append(s, fmt.Sprint(v))
			}
		}
		return strings.Join(s, "-")
	}
	curves := make([]uint16, len(h.SupportedCurves))
	for i, c := range h.SupportedCurves {
		curves[i] = uint16(c)
	}
	var pts []string
	for _, p := range h.SupportedPoints {
		pts = append(pts, fmt.Sprint(p))
	}
	return fmt.Sprintf("%d,%s,%s,%s,%s", version, list(h.CipherSuites), list(h.Extensions), list(curves), strings.Join(pts, "-"))
}

func md5hex(s string) string {
	sum := md5.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}

// fingerprint formats a SHA-1 as Suricata: lower hex, colon separated.
func fingerprint(der []byte) string {
	sum := sha1.Sum(der)
	var parts []string
	for _, c := range sum {
		parts = append(parts, fmt.Sprintf("%02x", c))
	}
	return strings.Join(parts, ":")
}

// snapshot renders Info for comparisons.
func snapshot(in *Info) string {
	return fmt.Sprintf("sni=%q ver=%#x ja3=%q/%s ja4=%s sver=%#x ja3s=%q/%s subj=%q iss=%q serial=%q fp=%q",
		in.SNI, in.Version, in.JA3, in.JA3Hash, in.JA4, in.ServerVersion, in.JA3S, in.JA3SHash, in.Subject, in.Issuer, in.Serial, in.Fingerprint)
}

// feedChunks feeds the client's then the server's bytes in chunks of n
// (0: whole) without keeping events (no allocation of its own).
func feedChunks(p *Parser, client, server []byte, n int) Event {
	var ev Event
	for d, b := range [2][]byte{client, server} {
		for len(b) > 0 {
			k := len(b)
			if n > 0 {
				k = min(n, k)
			}
			ev |= p.Feed(d, b[:k])
			b = b[k:]
		}
	}
	return ev
}

// feedAll feeds the client's then the server's bytes, each in chunks of
// size n (0: whole), and returns the events in the order they came.
func feedAll(p *Parser, client, server []byte, n int) []Event {
	var evs []Event
	feed := func(d int, b []byte) {
		for len(b) > 0 {
			k := len(b)
			if n > 0 {
				k = min(n, k)
			}
			if ev := p.Feed(d, b[:k]); ev != 0 {
				evs = append(evs, ev)
			}
			b = b[k:]
		}
	}
	feed(0, client)
	feed(1, server)
	return evs
}

func TestRecordedHandshakes(t *testing.T) {
	r12, r13 := recordings(t)
	for _, c := range []struct {
		name    string
		r       recorded
		version uint16
		events  []Event
	}{
		{"tls1.2", r12, VersionTLS12, []Event{ClientHello, ServerHello | Certificate}},
		{"tls1.3", r13, VersionTLS13, []Event{ClientHello, ServerHello}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var p Parser
			evs := feedAll(&p, c.r.Client, c.r.Server, 0)
			if fmt.Sprint(evs) != fmt.Sprint(c.events) {
				t.Fatalf("events %v, want %v", evs, c.events)
			}
			in := p.Info()
			if string(in.SNI) != "bad.example" {
				t.Errorf("SNI %q, want bad.example", in.SNI)
			}
			if want := ja3Of(VersionTLS12, c.r.Hello); string(in.JA3) != want {
				t.Errorf("JA3\n got %s\nwant %s", in.JA3, want)
			}
			if string(in.JA3Hash) != md5hex(string(in.JA3)) {
				t.Errorf("JA3 hash %s is not the MD5 of %q", in.JA3Hash, in.JA3)
			}
			if in.ServerVersion != c.version || c.r.State.Version != c.version {
				t.Errorf("server version %#x, connection %#x, want %#x", in.ServerVersion, c.r.State.Version, c.version)
			}
			if pre := fmt.Sprintf("771,%d,", c.r.State.CipherSuite); !strings.HasPrefix(string(in.JA3S), pre) || string(in.JA3SHash) != md5hex(string(in.JA3S)) {
				t.Errorf("JA3S %q / %s: want prefix %q and its MD5", in.JA3S, in.JA3SHash, pre)
			}
			if c.version == VersionTLS13 {
				if !strings.Contains(string(in.JA3S), "43") || in.Subject != nil {
					t.Errorf("TLS 1.3: JA3S %q should list supported_versions (43) and no certificate be seen, subject %q", in.JA3S, in.Subject)
				}
			} else {
				checkCert(t, in, c.r.Cert)
			}
			for d := 0; d < 2; d++ {
				if p.Status(d) != Encrypted {
					t.Errorf("direction %d: status %v after the handshake, want encrypted", d, p.Status(d))
				}
			}
		})
	}
}

func checkCert(t *testing.T, in *Info, cert *x509.Certificate) {
	t.Helper()
	want := "C=US, O=Bad Example Inc, CN=bad.example"
	if string(in.Subject) != want || string(in.Issuer) != want {
		t.Errorf("subject %q, issuer %q, want %q", in.Subject, in.Issuer, want)
	}
	// The DER integer of A1B2... keeps its leading zero, as Suricata prints it.
	if string(in.Serial) != "00:A1:B2:C3:D4:E5:F6:07:18" {
		t.Errorf("serial %q", in.Serial)
	}
	if string(in.Fingerprint) != fingerprint(cert.Raw) {
		t.Errorf("fingerprint %q, want %q", in.Fingerprint, fingerprint(cert.Raw))
	}
}

// TestSplitEverywhere: splitting either direction at every byte boundary,
// or feeding byte by byte, gives the same results as feeding it whole.
func TestSplitEverywhere(t *testing.T) {
	r12, r13 := recordings(t)
	for _, r := range []recorded{r12, r13} {
		var whole Parser
		feedAll(&whole, r.Client, r.Server, 0)
		want := snapshot(whole.Info())
		for d, b := range [][]byte{r.Client, r.Server} {
			for i := 0; i <= len(b); i++ {
				var p Parser
				if d == 0 {
					p.Feed(0, b[:i])
					p.Feed(0, b[i:])
					p.Feed(1, r.Server)
				} else {
					p.Feed(0, r.Client)
					p.Feed(1, b[:i])
					p.Feed(1, b[i:])
				}
				if got := snapshot(p.Info()); got != want {
					t.Fatalf("direction %d split at %d:\n got %s\nwant %s", d, i, got, want)
				}
			}
		}
		var p Parser
		feedAll(&p, r.Client, r.Server, 1)
		if got := snapshot(p.Info()); got != want {
			t.Fatalf("byte by byte:\n got %s\nwant %s", got, want)
		}
	}
}

// rec builds a TLS record.
func rec(typ byte, body []byte) []byte {
	return append([]byte{typ, 3, 1, byte(len(body) >> 8), byte(len(body))}, body...)
}

// hs builds a handshake message.
func hs(typ byte, body []byte) []byte {
	n := len(body)
	return append([]byte{typ, byte(n >> 16), byte(n >> 8), byte(n)}, body...)
}

func u16s(vs ...int) []byte {
	var b []byte
	for _, v := range vs {
		b = append(b, byte(v>>8), byte(v))
	}
	return b
}

func vec16(b []byte) []byte { return append(u16s(len(b)), b...) }
func vec8(b []byte) []byte  { return append([]byte{byte(len(b))}, b...) }

// publishedHello is a ClientHello with the values of the JA3 README's
// example, plus GREASE values JA3 must leave out.
func publishedHello(sni string) []byte {
	b := u16s(0x0301)
	b = append(b, make([]byte, 32)...)
	b = append(b, vec8(nil)...)
	b = append(b, vec16(u16s(0x0a0a, 47, 53, 5, 10, 49161, 49162, 49171, 49172, 50, 56, 19, 4))...)
	b = append(b, vec8([]byte{0})...)
	name := append([]byte{0}, vec16([]byte(sni))...)
	var ext []byte
	ext = append(ext, u16s(0x2a2a)...) // GREASE extension, empty
	ext = append(ext, vec16(nil)...)
	ext = append(ext, u16s(0)...)
	ext = append(ext, vec16(vec16(name))...)
	ext = append(ext, u16s(10)...)
	ext = append(ext, vec16(vec16(u16s(0xfafa, 23, 24, 25)))...)
	ext = append(ext, u16s(11)...)
	ext = append(ext, vec16(vec8([]byte{0}))...)
	b = append(b, vec16(ext)...)
	return hs(1, b)
}

// TestJA3Published: the JA3 README's example string and MD5
// (769,47-53-5-10-49161-49162-49171-49172-50-56-19-4,0-10-11,23-24-25,0 →
// ada70206e40642a3e4461f35503241d5), with GREASE values in every list.
func TestJA3Published(t *testing.T) {
	var p Parser
	if ev := p.Feed(0, rec(22, publishedHello("bad.example"))); ev != ClientHello {
		t.Fatalf("event %v, want ClientHello", ev)
	}
	in := p.Info()
	if string(in.JA3) != "769,47-53-5-10-49161-49162-49171-49172-50-56-19-4,0-10-11,23-24-25,0" {
		t.Errorf("JA3 %q", in.JA3)
	}
	if string(in.JA3Hash) != "ada70206e40642a3e4461f35503241d5" {
		t.Errorf("JA3 hash %s", in.JA3Hash)
	}
	if string(in.SNI) != "bad.example" || in.Version != 0x0301 {
		t.Errorf("SNI %q version %#x", in.SNI, in.Version)
	}
}

// TestJA3S: a hand-built ServerHello; GREASE extensions left out,
// supported_versions gives the negotiated version.
func TestJA3S(t *testing.T) {
	b := u16s(0x0303)
	b = append(b, make([]byte, 32)...)
	b = append(b, vec8(make([]byte, 32))...)
	b = append(b, u16s(0x1301)...)
	b = append(b, 0)
	ext := append(u16s(0x3a3a), vec16(nil)...)
	ext = append(ext, u16s(43)...)
	ext = append(ext, vec16(u16s(0x0304))...)
	ext = append(ext, u16s(51)...)
	ext = append(ext, vec16(make([]byte, 36))...)
	b = append(b, vec16(ext)...)
	var p Parser
	if ev := p.Feed(1, rec(22, hs(2, b))); ev != ServerHello {
		t.Fatalf("event %v", ev)
	}
	in := p.Info()
	if string(in.JA3S) != "771,4865,43-51" || string(in.JA3SHash) != md5hex("771,4865,43-51") || in.ServerVersion != VersionTLS13 {
		t.Errorf("JA3S %q %s version %#x", in.JA3S, in.JA3SHash, in.ServerVersion)
	}
}

// TestBadInput: what is not a TLS handshake stops the direction with the
// right status and reports nothing.
func TestBadInput(t *testing.T) {
	hello := publishedHello("x.example")
	for _, c := range []struct {
		name string
		in   []byte
		max  int
		want Status
	}{
		{"http", []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), 0, NotTLS},
		{"sslv2 hello", []byte{0x80, 0x2e, 0x01, 0x00, 0x02, 0x00, 0x15, 0x00, 0x00, 0x00, 0x10}, 0, NotTLS},
		{"zero-length record", []byte{22, 3, 1, 0, 0}, 0, NotTLS},
		{"record too long", []byte{22, 3, 1, 0xff, 0xff}, 0, NotTLS},
		{"hello with bad vectors", rec(22, hs(1, []byte{3, 3, 0, 0})), 0, NotTLS},
		{"hello truncated extensions", rec(22, hello[:len(hello)-3]), 0, Following}, // waits for the rest
		{"hello over the cap", rec(22, hello), 40, Overflow},
		{"alert then ccs", append(rec(21, []byte{2, 40}), rec(20, []byte{1})...), 0, Encrypted},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := Parser{Max: c.max}
			ev := p.Feed(0, c.in)
			if ev != 0 || p.Status(0) != c.want || p.Info().SNI != nil {
				t.Fatalf("event %v, status %v, SNI %q; want no event and %v", ev, p.Status(0), p.Info().SNI, c.want)
			}
			// Nothing more is taken once stopped.
			if c.want != Following && p.Feed(0, rec(22, hello)) != 0 {
				t.Fatal("a stopped direction still parses")
			}
		})
	}
}

// TestCertificateChain: only the first certificate of a chain is read,
// the rest is skipped unbuffered, even when the chain spans records.
func TestCertificateChain(t *testing.T) {
	r12, _ := recordings(t)
	leaf := r12.Cert.Raw
	other := make([]byte, 30000) // a big second "certificate": never parsed, never kept
	chain := append(u24(len(leaf)), leaf...)
	chain = append(chain, u24(len(other))...)
	chain = append(chain, other...)
	msg := hs(11, append(u24(len(chain)), chain...))
	var server []byte
	server = append(server, rec(22, serverHello12())...)
	for len(msg) > 0 { // records of at most 16 KiB
		n := min(len(msg), 1<<14)
		server = append(server, rec(22, msg[:n])...)
		msg = msg[n:]
	}
	for _, chunk := range []int{0, 7, 1000} {
		p := Parser{Max: 8 << 10}
		var evs Event
		for b := server; len(b) > 0; {
			k := len(b)
			if chunk > 0 {
				k = min(chunk, k)
			}
			evs |= p.Feed(1, b[:k])
			b = b[k:]
		}
		if evs != ServerHello|Certificate || p.Status(1) != Following {
			t.Fatalf("chunk %d: events %v, status %v", chunk, evs, p.Status(1))
		}
		checkCert(t, p.Info(), r12.Cert)
		if c := cap(p.dirs[1].buf); c > 8<<10 {
			t.Fatalf("chunk %d: buffered %d bytes for a %d-byte leaf", chunk, c, len(leaf))
		}
	}
}

func u24(n int) []byte { return []byte{byte(n >> 16), byte(n >> 8), byte(n)} }

func serverHello12() []byte {
	b := u16s(0x0303)
	b = append(b, make([]byte, 32)...)
	b = append(b, vec8(nil)...)
	b = append(b, u16s(0xc02b)...)
	b = append(b, 0)
	return hs(2, b)
}

// TestResetReuses: a pooled Parser forgets the flow and gives the same
// results for the next one.
func TestResetReuses(t *testing.T) {
	r12, r13 := recordings(t)
	var p Parser
	feedAll(&p, r12.Client, r12.Server, 100)
	want := snapshot(p.Info())
	p.Reset()
	if p.Info().SNI != nil || p.Status(0) != Following {
		t.Fatal("Reset kept state")
	}
	feedAll(&p, r13.Client, r13.Server, 100)
	p.Reset()
	feedAll(&p, r12.Client, r12.Server, 100)
	if got := snapshot(p.Info()); got != want {
		t.Fatalf("after Reset:\n got %s\nwant %s", got, want)
	}
}

// TestAllocs: after warm-up, following whole handshakes split in records
// and segments allocates nothing.
func TestAllocs(t *testing.T) {
	r12, r13 := recordings(t)
	var p Parser
	run := func() {
		for _, r := range []recorded{r12, r13} {
			feedChunks(&p, r.Client, r.Server, 300)
			p.Reset()
		}
	}
	run()
	if n := testing.AllocsPerRun(100, run); n != 0 {
		t.Fatalf("%v allocations per two handshakes, want 0", n)
	}
}

func BenchmarkHandshake(b *testing.B) {
	r12, r13 := recordings(b)
	for _, c := range []struct {
		name  string
		r     recorded
		chunk int
	}{
		{"tls1.2-whole", r12, 0}, {"tls1.2-1400", r12, 1400}, {"tls1.2-100", r12, 100}, {"tls1.3-whole", r13, 0},
	} {
		b.Run(c.name, func(b *testing.B) {
			var p Parser
			b.SetBytes(int64(len(c.r.Client) + len(c.r.Server)))
			b.ReportAllocs()
			for b.Loop() {
				feedChunks(&p, c.r.Client, c.r.Server, c.chunk)
				p.Reset()
			}
		})
	}
}

// BenchmarkCertificate compares the DER walk with crypto/x509 on the same
// certificate (the package doc's choice).
func BenchmarkCertificate(b *testing.B) {
	r12, _ := recordings(b)
	der := r12.Cert.Raw
	b.Run("der-walk", func(b *testing.B) {
		var p Parser
		b.ReportAllocs()
		for b.Loop() {
			if !p.certificate(der) {
				b.Fatal("not parsed")
			}
		}
	})
	b.Run("crypto-x509", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			c, err := x509.ParseCertificate(der)
			if err != nil {
				b.Fatal(err)
			}
			sum := sha1.Sum(c.Raw)
			_ = c.Subject.String() + c.Issuer.String() + c.SerialNumber.String() + hex.EncodeToString(sum[:])
		}
	})
}
