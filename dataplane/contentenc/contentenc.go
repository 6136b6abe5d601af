// Package contentenc decodes HTTP Content-Encoding (and Transfer-Encoding
// codings other than chunked) for the antivirus: gzip / x-gzip, deflate (zlib
// or raw deflate, as browsers accept both), br (brotli), zstd and identity, stacked
// up to Limits.MaxLayers, with decompression-bomb limits.
//
// Contract:
//   - Write is synchronous: when it returns, out has been called with every byte
//     the decompressors released for the input so far, and no call to out
//     happens until the next Write or Close. The stdlib and brotli decoders are
//     pull readers, so each active Decoder runs them on one goroutine that Write
//     hands its chunk to and then waits for, until that goroutine asks for more
//     input (a strict handshake over unbuffered channels: the two never run at
//     once, proven by go test -race). out therefore runs on that goroutine, but
//     only while Write or Close is blocked. Caveat, from compress/flate: inflate
//     releases decoded bytes at the end of each deflate block or each 32 KiB of
//     window, so up to one block (at most 32 KiB per layer) of output can
//     trail the input that produced it until a later Write or Close.
//   - Close is mandatory once Write was called: it ends the input, waits for the
//     goroutine to exit (none outlives Close) and returns ErrCorrupt if the
//     stream was truncated.
//   - Limits (documented defaults): at most 3 layers; at most 64 MiB of output
//     per layer; output at most 1000x the input once past 1 MiB. The first
//     error is sticky: later Writes are no-ops returning it.
//
// Decoders: github.com/klauspost/compress flate/gzip/zlib/zstd (already in the
// module graph through nats-server; unlike compress/flate it reuses its
// Huffman tables, so Write does not allocate) and github.com/andybalholm/brotli.
// Concatenated gzip members are decoded as one body. A truncated stream of any
// coding, br included (see brLayer), is ErrCorrupt at Close.
//
// Cost: identity is a direct call to out. Other codings: two channel
// handoffs (goroutine switches) per Write, the decompressor's own work, no
// allocation per Write; Init of a compressed body allocates the decoders
// (about 50 KiB for gzip) and a 32 KiB output buffer kept across Inits.
package contentenc

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/flate"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zlib"
	"github.com/klauspost/compress/zstd"
)

// Defaults for zero Limits fields.
const (
	DefaultMaxLayers = 3
	DefaultMaxOutput = 64 << 20
	DefaultMaxRatio  = 1000
	// ratioFloor: the ratio is not judged before this much output, so small
	// highly compressible bodies (a page of spaces) pass.
	ratioFloor = 1 << 20
	bufSize    = 32 << 10
	// zstdMaxWindow is RFC 9659's limit for zstd as an HTTP content coding
	// (8 MiB); a larger window is ErrCorrupt. It is also what one zstd body
	// can hold in memory.
	zstdMaxWindow = 8 << 20
)

// Errors, wrapped with details.
var (
	// ErrBomb: more layers than MaxLayers (from Init), or a layer's output
	// passed MaxOutput, or the output/input ratio passed MaxRatio (Write/Close).
	ErrBomb = errors.New("contentenc: decompression bomb")
	// ErrUnsupported: a coding other than gzip, x-gzip, deflate, br, zstd, identity (Init).
	ErrUnsupported = errors.New("contentenc: unsupported content coding")
	// ErrCorrupt: the encoded stream is malformed (Write) or truncated (Close).
	ErrCorrupt = errors.New("contentenc: corrupt encoded body")
)

// Limits bound one Decoder; zero fields take the Default* values.
type Limits struct {
	MaxLayers int
	MaxOutput int64
	MaxRatio  int
}

type coding uint8

const (
	cGzip coding = iota
	cDeflate
	cBrotli
	cZstd
)

func (c coding) String() string {
	return [...]string{"gzip", "deflate", "br", "zstd"}[c]
}

