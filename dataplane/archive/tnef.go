package archive

import (
	"bytes"
	"encoding/binary"
	"fmt"
)

// TNEF (winmail.dat, application/ms-tnef) is how Outlook and Exchange wrap
// the attachments of a rich-text message: the attachments travel inside
// it, uncompressed, under names only the TNEF stream carries. Its members
// are the attachments (attAttachData, named by attAttachTitle), sub-slices
// of the stream, in order. A stream cut short ends the walk with
// ErrCorrupt after the attachments that were whole.

const (
	tnefSignature  = 0x223e9f78
	tnefRendData   = 0x00069002 // attAttachRenddata: an attachment begins
	tnefAttachData = 0x0006800f // attAttachData: its bytes
	tnefAttachName = 0x00018010 // attAttachTitle: its 8.3 name, NUL-terminated
)

func isTNEF(b []byte) bool {
	return len(b) >= 6 && binary.LittleEndian.Uint32(b) == tnefSignature
}

// tnef walks a TNEF stream: signature, key, then attributes (level, id,
// length, data, checksum).
func (w *walker) tnef(data []byte, parent string, depth int) error {
	var name, body []byte
	have, n := false, 0
	flush := func() error {
		if !have {
			return nil
		}
		n++
		label := string(bytes.TrimRight(name, "\x00"))
		if label == "" {
			label = fmt.Sprintf("attachment-%d", n)
		}
		e := Entry{Path: join(parent, label), Depth: depth}
		member := body
		name, body, have = nil, nil, false
		if member == nil {
			// Its bytes are in the MAPI properties (an embedded message,
			// an OLE object), which are not read.
			e.Skipped = "tnef attachment without attAttachData"
			return w.emit(TNEF, e, nil)
		}
		if int64(len(member)) > w.lim.MaxEntrySize {
			return fmt.Errorf("%w: tnef member %s: size %d over %d bytes", ErrBomb, quote(e.Path), len(member), w.lim.MaxEntrySize)
		}
		return w.emit(TNEF, e, member)
	}
	b := data[6:]
	for len(b) >= 9 { // fewer bytes left: padding after the last attribute, as Exchange writes
		id, l := binary.LittleEndian.Uint32(b[1:]), binary.LittleEndian.Uint32(b[5:])
		if uint64(l)+2 > uint64(len(b)-9) { // the attachment being read is lost with it
			return fmt.Errorf("%w: tnef %s: attribute %#x of %d bytes runs past the end", ErrCorrupt, quote(parent), id, l)
		}
		v := b[9 : 9+l]
		b = b[9+l+2:] // after the checksum
		switch id {
		case tnefRendData:
			if err := flush(); err != nil {
				return err
			}
			have = true
		case tnefAttachData:
			body, have = v, true
		case tnefAttachName:
			name, have = v, true
		}
	}
	return flush()
}
