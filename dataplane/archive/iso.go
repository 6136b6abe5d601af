package archive

import (
	"encoding/binary"
	"fmt"
	"strings"
	"unicode/utf16"
)

// ISO 9660 images (.iso, .img) are how malware has been mailed since
// Office macros got blocked: Windows mounts one with a double click and
// its files do not carry the downloaded-from-the-internet mark. The
// reader takes the Joliet tree when the image has one (UCS-2 names, what
// Windows shows) and the primary tree otherwise (";1" versions dropped).
// Files are sub-slices of the image, no copy. A directory that loops back,
// a record out of the image or a file running past its end make the walk
// end with ErrCorrupt after what could be read; a file larger than
// MaxEntrySize is ErrBomb, and many names for one extent count against
// MaxTotal like any member.

const (
	isoSector     = 2048
	isoFirstVD    = 16 // the first volume descriptor's sector
	isoMaxVDs     = 64 // descriptors read before the terminator
	isoMaxDirs    = 4096
	isoDirRecord  = 33 // fixed part of a directory record
	isoFlagDir    = 0x02
	isoVDPrimary  = 1
	isoVDSupplem  = 2
	isoVDTerminat = 255
)

// isISO reports an ISO 9660 volume descriptor at sector 16.
func isISO(b []byte) bool {
	o := isoFirstVD * isoSector
	return len(b) >= o+isoSector && string(b[o+1:o+6]) == "CD001" && b[o+6] == 1
}

func (w *walker) iso(data []byte, parent string, depth int) error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: iso9660 %s: %s", ErrCorrupt, quote(parent), fmt.Sprintf(format, a...))
	}
	var root []byte
	joliet := false
	bs := 0
	for s := isoFirstVD; ; s++ {
		off := s * isoSector
		if s >= isoFirstVD+isoMaxVDs || off+isoSector > len(data) {
			return bad("no volume descriptor terminator in sectors %d-%d", isoFirstVD, s)
		}
		vd := data[off : off+isoSector]
		if string(vd[1:6]) != "CD001" {
			return bad("sector %d is not a volume descriptor", s)
		}
		t := vd[0]
		if t == isoVDTerminat {
			break
		}
		jol := t == isoVDSupplem && vd[88] == '%' && vd[89] == '/' && (vd[90] == '@' || vd[90] == 'C' || vd[90] == 'E')
		if t == isoVDPrimary && root == nil || jol && !joliet {
			root, joliet, bs = vd[156:156+34], jol, int(binary.LittleEndian.Uint16(vd[128:]))
		}
	}
	if root == nil {
		return bad("no primary volume descriptor")
	}
	if bs != 512 && bs != 1024 && bs != 2048 {
		return bad("logical block size %d", bs)
	}
	type dir struct {
		lba, size uint32
		path      string
	}
	stack := []dir{{binary.LittleEndian.Uint32(root[2:]), binary.LittleEndian.Uint32(root[10:]), ""}}
	seen := map[uint32]bool{}
	dirBytes := 0 // directories do not overlap: together they fit in the image
	for len(stack) > 0 {
		d := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if seen[d.lba] {
			return bad("directory %s loops back", quote(d.path))
		}
		if seen[d.lba] = true; len(seen) > isoMaxDirs {
			return bad("more than %d directories", isoMaxDirs)
		}
		start, end := int64(d.lba)*int64(bs), int64(d.lba)*int64(bs)+int64(d.size)
		if end > int64(len(data)) {
			return bad("directory %s at block %d runs past the image", quote(d.path), d.lba)
		}
		dd := data[start:end]
		if dirBytes += len(dd); dirBytes > len(data) {
			return bad("directories overlap (%d bytes of them in a %d-byte image)", dirBytes, len(data))
		}
		var sub []dir
		for pos := 0; pos < len(dd); {
			l := int(dd[pos])
			if l == 0 { // records do not cross blocks: the rest of this one is padding
				pos = (pos/bs + 1) * bs
				continue
			}
			if l < isoDirRecord+1 || pos+l > len(dd) || isoDirRecord+int(dd[pos+32]) > l {
				return bad("bad directory record in %s", quote(d.path))
			}
			rec := dd[pos : pos+l]
			pos += l
			raw := rec[isoDirRecord : isoDirRecord+int(rec[32])]
			if len(raw) == 1 && raw[0] <= 1 { // "." and ".."
				continue
			}
			name := isoName(raw, joliet)
			path := name
			if d.path != "" {
				path = d.path + "/" + name
			}
			lba, size := binary.LittleEndian.Uint32(rec[2:]), binary.LittleEndian.Uint32(rec[10:])
			if rec[25]&isoFlagDir != 0 {
				sub = append(sub, dir{lba, size, path})
				continue
			}
			e := Entry{Path: join(parent, path), Depth: depth, Size: int64(size)}
			if int64(size) > w.lim.MaxEntrySize {
				return fmt.Errorf("%w: iso9660 member %s: size %d over %d bytes", ErrBomb, quote(e.Path), size, w.lim.MaxEntrySize)
			}
			off := int64(lba) * int64(bs)
			if off > int64(len(data)) {
				return bad("file %s at block %d is past the image", path, lba)
			}
			stop := min(off+int64(size), int64(len(data)))
			if err := w.emit(ISO, e, data[off:stop:stop]); err != nil {
				return err
			}
			if stop < off+int64(size) {
				return bad("file %s truncated at %d of %d bytes", path, stop-off, size)
			}
		}
		for i := len(sub) - 1; i >= 0; i-- { // archive order: a directory's subdirectories first to last
			stack = append(stack, sub[i])
		}
	}
	return nil
}

// isoName decodes a directory record's file identifier: UCS-2 big-endian
// for Joliet, else ASCII; the ";1" version and a bare trailing dot go.
func isoName(raw []byte, joliet bool) string {
	var s string
	if joliet && len(raw)%2 == 0 {
		u := make([]uint16, len(raw)/2)
		for i := range u {
			u[i] = binary.BigEndian.Uint16(raw[2*i:])
		}
		s = string(utf16.Decode(u))
	} else {
		s = string(raw)
	}
	if i := strings.LastIndexByte(s, ';'); i >= 0 {
		s = s[:i]
	}
	return strings.TrimSuffix(s, ".")
}