// Decoder decodes one body. The zero value is ready for Init.
type Decoder struct {
	lim     Limits
	out     func([]byte)
	layers  []coding
	in, n   int64
	err     error
	running bool // the goroutine was started and has not exited
	done    bool // the goroutine exited (stream ended or error)

	feed chan []byte   // Write/Close → goroutine: a chunk, nil = end of input
	more chan struct{} // goroutine → Write: chunk consumed, send more
	exit chan struct{} // closed by the goroutine as it returns

	cur  []byte // the chunk being consumed (owned by the goroutine while Write waits)
	back []byte // bytes peeked and pushed back
	peek [2]byte
	have bool // a chunk was received since the goroutine started
	eof  bool
	buf  []byte
}

// Init prepares d for a body sent with the given Content-Encoding value (a
// comma-separated list of codings in the order they were applied). out gets the
// decoded bytes; its slice is valid only during the call. A Decoder still
// running from an earlier body is closed first.
func (d *Decoder) Init(contentEncoding []byte, lim Limits, out func([]byte)) error {
	if d.running {
		d.Close()
	}
	if lim.MaxLayers <= 0 {
		lim.MaxLayers = DefaultMaxLayers
	}
	if lim.MaxOutput <= 0 {
		lim.MaxOutput = DefaultMaxOutput
	}
	if lim.MaxRatio <= 0 {
		lim.MaxRatio = DefaultMaxRatio
	}
	*d = Decoder{lim: lim, out: out, layers: d.layers[:0], buf: d.buf}
	for _, f := range bytes.Split(contentEncoding, []byte(",")) {
		f = bytes.TrimSpace(f)
		switch {
		case len(f) == 0 || bytes.EqualFold(f, []byte("identity")):
			continue
		case bytes.EqualFold(f, []byte("gzip")) || bytes.EqualFold(f, []byte("x-gzip")):
			d.layers = append(d.layers, cGzip)
		case bytes.EqualFold(f, []byte("deflate")):
			d.layers = append(d.layers, cDeflate)
		case bytes.EqualFold(f, []byte("br")):
			d.layers = append(d.layers, cBrotli)
		case bytes.EqualFold(f, []byte("zstd")):
			d.layers = append(d.layers, cZstd)
		default:
			d.err = fmt.Errorf("%w: %q (supported: gzip, x-gzip, deflate, br, zstd, identity)", ErrUnsupported, f)
			return d.err
		}
		if len(d.layers) > lim.MaxLayers {
			d.err = fmt.Errorf("%w: Content-Encoding %q has more than %d layers", ErrBomb, contentEncoding, lim.MaxLayers)
			return d.err
		}
	}
	return nil
}

// Stats reports the bytes given to Write and the bytes passed to out.
func (d *Decoder) Stats() (in, out int64) { return d.in, d.n }

// Write decodes the next chunk of the encoded body (see the package contract).
func (d *Decoder) Write(b []byte) error {
	if d.err != nil {
		return d.err
	}
	d.in += int64(len(b))
	if len(d.layers) == 0 {
		if len(b) > 0 {
			d.n += int64(len(b))
			d.out(b)
		}
		return nil
	}
	if d.done || len(b) == 0 {
		return nil // trailing bytes after the end of the stream are ignored
	}
	if !d.running {
		d.start()
	}
	d.feed <- b
	select {
	case <-d.more:
	case <-d.exit:
		d.running, d.done = false, true
	}
	return d.err
}

// Close ends the input and waits for the decoder goroutine to exit. It returns
// ErrCorrupt if the encoded stream was truncated, or the error Write returned.
func (d *Decoder) Close() error {
	if d.running {
		d.feed <- nil
		<-d.exit
		d.running, d.done = false, true
	}
	if d.err == nil && len(d.layers) > 0 && d.in == 0 {
		return nil // an empty body (HEAD, 204, 304) has nothing to decode
	}
	return d.err
}

func (d *Decoder) start() {
	if d.buf == nil {
		d.buf = make([]byte, bufSize)
	}
	d.feed = make(chan []byte)
	d.more = make(chan struct{})
	d.exit = make(chan struct{})
	d.running = true
	go d.run()
}

