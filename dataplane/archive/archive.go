// Package archive unpacks containers in memory so the antivirus can scan
// their members: zip (stored, deflate, bzip2), gzip (multi-member), bzip2,
// xz (LZMA2), tar (ustar, GNU, pax), 7z (copy, LZMA, LZMA2), ISO 9660
// images (Joliet names), RAR (1.5 to 7, rar.go), Outlook's TNEF
// (winmail.dat, tnef.go), Microsoft cabinets (stored, MSZIP; cab.go) and
// the objects packaged in OLE2 documents (ole.go), nested to a bounded
// depth.
//
// Contract. Walk calls a function for every member of a container, in
// archive order; a member that is itself a container is passed to the
// function and then walked. Nothing is written to disk. Every byte produced
// by decompression is counted as it is produced (sizes in headers are hints,
// never trusted), so a lying header cannot slip past the Limits: a tripped
// limit stops the walk with an error wrapping ErrBomb that names the limit
// and the member. Damaged input gives an error wrapping ErrCorrupt after the
// members that could be read were delivered: a truncated download still has
// its complete members scanned. A damaged nested container does not stop the
// walk of its parent; the first such error is returned at the end.
//
// Members the package cannot read (encrypted zip members, compression
// methods it does not implement) are still passed to the function, with nil
// data and Entry.Encrypted or Entry.Skipped saying why, so the caller can
// report them as unscannable.
//
// Cost. Walk is for files, not packets: it allocates. Stored zip members and
// tar members are sub-slices of the input (no copy); a compressed member is
// decompressed into one buffer of at most Limits.MaxEntrySize bytes (growth
// doubles, so the transient peak is under twice that). Buffers of
// members are released when the function returns unless the member is a
// container, whose buffer lives while it is walked, so the memory held at
// once is bounded by MaxDepth × 2 × MaxEntrySize and, in practice, by
// MaxTotal. CPU is bounded by MaxTotal and MaxRatio: at most MaxRatio bytes
// are inflated per compressed byte read (past the first MiB of a member).
//
// RAR is read with github.com/nwaples/rardecode (rar.go), which has no
// dependencies; its dictionary allocation is bounded before it runs.
//
// What is not unpacked, and why. 7z is read by this package's own minimal
// reader (sevenzip.go: folders of one copy, LZMA or LZMA2 coder, decoded
// with github.com/ulikunitz/xz/lzma): the one well-kept pure-Go library,
// github.com/bodgit/sevenzip v1.6.0, would bring eight more modules into the
// firmware (brotli, lz4, go4, golang-lru, go-multierror, x/text,
// bodgit/plumbing, bodgit/windows). 7z folders with filter chains (BCJ/BCJ2,
// which 7-Zip puts in front of executables), PPMd or AES, zip methods other
// than stored, deflate and bzip2 (deflate64, implode, lzma, zstd, ...) and
// xz filters other than LZMA2 (BCJ, delta) give members with nil data and
// Entry.Skipped (or Encrypted), for the caller to report as unscannable.
//
// The zip reader is this package's own (not archive/zip): it reads the
// central directory when there is one, and falls back to the local headers
// when the central directory is missing (a truncated transfer), and it
// rejects members whose data overlap (David Fifield's "better zip bomb").
package archive

import (
	"errors"
	"fmt"
	"strings"
)

// Format is a container format Walk can open.
type Format uint8

// The formats. None is "not a container".
const (
	None Format = iota
	Zip
	Gzip
	Bzip2
	Xz
	Tar
	SevenZip
	ISO  // ISO 9660 image (iso.go)
	Rar  // RAR 1.5 to 7 (rar.go)
	TNEF // Outlook's winmail.dat (tnef.go)
	CAB  // Microsoft cabinet (cab.go)
	OLE  // OLE2 compound file: its packaged objects (ole.go)
)

var formatNames = [...]string{"none", "zip", "gzip", "bzip2", "xz", "tar", "7z", "iso9660", "rar", "tnef", "cab", "ole2"}

