package archive

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/ulikunitz/xz/lzma"
)

// The xz container framing is read here and only the LZMA2 data is handed
// to github.com/ulikunitz/xz/lzma: the xz package's reader allocates the
// dictionary size a block header claims (up to 4 GiB) before decoding a
// byte, a memory bomb in 100 bytes. Here the dictionary is capped at
// MaxEntrySize: a valid stream never refers further back than the output
// produced so far, and the output is cut at MaxEntrySize anyway.

var errXzFormat = errors.New("not an xz stream")

// xzCheckSize is the check field's size by check type.
var xzCheckSize = [16]int{0, 4, 4, 4, 8, 8, 8, 16, 16, 16, 32, 32, 32, 64, 64, 64}

// xz walks an xz file: its blocks and concatenated streams form one member.
func (w *walker) xz(data []byte, parent string, depth int) error {
	name := stripSuffix(parent, ".txz", ".tar", ".xz", "")
	in := &counter{r: bytes.NewReader(data)}
	out := make([]byte, 0, 64<<10)
	var rerr, skip error
	for rerr == nil && skip == nil {
		out, rerr, skip = w.xzStream(data, in, name, out)
		if rerr != nil || skip != nil {
			break
		}
		rest := data[len(data)-in.r.Len():]
		for len(rest) >= 4 && string(rest[:4]) == "\x00\x00\x00\x00" { // stream padding
			rest = rest[4:]
		}
		in.r.Seek(int64(len(data)-len(rest)), io.SeekStart) //nolint:errcheck // in range
		if len(rest) < 6 || string(rest[:6]) != "\xfd7zXZ\x00" {
			break
		}
	}
	if errors.Is(rerr, ErrBomb) {
		return rerr
	}
	if skip != nil && len(out) == 0 {
		return w.emit(Xz, Entry{Path: name, Depth: depth, Skipped: skip.Error()}, nil)
	}
	if err := w.emit(Xz, Entry{Path: name, Depth: depth}, out); err != nil {
		return err
	}
	if rerr != nil {
		return fmt.Errorf("%w: xz %s: %v after %d bytes", ErrCorrupt, quote(parent), rerr, len(out))
	}
	if skip != nil {
		return fmt.Errorf("%w: xz %s: %v after %d bytes", ErrCorrupt, quote(parent), skip, len(out))
	}
	return nil
}

// xzStream decodes one stream at in's position, appending to out. skip is
// set for a block the package cannot decode (a filter other than LZMA2).
func (w *walker) xzStream(data []byte, in *counter, name string, out []byte) (_ []byte, rerr, skip error) {
	var hdr [12]byte
	if _, err := io.ReadFull(in, hdr[:]); err != nil || string(hdr[:6]) != "\xfd7zXZ\x00" {
		return out, errXzFormat, nil
	}
	check := xzCheckSize[hdr[7]&0x0f]
	for {
		blockStart := int64(len(data) - in.r.Len())
		sizeByte, err := in.ReadByte()
		if err != nil {
			return out, io.ErrUnexpectedEOF, nil
		}
		if sizeByte == 0 { // index: the stream's blocks are done
			return out, w.xzSkipIndex(in), nil
		}
		hlen := (int(sizeByte) + 1) * 4
		h := make([]byte, hlen)
		h[0] = sizeByte
		if _, err := io.ReadFull(in, h[1:]); err != nil {
			return out, io.ErrUnexpectedEOF, nil
		}
		dict, err := xzBlockDict(h)
		if err != nil {
			return out, nil, err
		}
		// The most this block may produce before a limit stops it: a
		// larger dictionary could never be used.
		most := min(w.lim.MaxEntrySize-int64(len(out)), w.lim.MaxTotal-w.st.Bytes-int64(len(out)))
		if w.lim.MaxRatio > 0 {
			most = min(most, max(ratioFloor, int64(w.lim.MaxRatio)*int64(len(data))))
		}
		dict = max(min(dict, most+1), lzma.MinDictCap)
		lr, err := lzma.Reader2Config{DictCap: int(dict)}.NewReader2(in)
		if err != nil {
			return out, err, nil
		}
		saved := w.lim.MaxEntrySize
		w.lim.MaxEntrySize -= int64(len(out))
		w.st.Bytes += int64(len(out))
		more, err := w.inflate(Xz, name, lr, in, 0)
		w.st.Bytes -= int64(len(out))
		w.lim.MaxEntrySize = saved
		if errors.Is(err, ErrBomb) {
			return out, err, nil
		}
		out = append(out, more...)
		if err != nil {
			return out, err, nil
		}
		// Block padding to a multiple of 4, then the check.
		end := int64(len(data) - in.r.Len())
		pad := (4 - (end-blockStart)%4) % 4
		if err := skipBytes(in, pad+int64(check)); err != nil {
			return out, err, nil
		}
	}
}

// xzBlockDict reads a block header and returns the LZMA2 dictionary size.
func xzBlockDict(h []byte) (int64, error) {
	flags := h[1]
	p := 2
	var err error
	if flags&0x40 != 0 { // compressed size
		if _, p, err = uvarint(h, p); err != nil {
			return 0, err
		}
	}
	if flags&0x80 != 0 { // uncompressed size
		if _, p, err = uvarint(h, p); err != nil {
			return 0, err
		}
	}
	nfilters := int(flags&3) + 1
	var id, psize uint64
	for i := 0; i < nfilters; i++ {
		if id, p, err = uvarint(h, p); err != nil {
			return 0, err
		}
		if psize, p, err = uvarint(h, p); err != nil {
			return 0, err
		}
		if uint64(p)+psize > uint64(len(h)-4) {
			return 0, errors.New("xz block header too short")
		}
		if i < nfilters-1 || id != 0x21 || psize != 1 {
			return 0, fmt.Errorf("xz filter %#x not supported (only LZMA2 alone)", id)
		}
		dict, err := lzma.DecodeDictCap(h[p])
		if err != nil {
			return 0, err
		}
		return dict, nil
	}
	return 0, errors.New("xz block has no filter")
}

// xzSkipIndex skips the index (its indicator byte was read) and the footer.
func (w *walker) xzSkipIndex(in *counter) error {
	n, err := binary.ReadUvarint(in)
	if err != nil || n > uint64(in.r.Len()) {
		return io.ErrUnexpectedEOF
	}
	read := 1 + uvarintLen(n)
	for i := uint64(0); i < 2*n; i++ {
		v, err := binary.ReadUvarint(in)
		if err != nil {
			return io.ErrUnexpectedEOF
		}
		read += uvarintLen(v)
	}
	pad := (4 - read%4) % 4
	return skipBytes(in, int64(pad+4+12)) // index CRC32, stream footer
}

// skipBytes moves in forward by n bytes that must be there.
func skipBytes(in *counter, n int64) error {
	if n > int64(in.r.Len()) {
		return io.ErrUnexpectedEOF
	}
	in.r.Seek(n, io.SeekCurrent) //nolint:errcheck // in range
	in.n += n
	return nil
}

func uvarint(b []byte, p int) (uint64, int, error) {
	v, n := binary.Uvarint(b[min(p, len(b)):])
	if n <= 0 {
		return 0, p, errors.New("xz block header: bad number")
	}
	return v, p + n, nil
}

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}
