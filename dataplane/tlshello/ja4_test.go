package tlshello

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"testing"
)

// The vectors below are the worked example of FoxIO's JA4 specification
// (github.com/FoxIO-LLC/ja4, technical_details/JA4.md, BSD-3-Clause).
const (
	specCiphersSorted = "002f,0035,009c,009d,1301,1302,1303,c013,c014,c02b,c02c,c02f,c030,cca8,cca9"
	specCiphersHash   = "8daaf6152771"
	specExtsSorted    = "0005,000a,000b,000d,0012,0015,0017,001b,0023,002b,002d,0033,4469,ff01"
	specSigalgs       = "0403,0804,0401,0503,0805,0501,0806,0601"
	specExtsSHA256    = "e5627efa2ab19723084c1033a96c694a45826ab5a460d2d3fd5ffcfe97161c95"
	specExtsNoSigs    = "6d807ffa2a79"
	specJA4           = "t13d1516h2_8daaf6152771_e5627efa2ab1"
)

// Cipher suites, extensions and signature algorithms of the spec's
// example, in the order the client sent them.
var (
	specCiphers = []int{0x1301, 0x1302, 0x1303, 0xc02b, 0xc02f, 0xc02c, 0xc030, 0xcca9, 0xcca8, 0xc013, 0xc014, 0x009c, 0x009d, 0x002f, 0x0035}
	specExts    = []int{0x001b, 0x0000, 0x0033, 0x0010, 0x4469, 0x0017, 0x002d, 0x000d, 0x0005, 0x0023, 0x0012, 0x002b, 0xff01, 0x000b, 0x000a, 0x0015}
	specSigs    = []int{0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601}
)

// sha12 is the reference truncated hash: lower hex SHA-256, 12 digits,
// twelve "0" for an empty string.
func sha12(s string) string {
	if s == "" {
		return "000000000000"
	}
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])[:12]
}

func hexList(vs []int) string {
	var s []string
	for _, v := range vs {
		s = append(s, fmt.Sprintf("%04x", v))
	}
	return strings.Join(s, ",")
}

// TestJA4SpecHashes: the spec's example lists, formatted and hashed by
// the package's helpers, give the spec's strings and hashes.
func TestJA4SpecHashes(t *testing.T) {
	sorted := func(vs []int, drop ...int) []uint16 {
		var out []uint16
		for _, v := range vs {
			if !slices.Contains(drop, v) {
				out = append(out, uint16(v))
			}
		}
		slices.Sort(out)
		return out
	}
	ciphers := appendHex16(nil, sorted(specCiphers))
	exts := appendHex16(nil, sorted(specExts, 0x0000, 0x0010))
	if string(ciphers) != specCiphersSorted || string(exts) != specExtsSorted {
		t.Fatalf("lists\n got %s\n     %s\nwant %s\n     %s", ciphers, exts, specCiphersSorted, specExtsSorted)
	}
	withSigs := string(exts) + "_" + hexList(specSigs)
	if sum := sha256.Sum256([]byte(withSigs)); hex.EncodeToString(sum[:]) != specExtsSHA256 {
		t.Fatalf("SHA-256 of %q is not the spec's", withSigs)
	}
	for _, c := range []struct{ in, want string }{
		{string(ciphers), specCiphersHash},
		{withSigs, specExtsSHA256[:12]},
		{string(exts), specExtsNoSigs},
		{"1301,1302,1303", "55b375c5d22e"}, // Suricata's ja4.hash example, q13d0310h3_55b375c5d22e_cd85d2d88918
		{"", "000000000000"},
	} {
		var got [12]byte
		hash12(got[:], []byte(c.in))
		if string(got[:]) != c.want {
			t.Errorf("hash12(%q) = %s, want %s", c.in, got, c.want)
		}
	}
}

// ext is one extension of a hand-built ClientHello.
type ext struct {
	typ  int
	data []byte
}

// buildHello builds a ClientHello handshake message; exts nil leaves out
// the extensions block (a hello without extensions).
func buildHello(legacy int, ciphers []int, exts []ext) []byte {
	b := u16s(legacy)
	b = append(b, make([]byte, 32)...)
	b = append(b, vec8(nil)...)
	b = append(b, vec16(u16s(ciphers...))...)
	b = append(b, vec8([]byte{0})...)
	if exts != nil {
		var e []byte
		for _, x := range exts {
			e = append(e, u16s(x.typ)...)
			e = append(e, vec16(x.data)...)
		}
		b = append(b, vec16(e)...)
	}
	return hs(1, b)
}

func sniExt(name string) ext { return ext{0, vec16(append([]byte{0}, vec16([]byte(name))...))} }