// String returns the lower-case name of the format: "zip", "gzip", ...
func (f Format) String() string {
	if int(f) < len(formatNames) {
		return formatNames[f]
	}
	return fmt.Sprintf("format(%d)", uint8(f))
}

// Detect tells a container by its magic bytes; tar by the ustar magic at
// offset 257 or, for old v7 archives, a valid header checksum.
func Detect(data []byte) Format {
	switch {
	case len(data) >= 4 && data[0] == 'P' && data[1] == 'K' &&
		((data[2] == 3 && data[3] == 4) || (data[2] == 5 && data[3] == 6) || (data[2] == 7 && data[3] == 8)):
		return Zip
	case len(data) >= 3 && data[0] == 0x1f && data[1] == 0x8b && data[2] == 8:
		return Gzip
	case len(data) >= 10 && data[0] == 'B' && data[1] == 'Z' && data[2] == 'h' && data[3] >= '1' && data[3] <= '9' &&
		string(data[4:10]) == "\x31\x41\x59\x26\x53\x59":
		return Bzip2
	case len(data) >= 6 && string(data[:6]) == "\xfd7zXZ\x00":
		return Xz
	case len(data) >= 6 && string(data[:6]) == "7z\xbc\xaf\x27\x1c":
		return SevenZip
	case len(data) >= 7 && string(data[:7]) == "Rar!\x1a\x07\x00", len(data) >= 8 && string(data[:8]) == "Rar!\x1a\x07\x01\x00":
		return Rar
	case isTNEF(data):
		return TNEF
	case isCAB(data):
		return CAB
	case isOLE(data):
		return OLE
	case isTar(data):
		return Tar
	case isISO(data):
		return ISO
	}
	return None
}

// isTar reports a tar header block: ustar magic (POSIX "ustar\0", GNU
// "ustar  \0") or, for v7 archives, a checksum that adds up.
func isTar(b []byte) bool {
	if len(b) < 512 {
		return false
	}
	if string(b[257:262]) == "ustar" && (b[262] == 0 || b[262] == ' ') {
		return tarChecksumOK(b)
	}
	if b[0] == 0 { // v7 with no name: not a header
		return false
	}
	return tarChecksumOK(b)
}

func tarChecksumOK(b []byte) bool {
	field := b[148:156]
	var want int64
	digits := 0
	for _, c := range field {
		switch {
		case c >= '0' && c <= '7':
			want = want*8 + int64(c-'0')
			digits++
		case c == ' ' || c == 0:
			if digits > 0 {
				goto done
			}
		default:
			return false
		}
	}
done:
	if digits == 0 {
		return false
	}
	var unsigned, signed int64
	for i, c := range b[:512] {
		if i >= 148 && i < 156 {
			c = ' '
		}
		unsigned += int64(c)
		signed += int64(int8(c))
	}
	return want == unsigned || want == signed
}

// Limits bound what Walk unpacks. A zero field takes its default.
type Limits struct {
	// MaxDepth is the deepest nesting opened: members of the outer
	// container are at depth 1, so a zip in a gzip in a tar is at 3, and
	// a .tar.gz's files are at 2 (the gzip layer counts). Default 5.
	MaxDepth int
	// MaxEntries is the number of members passed to the function, at all
	// depths together. Default 10,000.
	MaxEntries int
	// MaxEntrySize is the largest member, in bytes actually produced.
	// Default 64 MiB.
	MaxEntrySize int64
	// MaxTotal is all members together, at all depths (a .tar.gz's files
	// count once as the tar and once each), i.e. the bytes the scanner
	// will see. Default 256 MiB.
	MaxTotal int64
	// MaxRatio is the largest decompressed/compressed ratio, checked for
	// each member as it is inflated (bytes out over compressed bytes read
	// so far) and for the walk as a whole (all members over the input's
	// length); both only once more than 1 MiB came out, so small, very
	// compressible files pass. Default 100; a negative value disables it.
	//
	// Why 100: ordinary files compress 2–10:1, text and logs up to about
	// 20–50:1; deflate cannot exceed 1032:1 and only gets near it on long
	// runs of one byte, which is what bombs are made of. 100 leaves room
	// for odd benign files (zero padding) while bounding the work an
	// attacker buys with each byte sent: a 1 MB file costs at most 100 MB
	// of inflating and scanning, and a bomb is stopped after its first MiB
	// instead of at MaxEntrySize or MaxTotal.
	MaxRatio int
}

