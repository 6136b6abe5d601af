package archive

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"unicode/utf16"

	"github.com/ulikunitz/xz/lzma"
)

// A minimal 7z reader: the archive structure (7zFormat.txt of the 7-Zip
// sources), compressed or plain headers, and folders of one coder: copy,
// LZMA or LZMA2 (what 7-Zip writes by default for non-executables). Other
// chains (BCJ/BCJ2 filters in front of executables, PPMd, Deflate, AES)
// give members with Skipped or Encrypted and nil data. A folder (a solid
// block holding many files) is decoded whole, so it is bounded by MaxTotal
// rather than MaxEntrySize; each file cut from it is then held to
// MaxEntrySize.

var err7z = errors.New("bad 7z structure")

const bcjX86 = "\x03\x03\x01\x03"

// Property IDs.
const (
	k7End = iota
	k7Header
	k7ArchiveProperties
	k7AdditionalStreamsInfo
	k7MainStreamsInfo
	k7FilesInfo
	k7PackInfo
	k7UnpackInfo
	k7SubStreamsInfo
	k7Size
	k7CRC
	k7Folder
	k7CodersUnpackSize
	k7NumUnpackStream
	k7EmptyStream
	k7EmptyFile
	k7Anti
	k7Name
	k7EncodedHeader = 0x17
	k7Dummy         = 0x19
)

type r7 struct {
	b   []byte
	p   int
	err error
}

func (r *r7) byte() byte {
	if r.p >= len(r.b) {
		r.err = err7z
		return 0
	}
	c := r.b[r.p]
	r.p++
	return c
}

// num reads 7z's variable-length number (the first byte's high bits say
// how many bytes follow).
func (r *r7) num() uint64 {
	first := r.byte()
	mask := byte(0x80)
	var v uint64
	for i := 0; i < 8; i++ {
		if first&mask == 0 {
			return v | uint64(first&(mask-1))<<(8*i)
		}
		v |= uint64(r.byte()) << (8 * i)
		mask >>= 1
	}
	return v
}

// count reads a number used as a count or size, bounded by what the rest
// of the input could hold, so a lying count cannot make us allocate.
func (r *r7) count(limit int) int {
	n := r.num()
	if n > uint64(limit) {
		r.err = err7z
		return 0
	}
	return int(n)
}

func (r *r7) bytes(n int) []byte {
	if n < 0 || r.p+n > len(r.b) {
		r.err = err7z
		r.p = len(r.b)
		return nil
	}
	s := r.b[r.p : r.p+n]
	r.p += n
	return s
}

func (r *r7) bits(n int) []bool {
	v := make([]bool, n)
	var cur byte
	for i := range v {
		if i%8 == 0 {
			cur = r.byte()
		}
		v[i] = cur&(0x80>>(i%8)) != 0
	}
	return v
}

// digests skips a digest list (all-defined flag or bit vector, CRC32s).
func (r *r7) digests(n int) {
	defined := n
	if r.byte() == 0 {
		defined = 0
		for _, d := range r.bits(n) {
			if d {
				defined++
			}
		}
	}
	r.bytes(4 * defined)
}

type coder7 struct {
	id    []byte
	props []byte
}

type folder7 struct {
	coders   []coder7
	binds    [][2]uint64 // (in index, out index)
	simple   bool        // one coder, one in and one out stream
	unpack   []uint64    // per out stream; the last is the folder's output
	packSize uint64
	packOff  int64
	streams  int      // files (substreams) in the folder
	sizes    []uint64 // their sizes
}

type streams7 struct {
	folders []folder7
}

