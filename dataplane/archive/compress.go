package archive

import (
	"bytes"
	"compress/bzip2"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"path"
)

// counter counts the compressed bytes a decompressor consumed. It is an
// io.ByteReader so compress/flate reads exactly what it needs through it
// (no read-ahead buffer), which keeps the count exact.
type counter struct {
	r *bytes.Reader
	n int64
}

func (c *counter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func (c *counter) ReadByte() (byte, error) {
	b, err := c.r.ReadByte()
	if err == nil {
		c.n++
	}
	return b, err
}

// inflate reads a member from r (fed by in) under the size and ratio
// limits. hint is the size the header claims (may lie, 0 if unknown): it
// only sizes the first allocation. On a read error the bytes produced so
// far are returned with the error.
func (w *walker) inflate(kind Format, name string, r io.Reader, in *counter, hint int64) ([]byte, error) {
	limit := w.lim.MaxEntrySize
	// The buffer never grows past what the limits allow, plus one byte to
	// see that a member goes over.
	grow := min(limit, max(w.lim.MaxTotal-w.st.Bytes, 0)) + 1
	first := int64(64 << 10)
	if hint > 0 && hint < limit {
		first = min(hint+1, max(first, 8*in.r.Size()))
	}
	buf := make([]byte, 0, min(first, grow))
	for {
		if len(buf) == cap(buf) {
			if int64(cap(buf)) >= grow {
				grow = int64(cap(buf)) + 1 // only to read the byte that trips a limit
			}
			bigger := make([]byte, len(buf), min(2*int64(cap(buf)), grow))
			copy(bigger, buf)
			buf = bigger
		}
		chunk := buf[len(buf):cap(buf)]
		if len(chunk) > 256<<10 {
			chunk = chunk[:256<<10] // check the limits every 256 KiB
		}
		n, err := r.Read(chunk)
		buf = buf[:len(buf)+n]
		out := int64(len(buf))
		if w.st.Bytes+out > w.lim.MaxTotal {
			return nil, fmt.Errorf("%w: %s member %s: total unpacked %d bytes over %d", ErrBomb, kind, quote(name), w.st.Bytes+out, w.lim.MaxTotal)
		}
		if w.lim.MaxRatio > 0 && out > ratioFloor && out > int64(w.lim.MaxRatio)*max(in.n, 1) {
			return nil, fmt.Errorf("%w: %s member %s: ratio %d:1 over %d", ErrBomb, kind, quote(name), out/max(in.n, 1), w.lim.MaxRatio)
		}
		if out > limit {
			return nil, fmt.Errorf("%w: %s member %s: size over %d bytes", ErrBomb, kind, quote(name), limit)
		}
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

// gzip walks a gzip file: its members (RFC 1952 concatenation) form one
// stream, passed as one member. Trailing zeros or garbage after a complete
// member are ignored, as gzip(1) does.
func (w *walker) gzip(data []byte, parent string, depth int) error {
	in := &counter{r: bytes.NewReader(data)}
	zr, err := gzip.NewReader(in)
	if err != nil {
		return fmt.Errorf("%w: gzip %s: %v", ErrCorrupt, quote(parent), err)
	}
	name := stripSuffix(parent, ".tgz", ".tar", ".gz", "", ".gzip", "", ".z", "")
	if zr.Name != "" {
		name = join(path.Dir(parent), path.Base(zr.Name))
		if path.Dir(parent) == "." {
			name = path.Base(zr.Name)
		}
	}
	// The trailer's ISIZE (size mod 4 GiB) sizes the first buffer.
	hint := int64(binary.LittleEndian.Uint32(data[len(data)-4:]))
	var out []byte
	var rerr error
	for {
		zr.Multistream(false)
		var part []byte
		part, rerr = w.inflateMore(Gzip, name, zr, in, out, hint)
		out = part
		if rerr != nil {
			break
		}
		rest := data[len(data)-in.r.Len():]
		if len(rest) < 3 || rest[0] != 0x1f || rest[1] != 0x8b || rest[2] != 8 {
			break // end, or trailing padding/garbage
		}
		if err := zr.Reset(in); err != nil {
			rerr = err
			break
		}
	}
	if errors.Is(rerr, ErrBomb) {
		return rerr
	}
	if err := w.emit(Gzip, Entry{Path: name, Depth: depth}, out); err != nil {
		return err
	}
	if rerr != nil {
		return fmt.Errorf("%w: gzip %s: %v after %d bytes", ErrCorrupt, quote(parent), rerr, len(out))
	}
	return nil
}

// inflateMore appends the next gzip member's output to prev under the
// limits (the member size limit applies to the whole stream).
func (w *walker) inflateMore(kind Format, name string, r io.Reader, in *counter, prev []byte, hint int64) ([]byte, error) {
	if prev == nil {
		return w.inflate(kind, name, r, in, hint)
	}
	saved := w.lim.MaxEntrySize
	w.lim.MaxEntrySize -= int64(len(prev))
	w.st.Bytes += int64(len(prev)) // so the total check sees the earlier members
	more, err := w.inflate(kind, name, r, in, 0)
	w.st.Bytes -= int64(len(prev))
	w.lim.MaxEntrySize = saved
	if errors.Is(err, ErrBomb) {
		return nil, err
	}
	return append(prev, more...), err
}

// bzip2 walks a bzip2 file (concatenated streams form one member).
func (w *walker) bzip2(data []byte, parent string, depth int) error {
	in := &counter{r: bytes.NewReader(data)}
	name := stripSuffix(parent, ".tbz2", ".tar", ".tbz", ".tar", ".bz2", "", ".bzip2", "")
	out, rerr := w.inflate(Bzip2, name, bzip2.NewReader(in), in, 0)
	if errors.Is(rerr, ErrBomb) {
		return rerr
	}
	if err := w.emit(Bzip2, Entry{Path: name, Depth: depth}, out); err != nil {
		return err
	}
	if rerr != nil {
		return fmt.Errorf("%w: bzip2 %s: %v after %d bytes", ErrCorrupt, quote(parent), rerr, len(out))
	}
	return nil
}