// The defaults of Limits.
const (
	DefaultMaxDepth     = 5
	DefaultMaxEntries   = 10_000
	DefaultMaxEntrySize = 64 << 20
	DefaultMaxTotal     = 256 << 20
	DefaultMaxRatio     = 100

	// ratioFloor is the output below which ratios are not checked.
	ratioFloor = 1 << 20
)

func (l Limits) withDefaults() Limits {
	if l.MaxDepth <= 0 {
		l.MaxDepth = DefaultMaxDepth
	}
	if l.MaxEntries <= 0 {
		l.MaxEntries = DefaultMaxEntries
	}
	if l.MaxEntrySize <= 0 {
		l.MaxEntrySize = DefaultMaxEntrySize
	}
	if l.MaxTotal <= 0 {
		l.MaxTotal = DefaultMaxTotal
	}
	if l.MaxRatio == 0 {
		l.MaxRatio = DefaultMaxRatio
	}
	return l
}

// Entry describes one member passed to Walk's function.
type Entry struct {
	// Path is the member's name, prefixed by the names of the containers
	// it is nested in ("outer.zip/inner/x.exe"). The content of a
	// gzip/bzip2/xz stream takes the name stored in the gzip header, or
	// its container's name without the .gz/.bz2/.xz suffix (.tgz becomes
	// .tar); it is empty for an unnamed top-level stream, whose name only
	// the caller knows.
	Path string
	// Size is the member's size in bytes actually produced (the length of
	// the data passed), or the size the header claims when data is nil.
	Size int64
	// Format is the member's own container format (None for a plain
	// file). A container is walked after the function returns.
	Format Format
	// Depth is the nesting depth: 1 for members of the outer container.
	Depth int
	// Encrypted marks an encrypted zip member: data is nil.
	Encrypted bool
	// Skipped says why a member could not be unpacked when data is nil
	// and it is not encrypted: "zip method 9 (deflate64) not supported".
	Skipped string
}

// Stats sums up a walk.
type Stats struct {
	Entries   int   // members passed to the function
	Bytes     int64 // their data, all depths together
	MaxDepth  int   // deepest member seen
	Encrypted int   // encrypted members (data nil)
	Skipped   int   // members not unpacked for another reason (data nil)
}

// The errors Walk returns, wrapped with the details.
var (
	// ErrBomb: a limit tripped (which one and where is in the message);
	// the walk stopped. The input is unscannable past that point.
	ErrBomb = errors.New("archive: decompression limit exceeded")
	// ErrCorrupt: a container is damaged or truncated; the members read
	// before the damage were delivered.
	ErrCorrupt = errors.New("archive: corrupt container")
)

// Walk calls fn for every member of data, recursively into nested
// containers (a nested container is passed to fn and then walked), in
// archive order. data that is not a container (Detect returns None) gives
// zero Stats and no error; the outer container itself is not passed to fn.
//
// member is valid only during the call: it may be a sub-slice of data or a
// buffer reused after fn returns; copy what must outlive it. An error
// returned by fn stops the walk and is returned as is (wrapped with the
// member's path).
func Walk(data []byte, lim Limits, fn func(e Entry, member []byte) error) (Stats, error) {
	w := walker{lim: lim.withDefaults(), fn: fn, inLen: int64(len(data))}
	f := Detect(data)
	if f == None {
		return w.st, nil
	}
	err := w.walk(data, f, "", 1)
	if err == nil {
		err = w.corrupt
	}
	return w.st, err
}