// streamsInfo reads PackInfo, UnpackInfo and SubStreamsInfo. base is where
// pack streams start (32, after the signature header).
func (r *r7) streamsInfo(base int64) *streams7 {
	s := &streams7{}
	var packSizes []uint64
	var packPos uint64
	id := r.byte()
	if id == k7PackInfo {
		packPos = r.num()
		n := r.count(len(r.b))
		for id = r.byte(); id != k7End && r.err == nil; id = r.byte() {
			switch id {
			case k7Size:
				packSizes = make([]uint64, n)
				for i := range packSizes {
					packSizes[i] = r.num()
				}
			case k7CRC:
				r.digests(n)
			default:
				r.err = err7z
			}
		}
		id = r.byte()
	}
	if id == k7UnpackInfo {
		if r.byte() != k7Folder {
			r.err = err7z
			return s
		}
		nf := r.count(len(r.b))
		if r.byte() != 0 { // external
			r.err = err7z
			return s
		}
		s.folders = make([]folder7, nf)
		pack := 0
		off := base + int64(packPos)
		for i := range s.folders {
			f := &s.folders[i]
			nc := r.count(64)
			ins, outs := 0, 0
			for j := 0; j < nc && r.err == nil; j++ {
				flag := r.byte()
				c := coder7{id: r.bytes(int(flag & 0x0f))}
				in, out := 1, 1
				if flag&0x10 != 0 {
					in, out = r.count(64), r.count(64)
				}
				if flag&0x20 != 0 {
					c.props = r.bytes(r.count(len(r.b)))
				}
				ins += in
				outs += out
				f.coders = append(f.coders, c)
			}
			if nc == 0 || outs == 0 || outs > 64 || ins > 64 {
				r.err = err7z
				return s
			}
			for j := 0; j < outs-1 && r.err == nil; j++ {
				f.binds = append(f.binds, [2]uint64{r.num(), r.num()})
			}
			packed := ins - (outs - 1)
			if packed > 1 {
				for j := 0; j < packed; j++ {
					r.num()
				}
			}
			f.simple = nc == 1 && ins == 1 && outs == 1
			f.unpack = make([]uint64, outs)
			f.streams = 1
			if pack < len(packSizes) {
				f.packOff = off
				f.packSize = packSizes[pack]
				for j := 0; j < packed && pack < len(packSizes); j++ {
					off += int64(packSizes[pack])
					pack++
				}
			}
		}
		if r.byte() != k7CodersUnpackSize {
			r.err = err7z
			return s
		}
		for i := range s.folders {
			for j := range s.folders[i].unpack {
				s.folders[i].unpack[j] = r.num()
			}
		}
		for id = r.byte(); id != k7End && r.err == nil; id = r.byte() {
			if id != k7CRC {
				r.err = err7z
				return s
			}
			r.digests(nf)
		}
		id = r.byte()
	}
	if id == k7SubStreamsInfo {
		id = r.byte()
		if id == k7NumUnpackStream {
			for i := range s.folders {
				s.folders[i].streams = r.count(len(r.b) * 8)
			}
			id = r.byte()
		}
		for i := range s.folders {
			f := &s.folders[i]
			f.sizes = make([]uint64, 0, min(f.streams, 1<<16))
			var sum uint64
			for j := 0; j+1 < f.streams && id == k7Size; j++ {
				v := r.num()
				f.sizes = append(f.sizes, v)
				sum += v
			}
			if f.streams > 0 {
				total := f.unpack[len(f.unpack)-1]
				if sum > total {
					r.err = err7z
				}
				f.sizes = append(f.sizes, total-sum)
			}
		}
		if id == k7Size {
			id = r.byte()
		}
		for ; id != k7End && r.err == nil; id = r.byte() {
			if id != k7CRC {
				r.err = err7z
				return s
			}
			n := 0
			for _, f := range s.folders {
				n += f.streams // digests for streams without a folder CRC: at most this many
			}
			r.digests(n)
		}
		id = r.byte()
	}
	if id != k7End {
		r.err = err7z
	}
	for i := range s.folders {
		f := &s.folders[i]
		if f.sizes == nil && f.streams == 1 {
			f.sizes = []uint64{f.unpack[len(f.unpack)-1]}
		}
	}
	return s
}

