package contentenc

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/andybalholm/brotli"
	kgzip "github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

func sample(n int) []byte {
	rng := rand.New(rand.NewSource(1))
	words := strings.Fields("the quick brown fox jumps over lazy dog invoice attached please find below regards <html> <div class=\"x\"> </div> 0x4d5a 1234567890")
	var b bytes.Buffer
	for b.Len() < n {
		b.WriteString(words[rng.Intn(len(words))])
		if rng.Intn(8) == 0 {
			b.WriteByte(byte(rng.Intn(256)))
		}
		b.WriteByte(' ')
	}
	return b.Bytes()[:n]
}

func encode(t testing.TB, coding string, p []byte) []byte {
	var b bytes.Buffer
	var w io.WriteCloser
	switch coding {
	case "gzip":
		w = gzip.NewWriter(&b)
	case "zlib":
		w, _ = zlib.NewWriterLevel(&b, zlib.BestCompression)
	case "raw":
		w, _ = flate.NewWriter(&b, flate.BestCompression)
	case "br":
		w = brotli.NewWriterLevel(&b, 5)
	case "zstd":
		w, _ = zstd.NewWriter(&b, zstd.WithEncoderConcurrency(1))
	default:
		t.Fatalf("no encoder %q", coding)
	}
	w.Write(p)
	w.Close()
	return b.Bytes()
}

type result struct {
	out    []byte
	werr   error
	cerr   error
	inCall bool
	stray  int // calls to out outside Write/Close
}

// run feeds enc in pieces of step bytes (0 = one Write).
func run(t testing.TB, ce string, lim Limits, enc []byte, step int) *result {
	r := &result{}
	var d Decoder
	if err := d.Init([]byte(ce), lim, func(b []byte) {
		if !r.inCall {
			r.stray++
		}
		r.out = append(r.out, b...)
	}); err != nil {
		t.Fatalf("Init(%q) = %v", ce, err)
	}
	if step <= 0 {
		step = len(enc) + 1
	}
	for i := 0; i < len(enc); i += step {
		r.inCall = true
		err := d.Write(enc[i:min(i+step, len(enc))])
		r.inCall = false
		if err != nil {
			r.werr = err
			break
		}
	}
	r.inCall = true
	r.cerr = d.Close()
	r.inCall = false
	return r
}

type tcase struct {
	name, ce string
	enc      func(t testing.TB, p []byte) []byte
}

var cases = []tcase{
	{"gzip", "gzip", func(t testing.TB, p []byte) []byte { return encode(t, "gzip", p) }},
	{"x-gzip", "X-GZIP", func(t testing.TB, p []byte) []byte { return encode(t, "gzip", p) }},
	{"deflate zlib", "deflate", func(t testing.TB, p []byte) []byte { return encode(t, "zlib", p) }},
	{"deflate raw", "deflate", func(t testing.TB, p []byte) []byte { return encode(t, "raw", p) }},
	{"br", "br", func(t testing.TB, p []byte) []byte { return encode(t, "br", p) }},
	{"gzip over gzip", "gzip, gzip", func(t testing.TB, p []byte) []byte { return encode(t, "gzip", encode(t, "gzip", p)) }},
	{"deflate then br", "deflate,br", func(t testing.TB, p []byte) []byte { return encode(t, "br", encode(t, "raw", p)) }},
	{"zstd", "zstd", func(t testing.TB, p []byte) []byte { return encode(t, "zstd", p) }},
	{"gzip then zstd", "gzip, zstd", func(t testing.TB, p []byte) []byte { return encode(t, "zstd", encode(t, "gzip", p)) }},
	{"identity", "identity", func(t testing.TB, p []byte) []byte { return p }},
	{"identity, gzip", " identity , gzip ", func(t testing.TB, p []byte) []byte { return encode(t, "gzip", p) }},
}

func TestCodings(t *testing.T) {
	plain := sample(200 << 10)
	for _, c := range cases {
		enc := c.enc(t, plain)
		for _, step := range []int{0, 1460, 1} {
			if step == 1 && len(enc) > 100<<10 {
				continue
			}
			r := run(t, c.ce, Limits{}, enc, step)
			if r.werr != nil || r.cerr != nil || !bytes.Equal(r.out, plain) {
				t.Errorf("%s step %d: write %v close %v, %d of %d bytes equal=%v", c.name, step, r.werr, r.cerr, len(r.out), len(plain), bytes.Equal(r.out, plain))
			}
			if r.stray != 0 {
				t.Errorf("%s: out called %d times outside Write/Close", c.name, r.stray)
			}
		}
	}
}

