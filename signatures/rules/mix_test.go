package rules

import (
	"bytes"
	"fmt"
	"math/rand"
	"net/netip"
	"runtime"
	"strings"
	"testing"
	"time"
)

// trafficMix returns a deterministic, realistic mix of inspections: HTTP
// requests (URIs, hosts, user agents, headers) and responses (headers and
// bodies of a few KB), DNS queries, TLS client hellos with an SNI, and
// small binary payloads.
func trafficMix() []*Input {
	r := rand.New(rand.NewSource(5))
	pick := func(s []string) string { return s[r.Intn(len(s))] }
	hosts := []string{"www.example.com", "cdn.jsdelivr.net", "login.microsoftonline.com", "update.googleapis.com",
		"api.github.com", "fonts.gstatic.com", "www.wikipedia.org", "intranet.office.lan", "s3.amazonaws.com", "news.ycombinator.com"}
	paths := []string{"/", "/index.html", "/search", "/api/v1/items", "/static/js/app.3f9a1c.js", "/images/logo.png",
		"/wp-login.php", "/login", "/favicon.ico", "/cart/checkout", "/downloads/setup.exe", "/feed.xml"}
	uas := []string{
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36",
		"Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
		"Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
		"curl/8.5.0", "Microsoft-CryptoAPI/10.0", "python-requests/2.31.0",
	}
	words := strings.Fields("the quick brown fox jumps over a lazy dog lorem ipsum dolor sit amet function var return " +
		"document window div class span href script style table width height color margin padding")
	text := func(n int) []byte {
		var b strings.Builder
		for b.Len() < n {
			b.WriteString(pick(words))
			if r.Intn(12) == 0 {
				b.WriteString("\n<p class=\"c\">")
			} else {
				b.WriteByte(' ')
			}
		}
		return []byte(b.String()[:n])
	}
	binary := func(n int) []byte {
		b := make([]byte, n)
		r.Read(b)
		return b
	}
	client, server := netip.MustParseAddr("192.168.1.23"), netip.MustParseAddr("93.184.216.34")
	base := func(proto uint8, app string, dport uint16, toServer bool) *Input {
		in := &Input{Proto: proto, App: app, Src: client, Dst: server, SrcPort: uint16(40000 + r.Intn(20000)), DstPort: dport,
			ToServer: toServer, Established: true}
		if !toServer {
			in.Src, in.Dst, in.SrcPort, in.DstPort = in.Dst, in.Src, in.DstPort, in.SrcPort
		}
		return in
	}
	var mix []*Input
	for i := 0; i < 24; i++ { // HTTP request and response pairs
		host, path, ua := pick(hosts), pick(paths), pick(uas)
		uri := path
		if r.Intn(2) == 0 {
			uri += fmt.Sprintf("?q=%s&page=%d&sid=%x", pick(words), r.Intn(50), r.Uint64())
		}
		method := "GET"
		var body []byte
		if r.Intn(4) == 0 {
			method, body = "POST", []byte(fmt.Sprintf("user=%s&token=%x&data=%s", pick(words), r.Uint64(), text(200+r.Intn(800))))
		}
		hdr := fmt.Sprintf("Host: %s\r\nUser-Agent: %s\r\nAccept: text/html,application/xhtml+xml,*/*;q=0.8\r\n"+
			"Accept-Language: en-US,en;q=0.5\r\nAccept-Encoding: gzip, deflate, br\r\nCookie: session=%x; theme=dark\r\n"+
			"Referer: https://%s/\r\nConnection: keep-alive\r\n\r\n", host, ua, r.Uint64(), pick(hosts))
		reqLine := method + " " + uri + " HTTP/1.1"
		in := base(6, "http", 80, true)
		in.Buf[BufHTTPMethod] = []byte(method)
		in.Buf[BufHTTPURI] = []byte(uri)
		in.Buf[BufHTTPRawURI] = []byte(uri)
		in.Buf[BufHTTPHost] = []byte(host)
		in.Buf[BufHTTPUserAgent] = []byte(ua)
		in.Buf[BufHTTPHeader] = []byte(hdr)
		in.Buf[BufHTTPRawHeader] = []byte(hdr)
		in.Buf[BufHTTPCookie] = []byte(fmt.Sprintf("session=%x; theme=dark", r.Uint64()))
		in.Buf[BufHTTPRequestLine] = []byte(reqLine)
		in.Buf[BufHTTPProtocol] = []byte("HTTP/1.1")
		in.Buf[BufHTTPAccept] = []byte("text/html,application/xhtml+xml,*/*;q=0.8")
		in.Buf[BufHTTPAcceptLang] = []byte("en-US,en;q=0.5")
		in.Buf[BufHTTPConnection] = []byte("keep-alive")
		in.Buf[BufHTTPHeaderNames] = []byte("\r\nHost\r\nUser-Agent\r\nAccept\r\nAccept-Language\r\nAccept-Encoding\r\nCookie\r\nReferer\r\nConnection\r\n\r\n")
		if body != nil {
			in.Buf[BufHTTPRequestBody] = body
		}
		in.Buf[BufPayload] = append([]byte(reqLine+"\r\n"+hdr), body...)
		mix = append(mix, in)

		ctype := pick([]string{"text/html; charset=utf-8", "application/javascript", "image/png", "application/json"})
		respBody := text(1000 + r.Intn(4000))
		if strings.HasPrefix(ctype, "image") {
			respBody = binary(1000 + r.Intn(4000))
		}
		rh := fmt.Sprintf("Content-Type: %s\r\nContent-Length: %d\r\nServer: nginx/1.24.0\r\nCache-Control: max-age=3600\r\n"+
			"Date: Mon, 01 Jul 2024 10:00:00 GMT\r\n\r\n", ctype, len(respBody))
		out := base(6, "http", 80, false)
		out.Buf[BufHTTPStatCode] = []byte("200")
		out.Buf[BufHTTPStatMsg] = []byte("OK")
		out.Buf[BufHTTPHeader] = []byte(rh)
		out.Buf[BufHTTPRawHeader] = []byte(rh)
		out.Buf[BufHTTPContentType] = []byte(ctype)
		out.Buf[BufHTTPServer] = []byte("nginx/1.24.0")
		out.Buf[BufHTTPResponseLine] = []byte("HTTP/1.1 200 OK")
		out.Buf[BufHTTPProtocol] = []byte("HTTP/1.1")
		out.Buf[BufHTTPResponseBody] = respBody
		out.Buf[BufPayload] = append([]byte("HTTP/1.1 200 OK\r\n"+rh), respBody[:min(len(respBody), 1400)]...)
		mix = append(mix, out)
	}
	for i := 0; i < 24; i++ { // DNS queries
		name := fmt.Sprintf("%s.%s", pick(words), pick(hosts))
		in := base(17, "dns", 53, true)
		in.Established = true
		in.Buf[BufDNSQuery] = []byte(name)
		pkt := []byte{byte(r.Intn(256)), byte(r.Intn(256)), 1, 0, 0, 1, 0, 0, 0, 0, 0, 0}
		for _, l := range strings.Split(name, ".") {
			pkt = append(append(pkt, byte(len(l))), l...)
		}
		in.Buf[BufPayload] = append(pkt, 0, 0, 1, 0, 1)
		mix = append(mix, in)
	}
	for i := 0; i < 12; i++ { // TLS client hellos
		sni := pick(hosts)
		in := base(6, "tls", 443, true)
		in.Buf[BufTLSSNI] = []byte(sni)
		hello := append([]byte{0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03}, binary(32)...)
		hello = append(append(hello, 0x00, 0x00, byte(len(sni)+5)), 0x00, 0x00, byte(len(sni)+3), 0x00, 0x00, byte(len(sni)))
		in.Buf[BufPayload] = append(append(hello, sni...), binary(200)...)
		mix = append(mix, in)
	}
	for i := 0; i < 12; i++ { // small binary payloads (games, VoIP, unknown TCP)
		proto := uint8(6)
		if i%2 == 1 {
			proto = 17
		}
		in := base(proto, "", uint16(1024+r.Intn(60000)), i%3 != 0)
		in.Buf[BufPayload] = binary(40 + r.Intn(600))
		mix = append(mix, in)
	}
	return mix
}

