package archive

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Microsoft cabinets (.cab, MS-CAB): Windows' own archive, which Explorer
// opens with a double click, mailed and downloaded like a zip. A cabinet's
// files sit in folders, each one stream of data blocks, stored or MSZIP
// (deflate blocks of up to 32 KiB, each seeded with the previous block's
// output). A folder is decoded once and its files are slices of it; the
// sizes the blocks claim are checked against MaxTotal before any is
// decoded, and every block must give the size it claims. Folders in
// Quantum or LZX pass their files as Skipped; a cabinet that continues in
// another one (a multi-part set) has its whole folders read and the rest
// reported damaged.

const (
	cabHeader  = 36
	cabNone    = 0
	cabMSZIP   = 1
	cabMaxBlck = 32768 + 6144 // the largest compressed block MS-CAB allows
)

func isCAB(b []byte) bool {
	return len(b) >= cabHeader && string(b[:4]) == "MSCF" && b[25] == 1 // version 1.3
}

type cabFolder struct {
	start  uint32 // first data block
	blocks int
	method uint16
}

// cab walks a cabinet.
func (w *walker) cab(data []byte, parent string, depth int) error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: cab %s: %s", ErrCorrupt, quote(parent), fmt.Sprintf(format, a...))
	}
	le := binary.LittleEndian
	filesAt := le.Uint32(data[16:])
	nFolders, nFiles, flags := int(le.Uint16(data[26:])), int(le.Uint16(data[28:])), le.Uint16(data[30:])
	p := cabHeader
	var folderRes, dataRes int
	if flags&4 != 0 { // reserved areas
		if len(data) < p+4 {
			return bad("header cut")
		}
		p += 4 + int(le.Uint16(data[p:]))
		folderRes, dataRes = int(data[cabHeader+2]), int(data[cabHeader+3])
	}
	for _, f := range []uint16{1, 2} { // previous, next cabinet: two names each
		if flags&f == 0 {
			continue
		}
		for range 2 {
			i := bytes.IndexByte(data[min(p, len(data)):], 0)
			if i < 0 {
				return bad("header cut")
			}
			p += i + 1
		}
	}
	folders := make([]cabFolder, 0, min(nFolders, 1024))
	for range nFolders {
		if len(data) < p+8 {
			return bad("folder table cut")
		}
		folders = append(folders, cabFolder{start: le.Uint32(data[p:]), blocks: int(le.Uint16(data[p+4:])), method: le.Uint16(data[p+6:]) & 0x0f})
		p += 8 + folderRes
	}
	decoded := make(map[int][]byte) // folder -> its data, decoded when a file first needs it
	skipped := make(map[int]string)
	var firstErr error
	p = int(filesAt)
	for range nFiles {
		if p < 0 || len(data) < p+16 {
			return bad("file table cut")
		}
		size, off, fi := le.Uint32(data[p:]), le.Uint32(data[p+4:]), int(le.Uint16(data[p+8:]))
		end := bytes.IndexByte(data[p+16:], 0)
		if end < 0 {
			return bad("file name cut")
		}
		name := string(data[p+16 : p+16+end])
		p += 16 + end + 1
		e := Entry{Path: join(parent, name), Depth: depth, Size: int64(size)}
		if fi >= len(folders) { // 0xFFFD-0xFFFF: continued from or into another cabinet
			e.Skipped = "cab file continued in another cabinet"
			if err := w.emit(CAB, e, nil); err != nil {
				return err
			}
			continue
		}
		out, ok := decoded[fi]
		if !ok && skipped[fi] == "" {
			var err error
			out, skipped[fi], err = w.cabFolder(data, folders[fi], dataRes, e.Path)
			if err != nil && !errors.Is(err, ErrCorrupt) {
				return err
			}
			if err != nil && firstErr == nil {
				firstErr = err
			}
			decoded[fi] = out
		}
		if why := skipped[fi]; why != "" {
			e.Skipped = why
			if err := w.emit(CAB, e, nil); err != nil {
				return err
			}
			continue
		}
		if uint64(off)+uint64(size) > uint64(len(out)) {
			if firstErr == nil {
				firstErr = bad("file %s past its folder's %d bytes", name, len(out))
			}
			continue
		}
		if int64(size) > w.lim.MaxEntrySize {
			return fmt.Errorf("%w: cab member %s: size %d over %d bytes", ErrBomb, quote(e.Path), size, w.lim.MaxEntrySize)
		}
		if err := w.emit(CAB, e, out[off:off+size:off+size]); err != nil {
			return err
		}
	}
	return firstErr
}

// cabFolder decodes one folder's data blocks; skip says why it was not
// (its compression); the error wraps ErrCorrupt (what was decoded before
// the damage is returned) or ErrBomb.
func (w *walker) cabFolder(data []byte, f cabFolder, res int, path string) (out []byte, skip string, err error) {
	le := binary.LittleEndian
	switch f.method {
	case cabNone, cabMSZIP:
	case 2:
		return nil, "cab Quantum compression not supported", nil
	case 3:
		return nil, "cab LZX compression not supported", nil
	default:
		return nil, fmt.Sprintf("cab compression %d not supported", f.method), nil
	}
	// The sizes the blocks claim, first: a folder may not promise more
	// than the walk may still produce.
	var claim int64
	p := int(f.start)
	for range f.blocks {
		if p < 0 || len(data) < p+8+res {
			break
		}
		claim += int64(le.Uint16(data[p+6:]))
		p += 8 + res + int(le.Uint16(data[p+4:]))
	}
	if w.st.Bytes+claim > w.lim.MaxTotal {
		return nil, "", fmt.Errorf("%w: cab folder of %s: %d bytes claimed, total over %d", ErrBomb, quote(path), claim, w.lim.MaxTotal)
	}
	if w.lim.MaxRatio > 0 && claim > ratioFloor && claim > int64(w.lim.MaxRatio)*max(w.inLen, 1) {
		return nil, "", fmt.Errorf("%w: cab folder of %s: %d bytes claimed from %d, ratio over %d", ErrBomb, quote(path), claim, w.inLen, w.lim.MaxRatio)
	}
	out = make([]byte, 0, claim)
	p = int(f.start)
	for i := range f.blocks {
		if p < 0 || len(data) < p+8+res {
			return out, "", fmt.Errorf("%w: cab folder of %s: block %d cut", ErrCorrupt, quote(path), i)
		}
		n, want := int(le.Uint16(data[p+4:])), int(le.Uint16(data[p+6:]))
		p += 8 + res
		if n > cabMaxBlck || len(data) < p+n {
			return out, "", fmt.Errorf("%w: cab folder of %s: block %d of %d bytes cut or too long", ErrCorrupt, quote(path), i, n)
		}
		blk := data[p : p+n]
		p += n
		if f.method == cabNone {
			out = append(out, blk...)
			continue
		}
		if len(blk) < 2 || blk[0] != 'C' || blk[1] != 'K' {
			return out, "", fmt.Errorf("%w: cab folder of %s: MSZIP block %d without its CK mark", ErrCorrupt, quote(path), i)
		}
		dict := out[max(len(out)-32768, 0):]
		fr := flate.NewReaderDict(bytes.NewReader(blk[2:]), dict)
		got, err := io.ReadAll(io.LimitReader(fr, int64(want)+1))
		fr.Close()
		if err != nil || len(got) != want {
			return out, "", fmt.Errorf("%w: cab folder of %s: MSZIP block %d gave %d bytes of %d (%v)", ErrCorrupt, quote(path), i, len(got), want, err)
		}
		out = append(out, got...)
	}
	return out, "", nil
}