// TestSynchronous: a complete stream is fully decoded when Write returns,
// before Close.
func TestSynchronous(t *testing.T) {
	plain := sample(100 << 10)
	for _, c := range cases {
		enc := c.enc(t, plain)
		var got []byte
		var d Decoder
		d.Init([]byte(c.ce), Limits{}, func(b []byte) { got = append(got, b...) })
		if err := d.Write(enc); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, plain) {
			t.Errorf("%s: %d of %d bytes out when Write returned", c.name, len(got), len(plain))
		}
		d.Close()
	}
}

func TestEverySplit(t *testing.T) {
	plain := []byte("X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H* and some more text text text")
	for _, c := range cases {
		enc := c.enc(t, plain)
		for i := 0; i <= len(enc); i++ {
			r := &result{}
			var d Decoder
			d.Init([]byte(c.ce), Limits{}, func(b []byte) { r.out = append(r.out, b...) })
			e1 := d.Write(enc[:i])
			e2 := d.Write(enc[i:])
			e3 := d.Close()
			if e1 != nil || e2 != nil || e3 != nil || !bytes.Equal(r.out, plain) {
				t.Fatalf("%s split at %d: %v %v %v, out %q", c.name, i, e1, e2, e3, r.out)
			}
		}
	}
}

func TestTruncated(t *testing.T) {
	plain := sample(4 << 10)
	for _, c := range cases {
		if strings.Contains(c.ce, "identity") && !strings.Contains(c.ce, "gzip") {
			continue
		}
		enc := c.enc(t, plain)
		for n := 1; n < len(enc); n++ {
			r := run(t, c.ce, Limits{}, enc[:n], 0)
			err := r.werr
			if err == nil {
				err = r.cerr
			}
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("%s cut to %d of %d bytes: error %v, want ErrCorrupt", c.name, n, len(enc), err)
			}
		}
	}
	r := run(t, "gzip", Limits{}, []byte("<html>not gzip at all</html>"), 0)
	if !errors.Is(r.werr, ErrCorrupt) || !strings.Contains(r.werr.Error(), "gzip") {
		t.Errorf("garbage as gzip: %v", r.werr)
	}
	r = run(t, "gzip", Limits{}, nil, 0)
	if r.cerr != nil {
		t.Errorf("empty body (HEAD/304) with Content-Encoding gzip: %v", r.cerr)
	}
}

func TestInitErrors(t *testing.T) {
	var d Decoder
	for ce, want := range map[string]error{
		"compress":            ErrUnsupported,
		"gzip, exi":           ErrUnsupported,
		"gzip,gzip,gzip,gzip": ErrBomb,
	} {
		err := d.Init([]byte(ce), Limits{}, func([]byte) {})
		if !errors.Is(err, want) {
			t.Errorf("Init(%q) = %v, want %v", ce, err, want)
		}
		if err2 := d.Write([]byte("x")); err2 != err {
			t.Errorf("Write after failed Init(%q) = %v", ce, err2)
		}
	}
}

// zeroBomb streams a gzip file of size bytes of zeros (10 GiB: ~10 MB of
// input) without storing it: a deflate block of 1 MiB of zeros after a sync
// flush encodes to the same bytes every time, so it is repeated.
type zeroBomb struct {
	parts [][]byte
	rep   []byte
	n     int // repetitions left
	tail  func() []byte
}

func newZeroBomb(size int64) *zeroBomb {
	var b bytes.Buffer
	w, _ := flate.NewWriter(&b, flate.BestCompression)
	z := make([]byte, 1<<20)
	var chunks [][]byte
	for i := 0; i < 3; i++ {
		s := b.Len()
		w.Write(z)
		w.Flush()
		chunks = append(chunks, append([]byte(nil), b.Bytes()[s:]...))
	}
	s := b.Len()
	w.Close()
	final := append([]byte(nil), b.Bytes()[s:]...)
	hdr := []byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255}
	return &zeroBomb{
		parts: [][]byte{hdr, chunks[0], chunks[1]},
		rep:   chunks[2],
		n:     int(size>>20) - 2,
		tail: func() []byte {
			crc := uint32(0)
			for i := int64(0); i < size>>20; i++ {
				crc = crc32.Update(crc, crc32.IEEETable, z)
			}
			t := binary.LittleEndian.AppendUint32(final, crc)
			return binary.LittleEndian.AppendUint32(t, uint32(size))
		},
	}
}

func (z *zeroBomb) next() []byte {
	switch {
	case len(z.parts) > 0:
		p := z.parts[0]
		z.parts = z.parts[1:]
		return p
	case z.n > 0:
		z.n--
		return z.rep
	case z.tail != nil:
		t := z.tail()
		z.tail = nil
		return t
	}
	return nil
}