type walker struct {
	lim     Limits
	fn      func(Entry, []byte) error
	st      Stats
	inLen   int64
	corrupt error // first damaged nested container
}

// walk opens container data of format f whose members are at depth.
func (w *walker) walk(data []byte, f Format, path string, depth int) error {
	if depth > w.lim.MaxDepth {
		return fmt.Errorf("%w: %s %s: nesting depth %d over %d", ErrBomb, f, quote(path), depth, w.lim.MaxDepth)
	}
	switch f {
	case Zip:
		return w.zip(data, path, depth)
	case Gzip:
		return w.gzip(data, path, depth)
	case Bzip2:
		return w.bzip2(data, path, depth)
	case Xz:
		return w.xz(data, path, depth)
	case Tar:
		return w.tar(data, path, depth)
	case SevenZip:
		return w.sevenZip(data, path, depth)
	case ISO:
		return w.iso(data, path, depth)
	case Rar:
		return w.rar(data, path, depth)
	case TNEF:
		return w.tnef(data, path, depth)
	case CAB:
		return w.cab(data, path, depth)
	case OLE:
		return w.ole(data, path, depth)
	}
	return nil
}

// emit passes one member to fn and walks it when it is a container.
// Limits on entries, total and overall ratio are checked here; the
// per-member size and ratio while inflating.
func (w *walker) emit(kind Format, e Entry, member []byte) error {
	if w.st.Entries >= w.lim.MaxEntries {
		return fmt.Errorf("%w: %s member %s: more than %d members", ErrBomb, kind, quote(e.Path), w.lim.MaxEntries)
	}
	if member != nil {
		e.Size = int64(len(member))
		if err := w.account(kind, e.Path, e.Size); err != nil {
			return err
		}
		e.Format = Detect(member)
	}
	w.st.Entries++
	w.st.Bytes += int64(len(member))
	if e.Depth > w.st.MaxDepth {
		w.st.MaxDepth = e.Depth
	}
	if e.Encrypted {
		w.st.Encrypted++
	} else if member == nil && e.Skipped != "" {
		w.st.Skipped++
	}
	if err := w.fn(e, member); err != nil {
		return fmt.Errorf("archive: %s: %w", quote(e.Path), err)
	}
	if e.Format == None {
		return nil
	}
	err := w.walk(member, e.Format, e.Path, e.Depth+1)
	if errors.Is(err, ErrCorrupt) {
		// A damaged nested container must not hide its siblings.
		if w.corrupt == nil {
			w.corrupt = err
		}
		return nil
	}
	return err
}

// account checks a member of n bytes against the total and overall ratio.
func (w *walker) account(kind Format, path string, n int64) error {
	if w.st.Bytes+n > w.lim.MaxTotal {
		return fmt.Errorf("%w: %s member %s: total unpacked %d bytes over %d", ErrBomb, kind, quote(path), w.st.Bytes+n, w.lim.MaxTotal)
	}
	total := w.st.Bytes + n
	if w.lim.MaxRatio > 0 && total > ratioFloor && total > int64(w.lim.MaxRatio)*max(w.inLen, 1) {
		return fmt.Errorf("%w: %s member %s: overall ratio %d:1 over %d", ErrBomb, kind, quote(path), total/max(w.inLen, 1), w.lim.MaxRatio)
	}
	return nil
}

// join names a member inside the container at parent.
func join(parent, name string) string {
	name = strings.TrimLeft(name, "/")
	if parent == "" {
		return name
	}
	return parent + "/" + name
}

// stripSuffix names the content of a compressed stream from its container.
func stripSuffix(parent string, suffixes ...string) string {
	low := strings.ToLower(parent)
	for i := 0; i+1 < len(suffixes); i += 2 {
		if strings.HasSuffix(low, suffixes[i]) {
			return parent[:len(parent)-len(suffixes[i])] + suffixes[i+1]
		}
	}
	return parent
}

// quote prints a path for an error message.
func quote(p string) string {
	if p == "" {
		return "(top)"
	}
	return p
}