func alpnExt(protos ...string) ext {
	var l []byte
	for _, p := range protos {
		l = append(l, vec8([]byte(p))...)
	}
	return ext{16, vec16(l)}
}

func versionsExt(vs ...int) ext { return ext{43, vec8(u16s(vs...))} }
func sigalgsExt(vs ...int) ext  { return ext{13, vec16(u16s(vs...))} }

// specHello is a ClientHello with the spec example's values in its order,
// plausible extension bodies, and GREASE values in every list JA4 reads
// (ciphers, extensions, supported_versions, signature algorithms), which
// JA4 must leave out. sigs nil sends an empty signature_algorithms list.
func specHello(sigs []int) []byte {
	exts := []ext{{0x1a1a, nil}}
	for _, typ := range specExts {
		switch typ {
		case 0x0000:
			exts = append(exts, sniExt("bad.example"))
		case 0x0010:
			exts = append(exts, alpnExt("h2", "http/1.1"))
		case 0x000d:
			exts = append(exts, sigalgsExt(append([]int{0x2a2a}, sigs...)...))
		case 0x002b:
			exts = append(exts, versionsExt(0x3a3a, 0x0304, 0x0303))
		case 0x000a:
			exts = append(exts, ext{typ, vec16(u16s(0x4a4a, 0x001d, 0x0017))})
		case 0x0033:
			exts = append(exts, ext{typ, vec16(append(u16s(0x001d, 32), make([]byte, 32)...))})
		case 0x0015:
			exts = append(exts, ext{typ, make([]byte, 20)})
		default:
			exts = append(exts, ext{typ, []byte{0}})
		}
	}
	exts = append(exts, ext{0x5a5a, []byte{0}})
	return buildHello(0x0303, append([]int{0x0a0a}, specCiphers...), exts)
}

func ja4Of(t *testing.T, hello []byte) string {
	t.Helper()
	var p Parser
	if ev := p.Feed(0, rec(22, hello)); ev != ClientHello {
		t.Fatalf("event %v (status %v), want ClientHello", ev, p.Status(0))
	}
	if len(p.Info().JA4) != JA4Len {
		t.Fatalf("JA4 %q is not %d bytes", p.Info().JA4, JA4Len)
	}
	return string(p.Info().JA4)
}

// TestJA4Published: the spec's example fingerprint from a hello carrying
// its values and GREASE, and the spec's hash without signature algorithms.
func TestJA4Published(t *testing.T) {
	if got := ja4Of(t, specHello(specSigs)); got != specJA4 {
		t.Errorf("JA4 %s, want %s", got, specJA4)
	}
	if got, want := ja4Of(t, specHello(nil)), specJA4[:24]+specExtsNoSigs; got != want {
		t.Errorf("JA4 without signature algorithms %s, want %s", got, want)
	}
}

// TestJA4Parts: each rule of the spec on hand-built hellos.
func TestJA4Parts(t *testing.T) {
	many := func(n, base int) []int {
		var vs []int
		for i := range n {
			vs = append(vs, base+i)
		}
		return vs
	}
	var manyExts []ext
	for _, typ := range many(120, 0x1000) {
		manyExts = append(manyExts, ext{typ, nil})
	}
	h002f := sha12("002f")
	for _, c := range []struct {
		name  string
		hello []byte
		want  string
	}{
		{"no extensions block", buildHello(0x0303, []int{0x0a0a, 0x002f}, nil), "t12i010000_" + h002f + "_000000000000"},
		{"only SNI and ALPN", buildHello(0x0303, []int{0x002f}, []ext{sniExt("x.example"), alpnExt("h2")}), "t12d0102h2_" + h002f + "_000000000000"},
		{"SNI extension without a host_name", buildHello(0x0303, []int{0x002f}, []ext{{0, nil}}), "t12d0101" + "00_" + h002f + "_000000000000"},
		{"no ciphers", buildHello(0x0303, nil, []ext{{0x0017, nil}}), "t12i000100_000000000000_" + sha12("0017")},
		{"only GREASE ciphers", buildHello(0x0303, []int{0x0a0a, 0xfafa}, []ext{{0x0017, nil}}), "t12i000100_000000000000_" + sha12("0017")},
		{"counts capped at 99", buildHello(0x0303, many(100, 0x0100), manyExts), "t12i999900_" + sha12(hexList(many(100, 0x0100))) + "_" + sha12(hexList(many(120, 0x1000)))},
		{"duplicates kept", buildHello(0x0303, []int{0x0035, 0x002f, 0x0035}, []ext{{0x0017, nil}, {0x0017, nil}}), "t12i030200_" + sha12("002f,0035,0035") + "_" + sha12("0017,0017")},
		{"signature algorithms in order", buildHello(0x0303, []int{0x002f}, []ext{{0xff01, nil}, sigalgsExt(0x0601, 0x0a0a, 0x0403)}), "t12i010200_" + h002f + "_" + sha12("000d,ff01_0601,0403")},
		{"only GREASE signature algorithms", buildHello(0x0303, []int{0x002f}, []ext{sigalgsExt(0x0a0a)}), "t12i010100_" + h002f + "_" + sha12("000d")},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := ja4Of(t, c.hello); got != c.want {
				t.Errorf("JA4 %s, want %s", got, c.want)
			}
		})
	}
}

