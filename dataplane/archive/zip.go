package archive

import (
	"bytes"
	"compress/bzip2"
	"compress/flate"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"sort"
	"strings"
)

// zipEntry is one member as the central directory (or, without one, the
// local header) describes it. Sizes are claims: only the bytes actually
// inflated count.
type zipEntry struct {
	name   string
	flags  uint16
	method uint16
	crc    uint32
	csize  uint64
	usize  uint64
	off    int64 // local header, absolute in data
	start  int64 // first byte of the member's data
	end    int64 // after the last byte of its compressed data (capped at len(data))
	open   bool  // end unknown (sizes in a data descriptor): set by inflating
}

var zipMethods = map[uint16]string{
	1: "shrink", 2: "reduce", 3: "reduce", 4: "reduce", 5: "reduce", 6: "implode", 9: "deflate64",
	10: "terse", 14: "lzma", 18: "terse", 19: "lz77", 93: "zstd", 95: "xz", 96: "jpeg", 97: "wavpack", 98: "ppmd", 99: "aes",
}

const (
	sigLocal   = "PK\x03\x04"
	sigCentral = "PK\x01\x02"
	sigEnd     = "PK\x05\x06"
	sigEnd64   = "PK\x06\x06"
	sigLoc64   = "PK\x06\x07"
	sigDesc    = "PK\x07\x08"
)

func le16(b []byte, p int) uint16 { return binary.LittleEndian.Uint16(b[p:]) }
func le32(b []byte, p int) uint32 { return binary.LittleEndian.Uint32(b[p:]) }
func le64(b []byte, p int) uint64 { return binary.LittleEndian.Uint64(b[p:]) }

// zip walks a zip archive: by its central directory, or by its local
// headers when the central directory cannot be found.
func (w *walker) zip(data []byte, parent string, depth int) error {
	entries, cdErr := zipCentral(data)
	if cdErr != nil {
		return w.zipLocal(data, parent, depth, cdErr)
	}
	if err := zipOverlap(entries, parent); err != nil {
		return err
	}
	var damaged error
	for i := range entries {
		ze := &entries[i]
		err := w.zipMember(data, parent, depth, ze)
		if errors.Is(err, ErrCorrupt) {
			if damaged == nil {
				damaged = err
			}
			continue
		}
		if err != nil {
			return err
		}
	}
	return damaged
}

// zipCentral reads the central directory and locates each member's data.
func zipCentral(data []byte) ([]zipEntry, error) {
	eocd := -1
	for i := len(data) - 22; i >= 0 && i >= len(data)-22-65535; i-- {
		if data[i] == 'P' && string(data[i:i+4]) == sigEnd {
			eocd = i
			break
		}
	}
	if eocd < 0 {
		return nil, errors.New("no end of central directory (truncated?)")
	}
	count := uint64(le16(data, eocd+10))
	cdSize := uint64(le32(data, eocd+12))
	cdOff := uint64(le32(data, eocd+16))
	dirEnd := int64(eocd)
	if eocd >= 20 && string(data[eocd-20:eocd-16]) == sigLoc64 {
		p := le64(data, eocd-20+8)
		if p < uint64(len(data)) && p+56 <= uint64(len(data)) && string(data[p:p+4]) == sigEnd64 {
			count = le64(data, int(p)+32)
			cdSize = le64(data, int(p)+40)
			cdOff = le64(data, int(p)+48)
			dirEnd = int64(p)
		}
	}
	// Data prepended to the archive (a self-extractor) shifts every offset.
	base := dirEnd - int64(cdSize) - int64(cdOff)
	if cdSize > uint64(len(data)) || cdOff > uint64(len(data)) || base < 0 {
		base = 0
	}
	p := base + int64(cdOff)
	if base != 0 && p+4 <= int64(len(data)) && string(data[p:p+4]) != sigCentral {
		p = int64(cdOff) // the offsets were from the file's start after all
		base = 0
	}
	if p < 0 || p > int64(len(data)) {
		return nil, fmt.Errorf("central directory offset %d outside the file", cdOff)
	}
	_ = count // the entries are read until the signature stops: count may lie
	var entries []zipEntry
	for p+46 <= int64(len(data)) && string(data[p:p+4]) == sigCentral {
		q := int(p)
		nameLen, extraLen, commentLen := int(le16(data, q+28)), int(le16(data, q+30)), int(le16(data, q+32))
		next := p + 46 + int64(nameLen+extraLen+commentLen)
		if next > int64(len(data)) {
			return nil, fmt.Errorf("central directory entry %d runs past the end", len(entries))
		}
		ze := zipEntry{
			name:   string(data[q+46 : q+46+nameLen]),
			flags:  le16(data, q+8),
			method: le16(data, q+10),
			crc:    le32(data, q+16),
			csize:  uint64(le32(data, q+20)),
			usize:  uint64(le32(data, q+24)),
			off:    int64(le32(data, q+42)),
		}
		zip64Extra(data[q+46+nameLen:q+46+nameLen+extraLen], &ze.usize, &ze.csize, &ze.off)
		ze.off += base
		entries = append(entries, ze)
		p = next
	}
	if len(entries) == 0 && count > 0 {
		return nil, errors.New("central directory not found where the end record says")
	}
	for i := range entries {
		ze := &entries[i]
		o := ze.off
		if o < 0 || o+30 > int64(len(data)) || string(data[o:o+4]) != sigLocal {
			ze.start, ze.end = -1, -1 // reported when the member is reached
			continue
		}
		ze.start = o + 30 + int64(le16(data, int(o)+26)) + int64(le16(data, int(o)+28))
		ze.end = ze.start + int64(min(ze.csize, uint64(len(data))))
		ze.start = min(ze.start, int64(len(data)))
		ze.end = min(ze.end, int64(len(data)))
	}
	return entries, nil
}

