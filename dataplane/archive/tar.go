package archive

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
)

// tar walks a tar archive with archive/tar (ustar, GNU long names, pax).
// Regular files are passed as sub-slices of data (no copy); sparse files
// are read through archive/tar. Directories, links and devices are not
// members. A truncated last file is passed as far as it goes, then
// ErrCorrupt.
func (w *walker) tar(data []byte, parent string, depth int) error {
	br := bytes.NewReader(data)
	tr := tar.NewReader(br)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%w: tar %s: %v", ErrCorrupt, quote(parent), err)
		}
		switch h.Typeflag {
		case tar.TypeReg, tar.TypeRegA, tar.TypeGNUSparse, tar.TypeCont:
		default:
			continue
		}
		name := join(parent, h.Name)
		e := Entry{Path: name, Depth: depth, Size: h.Size}
		if h.Size > w.lim.MaxEntrySize {
			return fmt.Errorf("%w: tar member %s: size %d over %d bytes", ErrBomb, quote(name), h.Size, w.lim.MaxEntrySize)
		}
		off := int64(len(data) - br.Len())
		if h.Typeflag != tar.TypeGNUSparse && h.Size >= 0 && !isPaxSparse(h) {
			end := off + h.Size
			short := end > int64(len(data))
			if short {
				end = int64(len(data))
			}
			if err := w.emit(Tar, e, data[off:end:end]); err != nil {
				return err
			}
			if short {
				return fmt.Errorf("%w: tar %s: member %s truncated at %d of %d bytes", ErrCorrupt, quote(parent), name, end-off, h.Size)
			}
			continue
		}
		// A sparse file's holes are zeros that were never stored: its
		// ratio is not a bomb signal (its size is bounded above).
		in := &counter{r: br, n: int64(len(data))}
		out, rerr := w.inflate(Tar, name, tr, in, h.Size)
		if errors.Is(rerr, ErrBomb) {
			return rerr
		}
		if err := w.emit(Tar, e, out); err != nil {
			return err
		}
		if rerr != nil {
			return fmt.Errorf("%w: tar %s: member %s: %v", ErrCorrupt, quote(parent), name, rerr)
		}
	}
}

func isPaxSparse(h *tar.Header) bool {
	for k := range h.PAXRecords {
		if len(k) > 10 && k[:10] == "GNU.sparse" {
			return true
		}
	}
	return false
}
