package archive

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"
	"unicode/utf16"
)

// OLE2 compound files (.doc, .xls, .ppt, .msg; MS-CFB) carry other files
// as objects: Office's "Package" object keeps a whole file (an .exe, a
// .js, an .lnk) in a stream named "\x01Ole10Native", which a double click
// opens, and OOXML documents embedded in older ones sit in "Package"
// streams. Those are the members: the packaged file, taken out of its
// Ole10Native wrapper and named by it, and Package streams (a zip, walked
// in turn). The other streams (text, formatting, macros) stay in the
// document, scanned as its bytes.
//
// Sector chains are followed through the FAT and the mini FAT with every
// sector visited at most once, so a chain that loops or points outside
// the file ends the walk with ErrCorrupt; a stream over MaxEntrySize is
// ErrBomb.

const (
	oleSig       = "\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
	oleEnd       = 0xfffffffe // ENDOFCHAIN
	oleFree      = 0xffffffff
	oleDirEntry  = 128
	oleHeaderFAT = 109
)

func isOLE(b []byte) bool { return len(b) >= 512 && string(b[:8]) == oleSig }

type oleFile struct {
	data    []byte
	secSize int
	fat     []uint32
	mini    []uint32 // mini FAT
	miniSec []byte   // the mini stream
	cutoff  uint64
}

// sector returns sector n's bytes. Sector 0 follows the header, which
// takes one sector (512 bytes in version 3, 4,096 in version 4).
func (o *oleFile) sector(n uint32) ([]byte, bool) {
	off := (int64(n) + 1) * int64(o.secSize)
	if n >= oleEnd-16 || off+int64(o.secSize) > int64(len(o.data)) {
		return nil, false
	}
	return o.data[off : off+int64(o.secSize)], true
}

// chain reads the sectors of the chain from start through table (the FAT
// or the mini FAT) until it ends or want bytes are in, each sector once.
func (o *oleFile) chain(table []uint32, start uint32, read func(uint32) ([]byte, bool), want int64) ([]byte, error) {
	var out []byte
	seen := make([]uint64, len(table)/64+1)
	for n := start; n != oleEnd && int64(len(out)) < want; n = table[n] {
		if int(n) >= len(table) {
			return out, fmt.Errorf("sector %d outside the table", n)
		}
		if seen[n/64]&(1<<(n%64)) != 0 {
			return out, fmt.Errorf("the chain loops at sector %d", n)
		}
		seen[n/64] |= 1 << (n % 64)
		s, ok := read(n)
		if !ok {
			return out, fmt.Errorf("sector %d outside the file", n)
		}
		out = append(out, s...)
	}
	return out, nil
}