// TestJA4Version: supported_versions' highest non-GREASE value, else the
// legacy version; the spec's two-character codes, "00" when unknown.
func TestJA4Version(t *testing.T) {
	for _, c := range []struct {
		legacy int
		exts   []ext
		want   string
	}{
		{0x0303, []ext{versionsExt(0x0a0a, 0x0303, 0x0304, 0x0302)}, "13"},
		{0x0303, []ext{versionsExt(0x0303)}, "12"},
		{0x0301, []ext{versionsExt(0xfafa)}, "00"}, // the extension is there: legacy_version is not looked at
		{0x0303, nil, "12"},
		{0x0302, nil, "11"},
		{0x0301, nil, "10"},
		{0x0300, nil, "s3"},
		{0xfefd, nil, "d2"},
		{0x0305, nil, "00"},
	} {
		got := ja4Of(t, buildHello(c.legacy, []int{0x002f}, c.exts))
		if got[1:3] != c.want {
			t.Errorf("legacy %#04x, extensions %v: version %q in %s, want %q", c.legacy, c.exts, got[1:3], got, c.want)
		}
	}
}

// TestJA4ALPN: the spec's rules and examples for the ALPN characters.
func TestJA4ALPN(t *testing.T) {
	for _, c := range []struct {
		ext  *ext
		want string
	}{
		{nil, "00"},
		{&ext{16, vec16(nil)}, "00"},             // no protocol
		{&ext{16, []byte{0, 5, 2, 'h'}}, "00"},   // malformed: read as none
		{ptr(alpnExt("", "h2")), "00"},           // the first is empty
		{ptr(alpnExt("h2", "http/1.1")), "h2"},   // the first counts
		{ptr(alpnExt("http/1.1", "h2")), "h1"},   // the spec's second example
		{ptr(alpnExt("a")), "aa"},                // one character is first and last
		{ptr(alpnExt("\xab")), "ab"},             // the spec's non-alphanumeric examples
		{ptr(alpnExt("\xab\xcd")), "ad"},         //
		{ptr(alpnExt("\x30\xab")), "3b"},         //
		{ptr(alpnExt("\x30\x31\xab\xcd")), "3d"}, //
		{ptr(alpnExt("\x30\xab\xcd\x31")), "01"}, //
		{ptr(alpnExt("\x00")), "00"},             // hex of 0x00
	} {
		var exts []ext
		if c.ext != nil {
			exts = []ext{*c.ext}
		}
		got := ja4Of(t, buildHello(0x0303, []int{0x002f}, exts))
		if got[8:10] != c.want {
			t.Errorf("ALPN %v: %q in %s, want %q", c.ext, got[8:10], got, c.want)
		}
	}
}

func ptr[T any](v T) *T { return &v }

// refJA4 computes JA4 from what Go's server parsed out of a ClientHello,
// independently of the package: straight from the spec's text.
func refJA4(h *tls.ClientHelloInfo) string {
	noGrease := func(vs []uint16) []int {
		var out []int
		for _, v := range vs {
			if !grease(int(v)) {
				out = append(out, int(v))
			}
		}
		return out
	}
	exts := noGrease(h.Extensions)
	ver := 0
	if slices.Contains(exts, 43) {
		for _, v := range noGrease(h.SupportedVersions) {
			ver = max(ver, v)
		}
	} else {
		ver = int(slices.Max(h.SupportedVersions)) // Go fills it from legacy_version
	}
	codes := map[int]string{0x0304: "13", 0x0303: "12", 0x0302: "11", 0x0301: "10"}
	a := "t" + codes[ver]
	if slices.Contains(exts, 0) {
		a += "d"
	} else {
		a += "i"
	}
	ciphers := noGrease(h.CipherSuites)
	a += fmt.Sprintf("%02d%02d", min(len(ciphers), 99), min(len(exts), 99))
	if len(h.SupportedProtos) > 0 && h.SupportedProtos[0] != "" {
		p := h.SupportedProtos[0] // Go's clients send alphanumeric ends
		a += p[:1] + p[len(p)-1:]
	} else {
		a += "00"
	}
	slices.Sort(ciphers)
	var c []int
	for _, e := range exts {
		if e != 0 && e != 16 {
			c = append(c, e)
		}
	}
	slices.Sort(c)
	var sigs []uint16
	for _, s := range h.SignatureSchemes {
		sigs = append(sigs, uint16(s))
	}
	cs := hexList(c)
	if s := noGrease(sigs); len(s) > 0 {
		cs += "_" + hexList(s)
	}
	return a + "_" + sha12(hexList(ciphers)) + "_" + sha12(cs)
}