func TestGzipBomb(t *testing.T) {
	// The generator is right: a small one decodes to exactly its size in zeros.
	small := newZeroBomb(8 << 20)
	var enc []byte
	for p := small.next(); p != nil; p = small.next() {
		enc = append(enc, p...)
	}
	zr, _ := gzip.NewReader(bytes.NewReader(enc))
	if n, err := io.Copy(io.Discard, zr); n != 8<<20 || err != nil {
		t.Fatalf("bomb generator: %d bytes, %v", n, err)
	}

	for _, c := range []struct {
		name string
		lim  Limits
		want string
	}{
		{"ratio", Limits{}, "ratio"},
		{"max output", Limits{MaxRatio: 1 << 30}, "output passed"},
	} {
		var out int64
		var d Decoder
		d.Init([]byte("gzip"), c.lim, func(b []byte) { out += int64(len(b)) })
		bomb := newZeroBomb(10 << 30)
		var err error
		fed := 0
		alloc := heapGrowth(func() {
			for p := bomb.next(); p != nil && fed < 200<<20; p = bomb.next() {
				for len(p) > 0 && err == nil {
					k := min(1460, len(p))
					err = d.Write(p[:k])
					p = p[k:]
					fed += k
				}
				if err != nil {
					break
				}
			}
		})
		if !errors.Is(err, ErrBomb) || !strings.Contains(err.Error(), c.want) {
			t.Fatalf("%s: 10 GiB of zeros: %v after %d input bytes, want ErrBomb (%s)", c.name, err, fed, c.want)
		}
		if err2 := d.Write(bomb.next()); err2 != err {
			t.Errorf("%s: Write after the bomb = %v, want the same error", c.name, err2)
		}
		if cerr := d.Close(); cerr != err {
			t.Errorf("%s: Close = %v", c.name, cerr)
		}
		in, o := d.Stats()
		if o != out || o > DefaultMaxOutput {
			t.Errorf("%s: Stats out %d, delivered %d, limit %d", c.name, o, out, DefaultMaxOutput)
		}
		if alloc > 4<<20 {
			t.Errorf("%s: stopping the bomb allocated %d bytes", c.name, alloc)
		}
		t.Logf("%s: stopped after %d input bytes, %d output bytes, %d bytes allocated: %v", c.name, in, o, alloc, err)
	}
}

func TestInnerLayerBomb(t *testing.T) {
	// The outer (gzip) layer yields 3 MiB of stored deflate blocks: the
	// intermediate output passes MaxOutput before the final one does.
	var b bytes.Buffer
	w, _ := flate.NewWriter(&b, flate.NoCompression)
	w.Write(make([]byte, 3<<20))
	w.Close()
	enc := encode(t, "gzip", b.Bytes())
	r := run(t, "deflate, gzip", Limits{MaxOutput: 1 << 20, MaxRatio: 1 << 30}, enc, 1460)
	if !errors.Is(r.werr, ErrBomb) || !strings.Contains(r.werr.Error(), "inner gzip layer") {
		t.Errorf("intermediate layer of 3 MiB with MaxOutput 1 MiB: %v", r.werr)
	}
	// Final layer too large.
	enc = encode(t, "gzip", encode(t, "gzip", make([]byte, 3<<20)))
	r = run(t, "gzip, gzip", Limits{MaxOutput: 1 << 20, MaxRatio: 1 << 30}, enc, 1460)
	if !errors.Is(r.werr, ErrBomb) || len(r.out) != 1<<20 {
		t.Errorf("final layer of 3 MiB with MaxOutput 1 MiB: %v, %d bytes out", r.werr, len(r.out))
	}
}

func heapGrowth(f func()) uint64 {
	var a, b runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&a)
	f()
	runtime.ReadMemStats(&b)
	return b.TotalAlloc - a.TotalAlloc
}