// etSubset returns a Set of n ET Open rules spread evenly over the whole
// set (every len/n-th), compiled.
func etSubset(all *Set, n int) *Set {
	s := &Set{}
	if n > all.Len() {
		n = all.Len()
	}
	for i := 0; i < n; i++ {
		s.add(all.rules[i*all.Len()/n])
	}
	s.pf.compile()
	return s
}

// TestETOpenMixAgainstBruteForce: over the traffic mix, Match through the
// automata returns exactly the rules a check of every rule returns, and
// without allocating.
func TestETOpenMixAgainstBruteForce(t *testing.T) {
	bothScanners(t, func(t *testing.T) {
		s := etOpen(t)
		mix := trafficMix()
		// Beyond the benchmark's mix, every prefilter variant: ICMP, ICMPv6
		// and GRE payloads, and each TCP/UDP input with its direction flipped.
		for i, proto := range []uint8{1, 58, 47} {
			for _, toServer := range []bool{true, false} {
				in := &Input{Proto: proto, Src: netip.MustParseAddr("192.168.1.23"), Dst: netip.MustParseAddr("93.184.216.34"),
					ToServer: toServer, ICMPType: 8, PayloadLen: 64}
				in.Buf[BufPayload] = []byte(strings.Repeat("abcdefghijklmnopqrstuvwabcdefghi", 2+i*10))
				mix = append(mix, in)
			}
		}
		for _, in := range trafficMix() {
			if in.Proto == 6 || in.Proto == 17 {
				in.ToServer = !in.ToServer
				mix = append(mix, in)
			}
		}
		out := make([]*Rule, 0, 64)
		matched := 0
		for i, in := range mix {
			got := map[*Rule]bool{}
			for _, r := range s.Match(in, out) {
				if got[r] {
					t.Fatalf("input %d: sid %d returned twice", i, r.SID)
				}
				got[r] = true
			}
			for _, r := range s.Rules() {
				if want := r.quick(in) && r.full(in); want != got[r] {
					t.Fatalf("input %d (%s): sid %d: Match says %v, checking every rule says %v", i, in.App, r.SID, got[r], want)
				}
			}
			matched += len(got)
			if n := testing.AllocsPerRun(5, func() { out = s.Match(in, out) }); n != 0 {
				t.Fatalf("input %d: Match allocates %v times", i, n)
			}
		}
		t.Logf("%d inputs, %d rule matches over %d rules", len(mix), matched, s.Len())
	})
}