// goHello returns the ClientHello record a crypto/tls client with cfg
// sends, and what a crypto/tls server parses out of it.
func goHello(t *testing.T, cfg *tls.Config) ([]byte, *tls.ClientHelloInfo) {
	t.Helper()
	a, b := net.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = tls.Client(a, cfg).Handshake() // fails once b closes: only the hello is wanted
	}()
	hdr := make([]byte, 5)
	if _, err := io.ReadFull(b, hdr); err != nil {
		t.Fatal(err)
	}
	body := make([]byte, int(hdr[3])<<8|int(hdr[4]))
	if _, err := io.ReadFull(b, body); err != nil {
		t.Fatal(err)
	}
	b.Close()
	a.Close()
	<-done
	raw := append(hdr, body...)

	var info *tls.ClientHelloInfo
	errStop := errors.New("hello read")
	srv := tls.Server(&replayConn{Conn: a, r: bytes.NewReader(raw)}, &tls.Config{
		GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
			info = h
			return nil, errStop
		},
	})
	if err := srv.Handshake(); !errors.Is(err, errStop) || info == nil {
		t.Fatalf("server did not parse the hello: %v", err)
	}
	return raw, info
}

// replayConn reads recorded bytes and drops what is written.
type replayConn struct {
	net.Conn
	r io.Reader
}

func (c *replayConn) Read(b []byte) (int, error)  { return c.r.Read(b) }
func (c *replayConn) Write(b []byte) (int, error) { return len(b), nil }

// TestJA4GoClients: hellos of Go's crypto/tls (the recorded handshakes,
// and clients with ALPN and without SNI) against the reference computed
// from what Go's server parsed.
func TestJA4GoClients(t *testing.T) {
	r12, r13 := recordings(t)
	type hello struct {
		raw    []byte
		info   *tls.ClientHelloInfo
		prefix string // what the spec says of this client, whatever Go's lists
	}
	cases := map[string]hello{
		"recorded tls1.2": {r12.Client, r12.Hello, "t12d"},
		"recorded tls1.3": {r13.Client, r13.Hello, "t13d"},
	}
	for name, cfg := range map[string]struct {
		cfg    *tls.Config
		prefix string
	}{
		"tls1.3 h2":         {&tls.Config{ServerName: "bad.example", NextProtos: []string{"h2", "http/1.1"}}, "t13d"},
		"tls1.2 ip http1.1": {&tls.Config{ServerName: "198.18.0.1", InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12, NextProtos: []string{"http/1.1"}}, "t12i"},
	} {
		raw, info := goHello(t, cfg.cfg)
		cases[name] = hello{raw, info, cfg.prefix}
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			var p Parser
			if ev := p.Feed(0, c.raw); ev&ClientHello == 0 {
				t.Fatalf("no ClientHello (status %v)", p.Status(0))
			}
			got, want := string(p.Info().JA4), refJA4(c.info)
			if got != want {
				t.Errorf("JA4 %s, want %s", got, want)
			}
			if !strings.HasPrefix(got, c.prefix) || (len(c.info.SupportedProtos) > 0) != (got[8:10] != "00") {
				t.Errorf("JA4 %s: want prefix %s, ALPN characters iff the client offered %q", got, c.prefix, c.info.SupportedProtos)
			}
			t.Logf("%s: %s", name, got)
		})
	}
}

// TestJA4Allocs: computing JA4 on a hello with every list JA4 reads
// allocates nothing once the Parser's scratch has grown.
func TestJA4Allocs(t *testing.T) {
	msg := rec(22, specHello(specSigs))
	var p Parser
	run := func() {
		p.Feed(0, msg)
		p.Reset()
	}
	run()
	if n := testing.AllocsPerRun(100, run); n != 0 {
		t.Fatalf("%v allocations per ClientHello, want 0", n)
	}
}

// BenchmarkClientHello: parsing the spec example's ClientHello (SNI, JA3
// and JA4) from one record.
func BenchmarkClientHello(b *testing.B) {
	msg := rec(22, specHello(specSigs))
	var p Parser
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		p.Feed(0, msg)
		p.Reset()
	}
}