// sevenZip walks a 7z archive.
func (w *walker) sevenZip(data []byte, parent string, depth int) error {
	if len(data) < 32 {
		return fmt.Errorf("%w: 7z %s: truncated signature header", ErrCorrupt, quote(parent))
	}
	off, size := le64(data, 12), le64(data, 20)
	if off > uint64(len(data)) || size > uint64(len(data)) || 32+off+size > uint64(len(data)) {
		return fmt.Errorf("%w: 7z %s: header at %d+%d past the end (%d bytes): truncated", ErrCorrupt, quote(parent), off, size, len(data))
	}
	hdr := data[32+off : 32+off+size]
	for round := 0; len(hdr) > 0 && hdr[0] == k7EncodedHeader; round++ {
		r := &r7{b: hdr, p: 1}
		s := r.streamsInfo(32)
		if r.err != nil || len(s.folders) != 1 || round > 2 {
			return fmt.Errorf("%w: 7z %s: bad encoded header", ErrCorrupt, quote(parent))
		}
		f := &s.folders[0]
		out, skip, err := w.decode7(data, f, "(7z header)")
		if errors.Is(err, ErrBomb) {
			return err
		}
		if skip == "encrypted" {
			// Names and members are behind the password: one encrypted
			// member stands for them all.
			return w.emit(SevenZip, Entry{Path: join(parent, "(encrypted 7z headers)"), Depth: depth, Encrypted: true}, nil)
		}
		if err != nil || skip != "" {
			return fmt.Errorf("%w: 7z %s: header: %v%s", ErrCorrupt, quote(parent), err, skip)
		}
		hdr = out
	}
	if len(hdr) == 0 || hdr[0] != k7Header {
		return fmt.Errorf("%w: 7z %s: no header", ErrCorrupt, quote(parent))
	}
	r := &r7{b: hdr, p: 1}
	id := r.byte()
	if id == k7ArchiveProperties {
		for t := r.byte(); t != 0 && r.err == nil; t = r.byte() {
			r.bytes(r.count(len(r.b)))
		}
		id = r.byte()
	}
	if id == k7AdditionalStreamsInfo {
		return fmt.Errorf("%w: 7z %s: additional streams not supported", ErrCorrupt, quote(parent))
	}
	s := &streams7{}
	if id == k7MainStreamsInfo {
		s = r.streamsInfo(32)
		id = r.byte()
	}
	var names []string
	var empty []bool
	if id == k7FilesInfo {
		n := r.count(len(r.b))
		for t := r.byte(); t != k7End && r.err == nil; t = r.byte() {
			sz := r.count(len(r.b))
			prop := &r7{b: r.bytes(sz)}
			switch t {
			case k7EmptyStream:
				empty = prop.bits(n)
			case k7Name:
				if prop.byte() != 0 {
					break // external
				}
				u := make([]uint16, 0, 64)
				for prop.p+1 < len(prop.b) {
					c := binary.LittleEndian.Uint16(prop.b[prop.p:])
					prop.p += 2
					if c == 0 {
						names = append(names, string(utf16.Decode(u)))
						u = u[:0]
						continue
					}
					u = append(u, c)
				}
			}
		}
		id = r.byte()
	}
	if r.err != nil || id != k7End {
		return fmt.Errorf("%w: 7z %s: bad header", ErrCorrupt, quote(parent))
	}
	// Files with data take the folders' substreams in order.
	file := 0
	nextName := func() string {
		for file < len(names) && file < len(empty) && empty[file] {
			file++
		}
		name := fmt.Sprintf("file%d", file)
		if file < len(names) {
			name = names[file]
		}
		file++
		return join(parent, name)
	}
	var damaged error
	for i := range s.folders {
		f := &s.folders[i]
		// The header's sizes bound the decoding (it stops at the folder's
		// size), so a member over the limit is refused before any work.
		for _, sz := range f.sizes {
			if sz > uint64(w.lim.MaxEntrySize) {
				return fmt.Errorf("%w: 7z member %s: size %d over %d bytes", ErrBomb, quote(join(parent, fmt.Sprintf("(folder %d)", i))), sz, w.lim.MaxEntrySize)
			}
		}
		out, skip, err := w.decode7(data, f, join(parent, fmt.Sprintf("(folder %d)", i)))
		if errors.Is(err, ErrBomb) {
			return err
		}
		if err != nil && damaged == nil {
			damaged = fmt.Errorf("%w: 7z %s: folder %d: %v after %d bytes", ErrCorrupt, quote(parent), i, err, len(out))
		}
		for _, sz := range f.sizes {
			e := Entry{Path: nextName(), Depth: depth, Size: int64(sz)}
			if skip != "" {
				if skip == "encrypted" {
					e.Encrypted = true
				} else {
					e.Skipped = skip
				}
				if err := w.emit(SevenZip, e, nil); err != nil {
					return err
				}
				continue
			}
			if sz > uint64(w.lim.MaxEntrySize) {
				return fmt.Errorf("%w: 7z member %s: size %d over %d bytes", ErrBomb, quote(e.Path), sz, w.lim.MaxEntrySize)
			}
			if uint64(len(out)) < sz { // the folder ended early
				if len(out) > 0 {
					if err := w.emit(SevenZip, e, out); err != nil {
						return err
					}
				}
				break
			}
			member := out[:sz:sz]
			out = out[sz:]
			if err := w.emit(SevenZip, e, member); err != nil {
				return err
			}
		}
	}
	return damaged
}