func benchMix(b *testing.B, n int) {
	all := etOpen(b)
	s := etSubset(all, n)
	mix := trafficMix()
	bytes := 0
	for _, in := range mix {
		for _, d := range in.Buf {
			bytes += len(d)
		}
	}
	out := make([]*Rule, 0, 64)
	for _, in := range mix {
		out = s.Match(in, out)
	}
	b.ReportAllocs()
	b.SetBytes(int64(bytes))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, in := range mix {
			out = s.Match(in, out)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(mix)), "ns/input")
	b.ReportMetric(float64(s.Len()), "rules")
}

// BenchmarkMix1, BenchmarkMix1000 and BenchmarkMixAll match the traffic
// mix (one op = every input of the mix once) against 1, 1,000 and all
// loaded ET Open rules; read MixAll and Mix1000 as ratios to Mix1.
func BenchmarkMix1(b *testing.B)    { benchMix(b, 1) }
func BenchmarkMix1000(b *testing.B) { benchMix(b, 1000) }
func BenchmarkMixAll(b *testing.B)  { benchMix(b, 1<<30) }

// BenchmarkCompileETOpen parses every ET Open file and compiles the merged
// set (one op = the whole load), and reports the heap the loaded set keeps.
func BenchmarkCompileETOpen(b *testing.B) {
	var s *Set
	for i := 0; i < b.N; i++ {
		s = etOpen(b)
	}
	b.StopTimer()
	var before, after runtime.MemStats
	s = nil
	runtime.GC()
	runtime.ReadMemStats(&before)
	start := time.Now()
	s = etOpen(b)
	load := time.Since(start)
	runtime.GC()
	runtime.ReadMemStats(&after)
	tables := s.pf.tables
	b.ReportMetric(float64(after.HeapAlloc)/(1<<20), "heap-MB")
	b.ReportMetric(float64(tables)/(1<<20), "automata-MB")
	b.ReportMetric(float64(s.Len()), "rules")
	b.Logf("ET Open: %d rules loaded in %v; heap after load+GC %.1f MB (before %.1f MB), automata %.1f MB",
		s.Len(), load.Round(time.Millisecond), float64(after.HeapAlloc)/(1<<20), float64(before.HeapAlloc)/(1<<20), float64(tables)/(1<<20))
	for bi := range s.pf.byBuf {
		for v, bk := range s.pf.byBuf[bi] {
			if bk == nil || bk.ac == nil && bk.lit == nil || v > 0 && bk == s.pf.byBuf[bi][v-1] {
				continue
			}
			if bk.lit != nil {
				b.Logf("  buffer %2d variant %d: %5d rules, %5d patterns, hyperscan %.2f MB", bi, v, len(bk.rules), bk.lit.Len(), float64(bk.lit.Size())/(1<<20))
			}
			if a := bk.ac; a != nil {
				b.Logf("  buffer %2d variant %d: %5d rules, %5d patterns, depth %2d, %6d states, %3d classes, %.1f MB",
					bi, v, len(bk.rules), len(a.pats), a.depth, len(a.trans)/int(a.width), a.width, float64(a.size())/(1<<20))
			}
		}
	}
	runtime.KeepAlive(s)
}

// benchPayload matches one 1,460-byte segment of an unidentified TCP
// connection to port 445 against all ET Open rules (one op = one Match).
func benchPayload(b *testing.B, data func(s *Set) []byte) {
	s := etOpen(b)
	s.pf.compile()
	in := bufIn(BufPayload, string(data(s)), 6, "")
	in.DstPort = 445
	out := s.Match(in, nil)
	b.ReportAllocs()
	b.SetBytes(int64(len(in.Buf[BufPayload])))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		out = s.Match(in, out)
	}
}

// BenchmarkPayloadText, ...Zeros and ...UTF16: the same segment as words,
// as zeros (binary files and protocols are full of zero runs) and as words
// in UTF-16LE (Windows protocols and files). Read Zeros and UTF16 as
// ratios to Text; without trimRun, Zeros costs 20-30x Text.
func BenchmarkPayloadText(b *testing.B) {
	benchPayload(b, func(*Set) []byte { return bytes.Repeat([]byte("lorem ipsum dolor sit amet "), 55)[:1460] })
}

func BenchmarkPayloadZeros(b *testing.B) {
	benchPayload(b, func(*Set) []byte { return make([]byte, 1460) })
}

func BenchmarkPayloadUTF16(b *testing.B) {
	benchPayload(b, func(*Set) []byte {
		var u []byte
		for _, c := range bytes.Repeat([]byte("lorem ipsum dolor sit amet "), 28)[:730] {
			u = append(u, c, 0)
		}
		return u
	})
}