// zip64Extra replaces the 32-bit sizes and offset saturated at 0xffffffff
// with the zip64 extra field's values, in the order the spec gives.
func zip64Extra(extra []byte, usize, csize *uint64, off *int64) {
	for len(extra) >= 4 {
		id, size := le16(extra, 0), int(le16(extra, 2))
		if 4+size > len(extra) {
			return
		}
		field := extra[4 : 4+size]
		extra = extra[4+size:]
		if id != 1 {
			continue
		}
		if *usize == 0xffffffff && len(field) >= 8 {
			*usize, field = le64(field, 0), field[8:]
		}
		if *csize == 0xffffffff && len(field) >= 8 {
			*csize, field = le64(field, 0), field[8:]
		}
		if *off == 0xffffffff && len(field) >= 8 {
			*off = int64(le64(field, 0) & (1<<62 - 1))
		}
		return
	}
}

// zipOverlap rejects members whose local header and data overlap another
// member's: no zip tool writes that, and it is how an overlapping-file bomb
// (Fifield 2019) makes many members out of one compressed kernel.
func zipOverlap(entries []zipEntry, parent string) error {
	idx := make([]int, 0, len(entries))
	for i := range entries {
		if entries[i].start >= 0 {
			idx = append(idx, i)
		}
	}
	sort.Slice(idx, func(a, b int) bool { return entries[idx[a]].off < entries[idx[b]].off })
	for k := 1; k < len(idx); k++ {
		prev, cur := &entries[idx[k-1]], &entries[idx[k]]
		if cur.off < prev.end || cur.off == prev.off {
			return fmt.Errorf("%w: zip member %s: data overlaps member %s (overlapping-file zip bomb)",
				ErrBomb, quote(join(parent, cur.name)), prev.name)
		}
	}
	return nil
}