// TestNoGoroutineOutlivesClose: Close (also after errors, bombs, re-Init) leaves no goroutine.
func TestNoGoroutineOutlivesClose(t *testing.T) {
	before := runtime.NumGoroutine()
	plain := sample(50 << 10)
	enc := encode(t, "gzip", plain)
	for i := 0; i < 50; i++ {
		var d Decoder
		d.Init([]byte("gzip"), Limits{}, func([]byte) {})
		d.Write(enc[:len(enc)/2]) // running, mid-stream
		switch i % 5 {
		case 0:
			d.Close()
		case 4:
			d.Init([]byte("zstd"), Limits{}, func([]byte) {})
			d.Write(encode(t, "zstd", plain))
			d.Close()
		case 1:
			d.Init([]byte("br"), Limits{}, func([]byte) {}) // re-Init closes the old one
			d.Close()
		case 2:
			d.Write([]byte("garbage that breaks the deflate stream \xff\xff\xff\xff"))
			d.Close()
		case 3:
			d.Write(enc[len(enc)/2:])
			d.Close()
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		runtime.Gosched()
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Errorf("%d goroutines before, %d after closing 50 decoders", before, n)
	}
}

func TestWriteNoAlloc(t *testing.T) {
	plain := sample(8 << 20)
	enc := encode(t, "gzip", plain)
	var d Decoder
	d.Init([]byte("gzip"), Limits{}, func([]byte) {})
	d.Write(enc[:4096])
	off := 4096
	allocs := testing.AllocsPerRun(500, func() {
		d.Write(enc[off : off+1460])
		off += 1460
	})
	d.Close()
	if allocs != 0 {
		t.Errorf("Write: %v allocations per call, want 0", allocs)
	}
}

// BenchmarkGzip10MB: output MB/s for a 10 MB body fed in 1460-byte writes,
// against gzip.NewReader over the whole buffer in the same run
// (metric x-stdlib = our time / stdlib time), and klauspost's gzip over the
// whole buffer (the same decoder without the Write handshake).
func BenchmarkGzip10MB(b *testing.B) {
	plain := sample(10 << 20)
	enc := encode(b, "gzip", plain)
	b.SetBytes(int64(len(plain)))
	b.ReportAllocs()
	var ours, std, kp time.Duration
	var d Decoder
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		var n int
		d.Init([]byte("gzip"), Limits{}, func(p []byte) { n += len(p) })
		for off := 0; off < len(enc); off += 1460 {
			if err := d.Write(enc[off:min(off+1460, len(enc))]); err != nil {
				b.Fatal(err)
			}
		}
		if err := d.Close(); err != nil || n != len(plain) {
			b.Fatal(err, n)
		}
		t1 := time.Now()
		zr, _ := gzip.NewReader(bytes.NewReader(enc))
		if m, _ := io.Copy(io.Discard, zr); m != int64(len(plain)) {
			b.Fatal(m)
		}
		t2 := time.Now()
		kr, _ := kgzip.NewReader(bytes.NewReader(enc)) // the decoder we use, without the handshake
		if m, _ := io.Copy(io.Discard, kr); m != int64(len(plain)) {
			b.Fatal(m)
		}
		ours += t1.Sub(t0)
		std += t2.Sub(t1)
		kp += time.Since(t2)
	}
	b.ReportMetric(float64(len(plain))*float64(b.N)/kp.Seconds()/1e6, "MB/s-klauspost-whole")
	b.ReportMetric(float64(len(plain))*float64(b.N)/ours.Seconds()/1e6, "MB/s-ours")
	b.ReportMetric(float64(len(plain))*float64(b.N)/std.Seconds()/1e6, "MB/s-stdlib")
	b.ReportMetric(ours.Seconds()/std.Seconds(), "x-stdlib")
}

func FuzzDecode(f *testing.F) {
	p := []byte("hello hello hello EICAR")
	for i, c := range cases {
		f.Add(c.enc(f, p), uint8(i), uint8(3))
	}
	f.Fuzz(func(t *testing.T, enc []byte, ci, step uint8) {
		c := cases[int(ci)%len(cases)]
		lim := Limits{MaxOutput: 1 << 20}
		a := run(t, c.ce, lim, enc, 0)
		b := run(t, c.ce, lim, enc, int(step%32)+1)
		ea, eb := fmt.Sprint(errors.Is(a.werr, ErrBomb), errors.Is(a.werr, ErrCorrupt), a.cerr == nil), fmt.Sprint(errors.Is(b.werr, ErrBomb), errors.Is(b.werr, ErrCorrupt), b.cerr == nil)
		if a.stray+b.stray != 0 || len(a.out) > 1<<20 || len(b.out) > 1<<20 {
			t.Fatalf("stray %d/%d, out %d/%d", a.stray, b.stray, len(a.out), len(b.out))
		}
		if a.werr == nil && a.cerr == nil && (ea != eb || !bytes.Equal(a.out, b.out)) {
			t.Fatalf("%s: split every %d changes the result: %v %v / %v %v", c.name, step%32+1, a.werr, a.cerr, b.werr, b.cerr)
		}
	})
}

func TestZstdBomb(t *testing.T) {
	enc := encode(t, "zstd", make([]byte, 100<<20))
	r := run(t, "zstd", Limits{}, enc, 1460)
	if !errors.Is(r.werr, ErrBomb) || len(r.out) > DefaultMaxOutput {
		t.Errorf("100 MiB of zeros in %d bytes of zstd: %v, %d bytes out", len(enc), r.werr, len(r.out))
	}
}
