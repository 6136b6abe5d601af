package mime

import (
	"bytes"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the parser's output")

var eicar = []byte(`X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*`)

// rec records every event; data chunks are kept as delivered.
type rec struct {
	ev    []string
	parts []recPart
	anom  []string
	msgs  []Header
}

type recPart struct {
	Part
	data     []byte
	complete bool
	ended    bool
}

func (r *rec) Message(depth int, h *Header) {
	r.msgs = append(r.msgs, *h)
	r.ev = append(r.ev, fmt.Sprintf("message depth=%d from=%q to=%q cc=%q subject=%q id=%q date=%q",
		depth, h.From, h.To, h.Cc, h.Subject, h.MessageID, h.Date))
}

func (r *rec) PartStart(p *Part) {
	r.parts = append(r.parts, recPart{Part: *p})
	r.ev = append(r.ev, fmt.Sprintf("start depth=%d type=%q name=%q disp=%q enc=%q",
		p.Depth, p.ContentType, p.Filename, p.Disposition, p.Encoding))
}

func (r *rec) PartData(b []byte) {
	if len(b) == 0 {
		r.ev = append(r.ev, "EMPTY DATA CALL")
	}
	lp := &r.parts[len(r.parts)-1]
	lp.data = append(lp.data, b...)
	r.ev = append(r.ev, fmt.Sprintf("data %q", b))
}

func (r *rec) PartEnd(complete bool) {
	lp := &r.parts[len(r.parts)-1]
	if lp.ended {
		r.ev = append(r.ev, "DOUBLE END")
	}
	lp.complete, lp.ended = complete, true
	r.ev = append(r.ev, fmt.Sprintf("end complete=%v", complete))
}

func (r *rec) Anomaly(what string) {
	r.anom = append(r.anom, what)
	r.ev = append(r.ev, fmt.Sprintf("anomaly %q", what))
}

// golden is the event list with consecutive data chunks merged.
func (r *rec) golden() string {
	var b strings.Builder
	var data []byte
	inData := false
	for _, e := range r.ev {
		if strings.HasPrefix(e, "data ") {
			var s string
			fmt.Sscanf(e[5:], "%q", &s)
			data = append(data, s...)
			inData = true
			continue
		}
		if inData {
			fmt.Fprintf(&b, "data %q\n", data)
			data, inData = data[:0], false
		}
		b.WriteString(e + "\n")
	}
	if inData {
		fmt.Fprintf(&b, "data %q\n", data)
	}
	return b.String()
}

func parse(t testing.TB, name string, in []byte, split func(p *Parser, in []byte)) *rec {
	r := &rec{}
	var p Parser
	if strings.HasSuffix(name, ".form") {
		if err := p.InitMultipart(r, Limits{}, `multipart/form-data; boundary=----WebKitFormBoundaryX`); err != nil {
			t.Fatal(err)
		}
	} else {
		p.Init(r, Limits{})
	}
	split(&p, in)
	p.Close()
	for i, pt := range r.parts {
		if !pt.ended {
			t.Errorf("%s: part %d (%q) never ended", name, i, pt.Filename)
		}
	}
	return r
}

func whole(p *Parser, in []byte) { p.Write(in) }

func inputs(t *testing.T) []string {
	t.Helper()
	var names []string
	for _, g := range []string{"testdata/*.eml", "testdata/*.form"} {
		m, err := filepath.Glob(g)
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, m...)
	}
	if len(names) < 4 {
		t.Fatalf("testdata inputs missing: %v", names)
	}
	return names
}