// zipMember unpacks one member and passes it on.
func (w *walker) zipMember(data []byte, parent string, depth int, ze *zipEntry) error {
	name := join(parent, ze.name)
	if strings.HasSuffix(ze.name, "/") && ze.usize == 0 {
		return nil // a directory
	}
	e := Entry{Path: name, Depth: depth, Size: int64(ze.usize)}
	if ze.start < 0 {
		return fmt.Errorf("%w: zip %s: member %s: no local header at offset %d", ErrCorrupt, quote(parent), ze.name, ze.off)
	}
	if ze.flags&1 != 0 || ze.method == 99 {
		e.Encrypted = true
		return w.emit(Zip, e, nil)
	}
	raw := data[ze.start:ze.end:ze.end]
	var out []byte
	var rerr error
	switch ze.method {
	case 0:
		out = raw
		if uint64(len(raw)) < ze.csize {
			rerr = io.ErrUnexpectedEOF
		}
		if int64(len(out)) > w.lim.MaxEntrySize {
			return fmt.Errorf("%w: zip member %s: size %d over %d bytes", ErrBomb, quote(name), len(out), w.lim.MaxEntrySize)
		}
	case 8, 12:
		in := &counter{r: bytes.NewReader(raw)}
		var r io.Reader
		if ze.method == 8 {
			fr := flate.NewReader(in)
			defer fr.Close()
			r = fr
		} else {
			r = bzip2.NewReader(in)
		}
		out, rerr = w.inflate(Zip, name, r, in, int64(ze.usize))
		if ze.open {
			ze.end = ze.start + in.n
		}
		if errors.Is(rerr, ErrBomb) {
			return rerr
		}
	default:
		m := zipMethods[ze.method]
		if m == "" {
			m = "unknown"
		}
		e.Skipped = fmt.Sprintf("zip method %d (%s) not supported", ze.method, m)
		return w.emit(Zip, e, nil)
	}
	if err := w.emit(Zip, e, out); err != nil {
		return err
	}
	if rerr != nil {
		return fmt.Errorf("%w: zip %s: member %s: %v after %d bytes", ErrCorrupt, quote(parent), ze.name, rerr, len(out))
	}
	if ze.flags&8 == 0 || ze.crc != 0 { // with a data descriptor the local CRC may be 0
		if got := crc32.ChecksumIEEE(out); got != ze.crc && ze.crc != 0 {
			return fmt.Errorf("%w: zip %s: member %s: CRC %08x, header says %08x", ErrCorrupt, quote(parent), ze.name, got, ze.crc)
		}
	}
	return nil
}

// zipLocal walks the local headers in order: the way to read a zip whose
// central directory is missing (a truncated transfer). It ends with
// ErrCorrupt saying why the central directory was not used.
func (w *walker) zipLocal(data []byte, parent string, depth int, why error) error {
	p := int64(bytes.Index(data, []byte(sigLocal)))
	var damaged error
	for p >= 0 && p+30 <= int64(len(data)) && string(data[p:p+4]) == sigLocal {
		q := int(p)
		nameLen, extraLen := int64(le16(data, q+26)), int64(le16(data, q+28))
		ze := zipEntry{
			flags:  le16(data, q+6),
			method: le16(data, q+8),
			crc:    le32(data, q+14),
			csize:  uint64(le32(data, q+18)),
			usize:  uint64(le32(data, q+22)),
			off:    p,
			start:  p + 30 + nameLen + extraLen,
		}
		if ze.start > int64(len(data)) {
			break
		}
		ze.name = string(data[p+30 : p+30+nameLen])
		zip64Extra(data[p+30+nameLen:ze.start], &ze.usize, &ze.csize, new(int64))
		descriptor := ze.flags&8 != 0 && ze.csize == 0
		if descriptor && (ze.method == 8 || ze.method == 12) && ze.flags&1 == 0 {
			ze.open = true // the end is where inflating stops
			ze.csize = uint64(int64(len(data)) - ze.start)
		} else if descriptor {
			ze.csize = uint64(zipFindEnd(data, &ze))
		}
		ze.end = min(ze.start+int64(min(ze.csize, uint64(len(data)))), int64(len(data)))
		err := w.zipMember(data, parent, depth, &ze)
		if errors.Is(err, ErrCorrupt) {
			if damaged == nil {
				damaged = err
			}
		} else if err != nil {
			return err
		}
		p = ze.end
		if descriptor && p+4 <= int64(len(data)) {
			if string(data[p:p+4]) == sigDesc {
				p += 4
			}
			p += 12
		}
	}
	if damaged != nil {
		return damaged
	}
	return fmt.Errorf("%w: zip %s: %v; read %d bytes of members by their local headers", ErrCorrupt, quote(parent), why, p)
}

// zipFindEnd finds the compressed length of a stored or encrypted member
// whose sizes follow its data (flag bit 3): the first data descriptor whose
// compressed size matches the distance.
func zipFindEnd(data []byte, ze *zipEntry) int64 {
	raw := data[ze.start:]
	for off := 0; ; {
		i := bytes.Index(raw[off:], []byte(sigDesc))
		if i < 0 {
			return int64(len(raw))
		}
		off += i
		if off+12 <= len(raw) && int(le32(raw, off+8)) == off {
			return int64(off)
		}
		off += 4
	}
}