// decode7 decodes one folder; skip says why it cannot be.
func (w *walker) decode7(data []byte, f *folder7, name string) (out []byte, skip string, err error) {
	if len(f.coders) == 0 {
		return nil, "", err7z
	}
	bcjCoder := -1 // the coder under a BCJ filter
	if !f.simple {
		for _, c := range f.coders {
			if string(c.id) == "\x06\xf1\x07\x01" {
				return nil, "encrypted", nil
			}
		}
		// BCJ x86 behind LZMA/LZMA2, as 7-Zip writes executables: the
		// filter coder reads the other coder's output.
		j := 0 // the filter
		if string(f.coders[1].id) == bcjX86 {
			j = 1
		}
		k := 1 - j
		if len(f.coders) != 2 || string(f.coders[j].id) != bcjX86 || len(f.binds) != 1 ||
			f.binds[0] != [2]uint64{uint64(j), uint64(k)} || len(f.unpack) != 2 {
			return nil, fmt.Sprintf("7z coder chain of %d (%x, %x) not supported", len(f.coders), f.coders[0].id, f.coders[len(f.coders)-1].id), nil
		}
		bcjCoder = k
	}
	end := f.packOff + int64(f.packSize)
	if f.packOff < 32 || f.packOff > int64(len(data)) {
		return nil, "", io.ErrUnexpectedEOF
	}
	end = min(end, int64(len(data)))
	in := &counter{r: bytes.NewReader(data[f.packOff:end])}
	size := f.unpack[0]
	// A folder holds many files: bounded by what is left of MaxTotal.
	saved := w.lim.MaxEntrySize
	w.lim.MaxEntrySize = max(w.lim.MaxTotal-w.st.Bytes, 0)
	defer func() { w.lim.MaxEntrySize = saved }()
	most := w.lim.MaxEntrySize
	if w.lim.MaxRatio > 0 {
		most = min(most, max(ratioFloor, int64(w.lim.MaxRatio)*int64(len(data))))
	}
	c := f.coders[0]
	if bcjCoder >= 0 {
		c, size = f.coders[bcjCoder], f.unpack[bcjCoder]
	}
	var rd io.Reader
	switch string(c.id) {
	case "\x00":
		rd = in
	case "\x03\x01\x01": // LZMA
		if len(c.props) != 5 {
			return nil, "", err7z
		}
		dict := int64(binary.LittleEndian.Uint32(c.props[1:]))
		dict = max(min(dict, most+1), lzma.MinDictCap)
		var h [13]byte
		h[0] = c.props[0]
		binary.LittleEndian.PutUint32(h[1:], uint32(dict))
		binary.LittleEndian.PutUint64(h[5:], size)
		lr, err := lzma.ReaderConfig{DictCap: lzma.MinDictCap}.NewReader(io.MultiReader(bytes.NewReader(h[:]), in))
		if err != nil {
			return nil, "", err
		}
		rd = lr
	case "\x21": // LZMA2
		if len(c.props) != 1 {
			return nil, "", err7z
		}
		dict, err := lzma.DecodeDictCap(c.props[0])
		if err != nil {
			return nil, "", err
		}
		dict = max(min(dict, most+1), lzma.MinDictCap)
		lr, err := lzma.Reader2Config{DictCap: int(dict)}.NewReader2(in)
		if err != nil {
			return nil, "", err
		}
		rd = lr
	case "\x06\xf1\x07\x01":
		return nil, "encrypted", nil
	default:
		return nil, fmt.Sprintf("7z coder %x not supported", c.id), nil
	}
	out, err = w.inflate(SevenZip, name, io.LimitReader(rd, int64(min(size, uint64(w.lim.MaxEntrySize)+1))), in, int64(size))
	if err == nil && uint64(len(out)) < size {
		err = io.ErrUnexpectedEOF
	}
	if bcjCoder >= 0 {
		bcjX86Decode(out)
	}
	return out, "", err
}

// bcjX86Decode undoes the x86 branch converter (BCJ) in place: CALL and
// JMP (E8, E9) targets stored as absolute addresses back to relative.
// Ported from liblzma's simple/x86.c (public domain, Igor Pavlov and
// Lasse Collin), for one whole buffer starting at position 0.
func bcjX86Decode(buf []byte) {
	allowed := [8]bool{true, true, true, false, true, false, false, false}
	bitNumber := [8]uint32{0, 1, 2, 2, 3, 3, 3, 3}
	test := func(b byte) bool { return b == 0 || b == 0xff }
	var prevMask uint32
	prevPos := ^uint32(4) // -5
	for i := 0; i+5 <= len(buf); {
		b := buf[i]
		if b != 0xe8 && b != 0xe9 {
			i++
			continue
		}
		offset := uint32(i) - prevPos
		prevPos = uint32(i)
		if offset > 5 {
			prevMask = 0
		} else {
			for k := uint32(0); k < offset; k++ {
				prevMask &= 0x77
				prevMask <<= 1
			}
		}
		b = buf[i+4]
		if test(b) && allowed[(prevMask>>1)&7] && prevMask>>1 < 0x10 {
			src := uint32(b)<<24 | uint32(buf[i+3])<<16 | uint32(buf[i+2])<<8 | uint32(buf[i+1])
			var dest uint32
			for {
				dest = src - (uint32(i) + 5)
				if prevMask == 0 {
					break
				}
				k := bitNumber[prevMask>>1]
				b = byte(dest >> (24 - k*8))
				if !test(b) {
					break
				}
				src = dest ^ (1<<(32-k*8) - 1)
			}
			buf[i+4] = ^byte((dest>>24)&1 - 1)
			buf[i+3] = byte(dest >> 16)
			buf[i+2] = byte(dest >> 8)
			buf[i+1] = byte(dest)
			i += 5
			prevMask = 0
		} else {
			i++
			prevMask |= 1
			if test(b) {
				prevMask |= 0x10
			}
		}
	}
}
