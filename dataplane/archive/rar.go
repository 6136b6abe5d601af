package archive

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/nwaples/rardecode/v2"
)

// RAR archives (RAR 1.5 to 7), decoded with github.com/nwaples/rardecode
// (pure Go, no dependencies): malspam sends "invoice.rar" as often as a zip.
// Members come out in archive order, each decoded under the size and ratio
// limits (the count of compressed bytes read runs ahead by the decoder's
// buffer, so the ratio is if anything underestimated). Encrypted members,
// and every member of an archive whose headers are encrypted, are passed
// with Encrypted; a damaged or multi-volume archive ends the walk with
// ErrCorrupt after the members read.
//
// The decoder allocates what the archive asks for. The RAR 5 decoder's
// memory is its dictionary (filter blocks are cut to it), which a member's
// header sets, up to 64 GiB in RAR 7, whatever the member's size:
// rarDictionaries reads the headers first, and an archive asking for a
// dictionary over MaxEntrySize is not opened (ErrBomb). The RAR 2.9-4
// decoder takes sizes from inside the compressed stream (a VM filter's
// static data, up to 4 GiB; PPMd's model, up to 256 MiB) where nothing can
// check them first, so an old-format archive with compressed members is
// passed as one Skipped entry (the file is reported partially scanned);
// its stored members are unpacked.

// rarWindow is the dictionary of RAR 5 compression flags: 128 KiB << N,
// RAR 7 with a fraction in 1/32 steps.
func rarWindow(flags uint64) int64 {
	if flags&0x3f == 0 { // RAR 5 algorithm
		return 0x20000 << ((flags >> 10) & 0x0f)
	}
	w := int64(0x20000) << ((flags >> 10) & 0x1f)
	return w + w/32*int64((flags>>15)&0x1f)
}

// rarDictionaries returns the largest dictionary the file headers of a
// RAR 5 archive ask for, and end: the archive is data[:end], the bytes
// before the first header it could not read (a cut archive ends there; so
// does one whose headers it cannot follow, which is then not decoded past
// them either). Its scan stops at the end header and at an encryption
// header (whose file headers are encrypted too, and never decoded). 0 and
// len(data) for a RAR 1.5-4 archive.
func rarDictionaries(data []byte) (most int64, end int) {
	const sig5 = "Rar!\x1a\x07\x01\x00"
	if !bytes.HasPrefix(data, []byte(sig5)) {
		return 0, len(data)
	}
	b := data[len(sig5):]
	for len(b) > 4 {
		at := len(data) - len(b)
		r := rarVints{b: b[4:]} // after the header's CRC32
		size := r.next()
		if r.bad || size > uint64(len(r.b)) {
			return most, at
		}
		h := rarVints{b: r.b[:size]}
		typ, flags := h.next(), h.next()
		if flags&1 != 0 {
			h.next() // extra area size
		}
		var dataSize uint64
		if flags&2 != 0 {
			dataSize = h.next()
		}
		if typ == 2 || typ == 3 { // file, service
			ff := h.next()
			h.next() // unpacked size
			h.next() // attributes
			if ff&2 != 0 {
				h.skip(4) // mtime
			}
			if ff&4 != 0 {
				h.skip(4) // data CRC32
			}
			if comp := h.next(); !h.bad && (comp>>7)&7 != 0 {
				most = max(most, rarWindow(comp))
			}
		}
		if h.bad {
			return most, at
		}
		rest := r.b[size:]
		if typ == 4 || typ == 5 || dataSize > uint64(len(rest)) { // encrypted from here, the end, or cut in the data
			return most, len(data)
		}
		b = rest[dataSize:]
	}
	return most, len(data)
}