// run is the decoder goroutine: it only runs while Write or Close waits.
func (d *Decoder) run() {
	defer close(d.exit)
	var zs []*zstd.Decoder
	defer func() {
		for _, z := range zs {
			z.Close()
		}
	}()
	var r, under io.Reader = (*source)(d), nil
	for i := len(d.layers) - 1; i >= 0; i-- {
		if i == 0 && len(d.layers) > 1 {
			under = r
		}
		if d.layers[i] == cZstd {
			z, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true),
				zstd.WithDecoderMaxWindow(zstdMaxWindow))
			if err != nil {
				d.err = d.corrupt(cZstd, err)
				return
			}
			zs = append(zs, z)
			r = z
			if i > 0 {
				r = &limited{d: d, r: z, c: cZstd}
			}
			continue
		}
		nr, err := d.layer(d.layers[i], r)
		if err != nil {
			d.err = d.corrupt(d.layers[i], err)
			return
		}
		if i > 0 {
			nr = &limited{d: d, r: nr, c: d.layers[i]}
		}
		r = nr
	}
	for {
		n, err := r.Read(d.buf)
		if n > 0 {
			if d.err = d.check(int64(n)); d.err != nil {
				if room := d.lim.MaxOutput - d.n; room > 0 && room < int64(n) {
					d.n += room
					d.out(d.buf[:room])
				}
				return
			}
			d.n += int64(n)
			d.out(d.buf[:n])
		}
		switch {
		case err == io.EOF:
			// The layers below must end cleanly too (a truncated outer
			// layer can still carry a complete inner stream).
			if under != nil {
				if _, err := io.Copy(io.Discard, under); err != nil {
					d.err = d.corrupt(d.layers[1], err)
				}
			}
			return
		case err != nil:
			if d.err == nil {
				d.err = d.corrupt(d.layers[0], err)
			}
			return
		}
	}
}

func (d *Decoder) corrupt(c coding, err error) error {
	var be *bombErr
	if errors.As(err, &be) {
		return be.err
	}
	if err == io.ErrUnexpectedEOF || err == io.EOF {
		return fmt.Errorf("%w: %s stream truncated after %d input bytes (the body ended early)", ErrCorrupt, c, d.in)
	}
	return fmt.Errorf("%w: %s: %v", ErrCorrupt, c, err)
}

// check judges n more bytes of final output.
func (d *Decoder) check(n int64) error {
	out := d.n + n
	if out > d.lim.MaxOutput {
		return fmt.Errorf("%w: output passed %d bytes from %d input bytes", ErrBomb, d.lim.MaxOutput, d.in)
	}
	if out > ratioFloor && out > d.in*int64(d.lim.MaxRatio) {
		return fmt.Errorf("%w: %d bytes from %d input bytes passes the %d:1 ratio", ErrBomb, out, d.in, d.lim.MaxRatio)
	}
	return nil
}

func (d *Decoder) layer(c coding, r io.Reader) (io.Reader, error) {
	switch c {
	case cGzip:
		g := &gzipLayer{r: asByteReader(r)}
		if err := g.z.Reset(g.r); err != nil {
			return nil, err
		}
		g.z.Multistream(false)
		return g, nil
	case cDeflate:
		br := asByteReader(r)
		var hdr []byte
		if s, ok := br.(*source); ok {
			hdr = s.peek2()
		} else {
			hdr, _ = br.(*bufio.Reader).Peek(2)
		}
		if len(hdr) == 2 && hdr[0]&0x0F == 8 && hdr[0]>>4 <= 7 && (uint16(hdr[0])<<8|uint16(hdr[1]))%31 == 0 {
			return zlib.NewReader(br)
		}
		return flate.NewReader(br), nil
	default:
		l := &brLayer{under: r}
		l.br = brotli.NewReader((*brSrc)(l))
		return l, nil
	}
}

func asByteReader(r io.Reader) io.Reader {
	if s, ok := r.(*source); ok {
		return s
	}
	return bufio.NewReaderSize(r, 4096)
}

// gzipLayer reads concatenated gzip members (RFC 1952 2.2) itself: the
// library's multistream mode reads the next member's header before it returns
// the last bytes of the previous one, which would hold them past Write.
type gzipLayer struct {
	z gzip.Reader
	r io.Reader // a *source or *bufio.Reader
}