func (w *walker) ole(data []byte, parent string, depth int) error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: ole2 %s: %s", ErrCorrupt, quote(parent), fmt.Sprintf(format, a...))
	}
	le := binary.LittleEndian
	shift := le.Uint16(data[30:])
	if shift != 9 && shift != 12 {
		return bad("sector size 2^%d", shift)
	}
	o := &oleFile{data: data, secSize: 1 << shift, cutoff: uint64(le.Uint32(data[56:]))}
	nSec := uint32(max(len(data)/o.secSize-1, 0))
	// The FAT's sectors: 109 in the header, the rest in the DIFAT chain.
	var fatSecs []uint32
	for i := range oleHeaderFAT {
		if s := le.Uint32(data[76+4*i:]); s < oleEnd-16 {
			fatSecs = append(fatSecs, s)
		}
	}
	difat, seen := le.Uint32(data[68:]), 0
	for difat < oleEnd-16 && seen <= int(nSec) {
		s, ok := o.sector(difat)
		if !ok {
			return bad("DIFAT sector %d outside the file", difat)
		}
		seen++
		for i := 0; i+4 < len(s); i += 4 {
			if v := le.Uint32(s[i:]); v < oleEnd-16 {
				fatSecs = append(fatSecs, v)
			}
		}
		difat = le.Uint32(s[len(s)-4:])
		if len(fatSecs) > int(nSec) {
			break
		}
	}
	if len(fatSecs) > int(nSec) {
		return bad("more FAT sectors than the file's %d sectors", nSec)
	}
	for _, fs := range fatSecs {
		s, ok := o.sector(fs)
		if !ok {
			return bad("FAT sector %d outside the file", fs)
		}
		for i := 0; i < len(s); i += 4 {
			o.fat = append(o.fat, le.Uint32(s[i:]))
		}
	}
	dir, err := o.chain(o.fat, le.Uint32(data[48:]), o.sector, int64(len(data)))
	if err != nil {
		return bad("directory: %v", err)
	}
	if len(dir) < oleDirEntry || dir[66] != 5 {
		return bad("no root entry")
	}
	// The mini stream (the root entry's data) and its FAT.
	if mf := le.Uint32(data[60:]); mf < oleEnd-16 {
		b, err := o.chain(o.fat, mf, o.sector, int64(len(data)))
		if err != nil {
			return bad("mini FAT: %v", err)
		}
		for i := 0; i+4 <= len(b); i += 4 {
			o.mini = append(o.mini, le.Uint32(b[i:]))
		}
	}
	rootSize := int64(le.Uint64(dir[120:]) & 0xffffffff)
	if o.miniSec, err = o.chain(o.fat, le.Uint32(dir[116:]), o.sector, rootSize); err != nil {
		return bad("mini stream: %v", err)
	}
	miniSector := func(n uint32) ([]byte, bool) {
		off := int64(n) * 64
		if off+64 > int64(len(o.miniSec)) {
			return nil, false
		}
		return o.miniSec[off : off+64], true
	}
	for i := 0; i+oleDirEntry <= len(dir); i += oleDirEntry {
		d := dir[i : i+oleDirEntry]
		if d[66] != 2 { // streams only
			continue
		}
		nl := int(le.Uint16(d[64:]))
		if nl < 2 || nl > 64 {
			continue
		}
		u := make([]uint16, nl/2-1)
		for k := range u {
			u[k] = le.Uint16(d[2*k:])
		}
		name := string(utf16.Decode(u))
		if name != "\x01Ole10Native" && name != "Package" {
			continue
		}
		size := le.Uint64(d[120:]) & 0xffffffff
		path := join(parent, strings.TrimLeft(name, "\x01"))
		if int64(size) > w.lim.MaxEntrySize {
			return fmt.Errorf("%w: ole2 member %s: size %d over %d bytes", ErrBomb, quote(path), size, w.lim.MaxEntrySize)
		}
		var b []byte
		if size < o.cutoff {
			b, err = o.chain(o.mini, le.Uint32(d[116:]), miniSector, int64(size))
		} else {
			b, err = o.chain(o.fat, le.Uint32(d[116:]), o.sector, int64(size))
		}
		if err != nil || uint64(len(b)) < size {
			return bad("stream %s: %v (%d of %d bytes)", path, err, len(b), size)
		}
		b = b[:size]
		if name == "Package" {
			if err := w.emit(OLE, Entry{Path: path, Depth: depth}, b); err != nil {
				return err
			}
			continue
		}
		label, file, ok := oleNative(b)
		e := Entry{Path: path, Depth: depth}
		if ok {
			e.Path = join(parent, label)
			b = file
		}
		if err := w.emit(OLE, e, b); err != nil {
			return err
		}
	}
	return nil
}

// oleNative takes the packaged file out of an Ole10Native stream in the
// Packager layout: total size, 2, label, source path, 0, 3, temporary path
// (with its length), data size, data. ok is false for another layout (an
// OLE 1.0 object of another class), whose stream is then passed whole.
func oleNative(b []byte) (label string, file []byte, ok bool) {
	le := binary.LittleEndian
	if len(b) < 6 || le.Uint16(b[4:]) != 2 {
		return "", nil, false
	}
	r := b[6:]
	cstr := func() (string, bool) {
		i := bytes.IndexByte(r, 0)
		if i < 0 {
			return "", false
		}
		s := string(r[:i])
		r = r[i+1:]
		return s, true
	}
	lbl, ok1 := cstr()
	src, ok2 := cstr()
	if !ok1 || !ok2 || len(r) < 8 {
		return "", nil, false
	}
	r = r[4:] // 0, 3
	tl := int(le.Uint32(r))
	if tl > len(r)-4 {
		return "", nil, false
	}
	r = r[4+tl:]
	if len(r) < 4 {
		return "", nil, false
	}
	n := int(le.Uint32(r))
	if n > len(r)-4 {
		return "", nil, false
	}
	name := lbl
	if i := strings.LastIndexAny(src, `\/`); src != "" {
		name = src[i+1:]
	}
	if name == "" {
		name = "Ole10Native"
	}
	return name, r[4 : 4+n], true
}