// rar4Compressed reports whether a RAR 1.5-4 archive holds a compressed
// member (method other than 0x30, "store"), reading its block headers up
// to the end block or an encrypted archive header; end is as for
// rarDictionaries.
func rar4Compressed(data []byte) (compressed bool, end int) {
	const sig4 = "Rar!\x1a\x07\x00"
	if !bytes.HasPrefix(data, []byte(sig4)) {
		return false, len(data)
	}
	for b := data[len(sig4):]; len(b) >= 7; {
		at := len(data) - len(b)
		typ, flags, size := b[2], binary.LittleEndian.Uint16(b[3:]), int(binary.LittleEndian.Uint16(b[5:]))
		if size < 7 || size > len(b) {
			return false, at
		}
		var more uint64
		switch {
		case typ == 0x74 && size < 32: // a file header too short to check
			return false, at
		case typ == 0x74: // file header
			if b[25] != 0x30 {
				return true, len(data)
			}
			more = uint64(binary.LittleEndian.Uint32(b[7:]))
			if flags&0x100 != 0 && size >= 40 {
				more |= uint64(binary.LittleEndian.Uint32(b[32:])) << 32
			}
		case typ == 0x73 && flags&0x80 != 0, typ == 0x7b: // encrypted headers, end of archive
			return false, len(data)
		case flags&0x8000 != 0 && size >= 11: // a block with data after its header
			more = uint64(binary.LittleEndian.Uint32(b[7:]))
		}
		if more > uint64(len(b)-size) { // cut in the data
			return false, len(data)
		}
		b = b[size+int(more):]
	}
	return false, len(data)
}

// rarVints reads RAR 5 variable-length integers (7 bits a byte, low first).
type rarVints struct {
	b   []byte
	bad bool
}

func (r *rarVints) next() uint64 {
	var v uint64
	for i := 0; i < 10; i++ {
		if len(r.b) == 0 {
			r.bad = true
			return 0
		}
		c := r.b[0]
		r.b = r.b[1:]
		v |= uint64(c&0x7f) << (7 * i)
		if c&0x80 == 0 {
			return v
		}
	}
	r.bad = true
	return 0
}

func (r *rarVints) skip(n int) {
	if len(r.b) < n {
		r.bad = true
		return
	}
	r.b = r.b[n:]
}

// rar walks a RAR archive.
func (w *walker) rar(data []byte, parent string, depth int) error {
	// The decoder gets only the headers checked here: past one these
	// scans cannot read, it could find a member they did not vet.
	d, end5 := rarDictionaries(data)
	if d > w.lim.MaxEntrySize {
		return fmt.Errorf("%w: rar %s: a member asks for a %d MiB dictionary, over the %d MiB a member may take",
			ErrBomb, quote(parent), d>>20, w.lim.MaxEntrySize>>20)
	}
	packed4, end4 := rar4Compressed(data)
	if packed4 {
		return w.emit(Rar, Entry{Path: join(parent, "(RAR 4 members)"), Depth: depth,
			Skipped: "RAR 2.9-4 compression not unpacked (its decoder's memory cannot be bounded)"}, nil)
	}
	in := &counter{r: bytes.NewReader(data[:min(end5, end4)])}
	rr, err := rardecode.NewReader(in)
	if err != nil {
		return w.rarError(parent, depth, err)
	}
	for {
		h, err := rr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return w.rarError(parent, depth, err)
		}
		if h.IsDir {
			continue
		}
		name := join(parent, h.Name)
		e := Entry{Path: name, Depth: depth, Size: h.UnPackedSize}
		if h.Encrypted {
			e.Encrypted = true
			if err := w.emit(Rar, e, nil); err != nil {
				return err
			}
			continue
		}
		out, rerr := w.inflate(Rar, name, rr, in, h.UnPackedSize)
		if errors.Is(rerr, ErrBomb) {
			return rerr
		}
		if rerr != nil && len(out) == 0 {
			return w.rarError(parent, depth, rerr)
		}
		if err := w.emit(Rar, e, out); err != nil {
			return err
		}
		if rerr != nil {
			return fmt.Errorf("%w: rar %s: member %s: %v after %d bytes", ErrCorrupt, quote(parent), h.Name, rerr, len(out))
		}
	}
}

// rarError turns a decoder error into the walk's: an archive whose headers
// are encrypted gives one encrypted entry (its members cannot even be
// named); anything else is damage.
func (w *walker) rarError(parent string, depth int, err error) error {
	if errors.Is(err, rardecode.ErrArchiveEncrypted) {
		return w.emit(Rar, Entry{Path: join(parent, "(encrypted headers)"), Depth: depth, Encrypted: true}, nil)
	}
	return fmt.Errorf("%w: rar %s: %v", ErrCorrupt, quote(parent), err)
}