func (g *gzipLayer) Read(p []byte) (int, error) {
	for {
		n, err := g.z.Read(p)
		if err != io.EOF {
			return n, err
		}
		if n > 0 {
			return n, nil
		}
		// Member done: another one follows, or the body ends here.
		if s, ok := g.r.(*source); ok {
			if !s.fill() {
				return 0, io.EOF
			}
		} else if _, err := g.r.(*bufio.Reader).Peek(1); err != nil {
			return 0, err // io.EOF: clean end; else the layer below failed
		}
		if err := g.z.Reset(g.r); err != nil {
			return 0, err
		}
		g.z.Multistream(false)
	}
}

// brLayer tells a complete brotli stream from a truncated one, which
// brotli.Reader does not (it passes the end of its input through as io.EOF).
// At the end of input it hands the decoder one probe byte: a finished decoder
// refuses it ("excessive input": a clean end); an unfinished one takes it as
// stream data and then meets io.ErrUnexpectedEOF. Output after the probe is
// dropped: brotli.Reader only reads input once every byte the earlier input
// allows has been returned.
type brLayer struct {
	br     *brotli.Reader
	under  io.Reader
	probed bool
}

// Read is brotli.Reader's source.
func (l *brLayer) readSrc(p []byte) (int, error) {
	n, err := l.under.Read(p)
	if n == 0 && err == io.EOF && len(p) > 0 {
		if l.probed {
			return 0, io.ErrUnexpectedEOF
		}
		l.probed = true
		p[0] = 0xFF
		return 1, nil
	}
	return n, err
}

type brSrc brLayer

func (s *brSrc) Read(p []byte) (int, error) { return (*brLayer)(s).readSrc(p) }

func (l *brLayer) Read(p []byte) (int, error) {
	n, err := l.br.Read(p)
	if l.probed {
		n = 0
	}
	switch {
	case err == nil || err == io.EOF:
		if err == io.EOF && l.probed {
			return 0, io.ErrUnexpectedEOF
		}
		return n, err
	case err.Error() == "brotli: excessive input":
		return n, io.EOF
	}
	return n, err
}

type bombErr struct{ err error }

func (b *bombErr) Error() string { return b.err.Error() }

// limited bounds an inner layer's output by MaxOutput.
type limited struct {
	d *Decoder
	r io.Reader
	c coding
	n int64
}

func (l *limited) Read(p []byte) (int, error) {
	n, err := l.r.Read(p)
	l.n += int64(n)
	if l.n > l.d.lim.MaxOutput {
		return 0, &bombErr{fmt.Errorf("%w: inner %s layer passed %d bytes from %d input bytes", ErrBomb, l.c, l.d.lim.MaxOutput, l.d.in)}
	}
	return n, err
}

// source is the goroutine's view of the input: it blocks for the next chunk.
type source Decoder

// fill waits for input; false at the end of input.
func (s *source) fill() bool {
	for len(s.back) == 0 && len(s.cur) == 0 {
		if s.eof {
			return false
		}
		if s.have {
			s.more <- struct{}{}
		}
		s.cur = <-s.feed
		s.have = true
		if s.cur == nil {
			s.eof = true
		}
	}
	return true
}

func (s *source) Read(p []byte) (int, error) {
	if !s.fill() {
		return 0, io.EOF
	}
	if len(s.back) > 0 {
		n := copy(p, s.back)
		s.back = s.back[n:]
		return n, nil
	}
	n := copy(p, s.cur)
	s.cur = s.cur[n:]
	return n, nil
}

func (s *source) ReadByte() (byte, error) {
	if !s.fill() {
		return 0, io.EOF
	}
	if len(s.back) > 0 {
		c := s.back[0]
		s.back = s.back[1:]
		return c, nil
	}
	c := s.cur[0]
	s.cur = s.cur[1:]
	return c, nil
}

// peek2 reads up to two bytes and pushes them back.
func (s *source) peek2() []byte {
	n := 0
	for n < 2 {
		c, err := s.ReadByte()
		if err != nil {
			break
		}
		s.peek[n] = c
		n++
	}
	s.back = s.peek[:n]
	return s.back
}