func TestGolden(t *testing.T) {
	for _, name := range inputs(t) {
		in, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		got := parse(t, name, in, whole).golden()
		gname := strings.TrimSuffix(name, filepath.Ext(name)) + ".golden"
		if *update {
			if err := os.WriteFile(gname, []byte(got), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(gname)
		if err != nil {
			t.Fatalf("%v (run go test -update to create it)", err)
		}
		if got != string(want) {
			t.Errorf("%s: events differ from %s (go test -update rewrites it after review)\ngot:\n%s", name, gname, got)
		}
	}
}

// TestSplitInvariance: every split into two writes, and one byte at a time,
// gives exactly the events of one whole write (data chunks included).
func TestSplitInvariance(t *testing.T) {
	for _, name := range inputs(t) {
		in, _ := os.ReadFile(name)
		want := strings.Join(parse(t, name, in, whole).ev, "\n")
		for i := 0; i <= len(in); i++ {
			got := strings.Join(parse(t, name, in, func(p *Parser, in []byte) {
				p.Write(in[:i])
				p.Write(in[i:])
			}).ev, "\n")
			if got != want {
				t.Fatalf("%s: split at %d changes events:\n%s\nwant:\n%s", name, i, got, want)
			}
		}
		got := strings.Join(parse(t, name, in, func(p *Parser, in []byte) {
			for i := range in {
				p.Write(in[i : i+1])
			}
		}).ev, "\n")
		if got != want {
			t.Fatalf("%s: byte-at-a-time changes events:\n%s\nwant:\n%s", name, got, want)
		}
	}
}

func find(t *testing.T, r *rec, filename string) recPart {
	t.Helper()
	for _, p := range r.parts {
		if p.Filename == filename {
			return p
		}
	}
	t.Fatalf("no part named %q; parts: %v", filename, r.ev)
	return recPart{}
}

func TestNestedMail(t *testing.T) {
	in, _ := os.ReadFile("testdata/nested.eml")
	zip, _ := os.ReadFile("testdata/eicar.zip")
	r := parse(t, "nested.eml", in, whole)
	if len(r.anom) != 0 {
		t.Errorf("anomalies in a well-formed mail: %v", r.anom)
	}
	if len(r.msgs) != 2 {
		t.Fatalf("want 2 messages (top + forwarded), got %d", len(r.msgs))
	}
	top, fwd := r.msgs[0], r.msgs[1]
	if top.Subject != "日本語の件名テスト" {
		t.Errorf("ISO-2022-JP subject = %q", top.Subject)
	}
	if top.From != "Jürgen Müller <jm@example.org>" {
		t.Errorf("From = %q", top.From)
	}
	if top.To != "Office <office@example.com>, Accounts <acc@example.com>" {
		t.Errorf("folded To = %q", top.To)
	}
	if top.MessageID != "<1@example.org>" || top.Date != "Mon, 1 Jan 2024 00:00:00 +0000" {
		t.Errorf("Message-ID/Date = %q / %q", top.MessageID, top.Date)
	}
	if fwd.Subject != "Rechnung € fällig" {
		t.Errorf("forwarded UTF-8 Q subject = %q", fwd.Subject)
	}

	z := find(t, r, "€.exe") // RFC 2231 continuation wins over the Content-Type name
	if !bytes.Equal(z.data, zip) || !z.complete || z.Depth != 3 || z.ContentType != "application/zip" || z.Disposition != "attachment" {
		t.Errorf("zip in forwarded message: depth %d type %q disp %q complete %v, %d bytes equal=%v",
			z.Depth, z.ContentType, z.Disposition, z.complete, len(z.data), bytes.Equal(z.data, zip))
	}
	qp := find(t, r, "eicar.txt")
	if !bytes.Equal(qp.data, eicar) || qp.Encoding != "quoted-printable" || !qp.complete {
		t.Errorf("quoted-printable EICAR = %q (enc %q)", qp.data, qp.Encoding)
	}
	var b64, uu recPart
	for _, p := range r.parts {
		if p.Filename == "eicar.com" && p.Encoding == "base64" {
			b64 = p
		}
		if p.Filename == "eicar.com" && p.Encoding == "x-uuencode" {
			uu = p
		}
	}
	if !bytes.Equal(b64.data, eicar) || b64.Depth != 1 {
		t.Errorf("base64 EICAR = %q depth %d", b64.data, b64.Depth)
	}
	if !bytes.Equal(uu.data, eicar) || !uu.complete || uu.Depth != 1 {
		t.Errorf("uuencoded EICAR in the text part = %q", uu.data)
	}
	// The text around the uuencoded block is still reported.
	if string(r.parts[0].data) != "Hello, see the forwarded mail.\r\n" || string(r.parts[2].data) != "Bye.\r\n" {
		t.Errorf("text around uuencode: %q / %q", r.parts[0].data, r.parts[2].data)
	}
	html := r.parts[3]
	if string(html.data) != "<p>Rechnung für Dezember</p>" || html.Depth != 3 {
		t.Errorf("quoted-printable html = %q depth %d", html.data, html.Depth)
	}
}

func TestUpload(t *testing.T) {
	in, _ := os.ReadFile("testdata/upload.form")
	r := parse(t, "x.form", in, whole)
	if len(r.parts) != 2 || len(r.anom) != 0 {
		t.Fatalf("want 2 parts, no anomaly: %v", r.ev)
	}
	f := r.parts[1]
	if f.Filename != "eicar.com" || f.Disposition != "form-data" || f.Depth != 1 || !bytes.Equal(f.data, eicar) || !f.complete {
		t.Errorf("uploaded file: %+v data %q", f.Part, f.data)
	}
	if r.parts[0].Filename != "" || string(r.parts[0].data) != "hi there" {
		t.Errorf("form field: %+v %q", r.parts[0].Part, r.parts[0].data)
	}
	var p Parser
	if err := p.InitMultipart(r, Limits{}, "text/plain"); err == nil || !strings.Contains(err.Error(), "not multipart") {
		t.Errorf("InitMultipart(text/plain) = %v", err)
	}
	if err := p.InitMultipart(r, Limits{}, "multipart/form-data"); err == nil || !strings.Contains(err.Error(), "boundary") {
		t.Errorf("InitMultipart without boundary = %v", err)
	}
}

func TestBroken(t *testing.T) {
	in, _ := os.ReadFile("testdata/broken.eml")
	r := parse(t, "broken.eml", in, whole)
	want := []string{AnomalyBadBase64, AnomalyBadQP, AnomalyMissingBoundary, AnomalyNoBoundaryParam, AnomalyMissingBoundary}
	if strings.Join(r.anom, ",") != strings.Join(want, ",") {
		t.Errorf("anomalies = %q, want %q", r.anom, want)
	}
	if !bytes.Equal(r.parts[0].data, eicar) {
		t.Errorf("base64 with garbage inside = %q, want EICAR", r.parts[0].data)
	}
	if string(r.parts[1].data) != "a=ZZb=4" {
		t.Errorf("bad quoted-printable kept literally: %q", r.parts[1].data)
	}
	cut := r.parts[2]
	if string(cut.data) != "cut here" || cut.complete {
		t.Errorf("part cut by an outer boundary: %q complete=%v", cut.data, cut.complete)
	}
	last := r.parts[len(r.parts)-1]
	if last.complete || string(last.data) != "%PDF-1.4\n" {
		t.Errorf("part cut by the end of input: %q complete=%v", last.data, last.complete)
	}
}

func TestUUEncodingLF(t *testing.T) {
	in, _ := os.ReadFile("testdata/uu-lf.eml")
	r := parse(t, "uu", in, whole)
	if len(r.parts) != 1 || r.parts[0].Filename != "data.bin" || !bytes.Equal(r.parts[0].data, eicar) || !r.parts[0].complete {
		t.Fatalf("x-uuencode part with LF line ends: %v", r.ev)
	}
	if r.msgs[0].Subject != "café" {
		t.Errorf("iso-8859-1 Q subject = %q", r.msgs[0].Subject)
	}
}

func TestCharsets(t *testing.T) {
	for _, c := range []struct{ cs, hex, want string }{
		{"iso-2022-jp", "1b2442467c4b5c386c2546253925481b2842", "日本語テスト"},
		{"ISO-2022-JP", "1b2442467c4b5c386c1b284936451b2842", "日本語ｶﾅ"},
		{"shift_jis", "93fa967b8cea8365835883678740b6c5", "日本語テスト①ｶﾅ"},
		{"euc-jp", "c6fccbdcb8eca5c6a5b9a5c88eb68ec5", "日本語テストｶﾅ"},
		{"windows-1252", "80e9", "€é"},
		{"koi8-r", "41c1", "A\uFFFD"},
	} {
		b, _ := hex.DecodeString(c.hex)
		if got := string(toUTF8(nil, c.cs, b)); got != c.want {
			t.Errorf("%s %s = %q, want %q", c.cs, c.hex, got, c.want)
		}
	}
}

func TestFilenames(t *testing.T) {
	for _, c := range []struct{ cd, ct, want string }{
		{`attachment; filename*0*=utf-8''%E2%82%AC; filename*1=.exe`, `application/octet-stream`, "€.exe"},
		{`attachment; filename*=iso-8859-1'de'M%FCll.pdf`, ``, "Müll.pdf"},
		{`attachment; filename="=?UTF-8?B?w6TDtsO8LmRvYw==?="`, ``, "äöü.doc"},
		{`attachment`, `application/pdf; name="a \"b\".pdf"`, `a "b".pdf`},
		{`inline; filename*1="b.exe"; filename*0="a"`, ``, "ab.exe"},
		{`attachment; filename=` + strings.Repeat("x", 2000), ``, strings.Repeat("x", fieldCap)},
	} {
		_, dps := parseParams(c.cd)
		_, cps := parseParams(c.ct)
		if got := filename(dps, cps); got != c.want {
			t.Errorf("filename(%q, %q) = %q, want %q", c.cd, c.ct, got, c.want)
		}
	}
}

type nop struct{ data, anomalies int }

func (n *nop) Message(int, *Header) {}
func (n *nop) PartStart(*Part)      {}
func (n *nop) PartData(b []byte)    { n.data += len(b) }
func (n *nop) PartEnd(bool)         {}
func (n *nop) Anomaly(string)       { n.anomalies++ }

// heapGrowth feeds in, repeated, to a parser and reports the bytes allocated.
func heapGrowth(feed func()) uint64 {
	var a, b runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&a)
	feed()
	runtime.ReadMemStats(&b)
	return b.TotalAlloc - a.TotalAlloc
}

func TestHeaderBomb(t *testing.T) {
	r := &rec{}
	var p Parser
	p.Init(r, Limits{})
	line := []byte("X-Bomb: " + strings.Repeat("A", 1000) + "\r\n")
	fold := []byte(" " + strings.Repeat("B", 1000) + "\r\n")
	subj := []byte("Subject: " + strings.Repeat("=?UTF-8?Q?x?= ", 100))
	alloc := heapGrowth(func() {
		p.Write(subj)
		for i := 0; i < 10000; i++ { // 10 MB of header: one endless folded Subject, then other fields
			p.Write(fold)
		}
		for i := 0; i < 10000; i++ {
			p.Write(line)
		}
		p.Write([]byte("\r\nbody\r\n"))
		p.Close()
	})
	if alloc > 1<<20 {
		t.Errorf("a 20 MB header block allocated %d bytes: memory is not bounded", alloc)
	}
	if len(r.anom) != 1 || r.anom[0] != AnomalyHeaderLong {
		t.Errorf("anomalies = %q, want one %q", r.anom, AnomalyHeaderLong)
	}
	if len(r.msgs[0].Subject) != fieldCap {
		t.Errorf("endless Subject decoded to %d bytes, want the %d-byte cap", len(r.msgs[0].Subject), fieldCap)
	}
	if len(r.parts) != 1 || string(r.parts[0].data) != "body\r\n" {
		t.Errorf("body after the bomb: %v", r.ev[len(r.ev)-3:])
	}
	if cap(p.hbuf) > DefaultMaxHeader*2 {
		t.Errorf("header buffer grew to %d", cap(p.hbuf))
	}
}

func TestDeepNesting(t *testing.T) {
	var b bytes.Buffer
	b.WriteString("Subject: deep\r\n")
	for i := 0; i < 100; i++ {
		fmt.Fprintf(&b, "Content-Type: multipart/mixed; boundary=\"b%d\"\r\n\r\n--b%d\r\n", i, i)
	}
	b.WriteString("Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\nWDVPIVAl\r\n")
	for i := 99; i >= 0; i-- {
		fmt.Fprintf(&b, "--b%d--\r\n", i)
	}
	r := &rec{}
	var p Parser
	p.Init(r, Limits{})
	p.Write(b.Bytes())
	if len(p.stack) > DefaultMaxDepth {
		t.Errorf("boundary stack %d deep, limit %d", len(p.stack), DefaultMaxDepth)
	}
	p.Close()
	if strings.Join(r.anom, ",") != AnomalyDepth {
		t.Errorf("anomalies = %q, want one %q", r.anom, AnomalyDepth)
	}
	if len(r.parts) != 1 || r.parts[0].Depth != DefaultMaxDepth || r.parts[0].ContentType != "multipart/mixed" || !r.parts[0].complete {
		t.Fatalf("the too-deep multipart must be one opaque leaf at depth %d: %v", DefaultMaxDepth, r.ev)
	}
	if !bytes.Contains(r.parts[0].data, []byte("WDVPIVAl")) {
		t.Errorf("opaque leaf lost the nested content: %q", r.parts[0].data)
	}
}

func TestPartsLimit(t *testing.T) {
	var b bytes.Buffer
	b.WriteString("Content-Type: multipart/mixed; boundary=x\r\n\r\n")
	for i := 0; i < 50; i++ {
		b.WriteString("--x\r\n\r\npart\r\n")
	}
	b.WriteString("--x--\r\n")
	r := &rec{}
	var p Parser
	p.Init(r, Limits{MaxParts: 10})
	p.Write(b.Bytes())
	p.Close()
	if len(r.parts) != 9 || strings.Join(r.anom, ",") != AnomalyParts {
		t.Errorf("MaxParts 10 (the message counts): %d parts, anomalies %q", len(r.parts), r.anom)
	}
}

func b64body(n int) []byte {
	var b bytes.Buffer
	line := "TVqQAAMAAAAEAAAA//8AALgAAAAAAAAAQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\r\n"
	for b.Len() < n {
		b.WriteString(line)
	}
	return b.Bytes()
}

func TestWriteNoAlloc(t *testing.T) {
	n := &nop{}
	var p Parser
	p.Init(n, Limits{})
	p.Write([]byte("Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"))
	body := b64body(64 << 10)
	chunk := body[:1460]
	off := 0
	allocs := testing.AllocsPerRun(1000, func() {
		p.Write(body[off : off+len(chunk)])
		off = (off + 1460) % (len(body) - 1460)
	})
	if allocs != 0 {
		t.Errorf("Write of a base64 body: %v allocations per call, want 0", allocs)
	}
	if n.data == 0 || n.anomalies != 0 {
		t.Errorf("decoded %d bytes, %d anomalies", n.data, n.anomalies)
	}
}

func BenchmarkBase64Body(b *testing.B) {
	body := b64body(1 << 20)
	hdr := []byte("Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n")
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	b.ResetTimer()
	var p Parser
	for i := 0; i < b.N; i++ {
		p.Init(&nop{}, Limits{})
		p.Write(hdr)
		for off := 0; off < len(body); off += 1460 {
			p.Write(body[off:min(off+1460, len(body))])
		}
		p.Close()
	}
}

func FuzzParse(f *testing.F) {
	for _, g := range []string{"testdata/*.eml", "testdata/*.form"} {
		m, _ := filepath.Glob(g)
		for _, name := range m {
			in, _ := os.ReadFile(name)
			f.Add(in, uint16(7))
		}
	}
	f.Fuzz(func(t *testing.T, in []byte, step uint16) {
		lim := Limits{MaxDepth: 4, MaxParts: 50, MaxHeader: 1024}
		run := func(split int) *rec {
			r := &rec{}
			var p Parser
			p.Init(r, lim)
			if split <= 0 {
				p.Write(in)
			} else {
				for i := 0; i < len(in); i += split {
					p.Write(in[i:min(i+split, len(in))])
				}
			}
			if len(p.stack) > lim.MaxDepth || cap(p.hbuf) > 2*lim.MaxHeader+64 {
				t.Fatalf("limits exceeded: stack %d, header buffer %d", len(p.stack), cap(p.hbuf))
			}
			p.Close()
			for _, pt := range r.parts {
				if !pt.ended {
					t.Fatalf("a part never ended: %v", r.ev)
				}
			}
			return r
		}
		want := strings.Join(run(0).ev, "\n")
		got := strings.Join(run(int(step%64)+1).ev, "\n")
		if got != want {
			t.Fatalf("split every %d bytes changes the events:\n%s\nwant:\n%s", step%64+1, got, want)
		}
	})
}

// TestLongLine: a 12 MB base64 body without a single line break decodes fully
// with bounded memory.
func TestLongLine(t *testing.T) {
	body := bytes.Repeat([]byte("TVqQ"), 3<<20)
	n := &nop{}
	var p Parser
	p.Init(n, Limits{})
	p.Write([]byte("Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"))
	alloc := heapGrowth(func() {
		for off := 0; off < len(body); off += 1460 {
			p.Write(body[off:min(off+1460, len(body))])
		}
		p.Close()
	})
	if n.data != len(body)/4*3 || n.anomalies != 0 {
		t.Errorf("decoded %d bytes (want %d), %d anomalies", n.data, len(body)/4*3, n.anomalies)
	}
	if alloc > 64<<10 {
		t.Errorf("a 12 MB line allocated %d bytes", alloc)
	}
}
