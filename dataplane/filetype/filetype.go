// Package filetype tells what a file is from its first bytes, for the
// antivirus's fileinfo events and the Suricata filemagic keyword.
//
// Contract. Detect looks at the first up to 4 KiB of a file (more is
// ignored) and returns a Type whose Name follows libmagic's wording where
// there is one ("PE32 executable (GUI) Intel 80386", "PDF document",
// "Zip archive data"), with a MIME type and the usual extension. It never
// fails: what it does not know is "data" (application/octet-stream), an
// empty head is "empty". It covers executables (PE 32/64 and DLLs, MS-DOS,
// ELF, Mach-O, Java class), documents (PDF, OLE2 Office, OOXML, OpenDocument,
// RTF), archives (zip, jar, gzip, bzip2, xz, 7z, rar, tar, cab), images
// (JPEG, PNG, GIF), Windows shortcuts, HTML and XML, scripts by their
// shebang, and plain ASCII or UTF-8 text. ISO 9660 is not detected: its
// signature is at 32 KiB, past the head.
//
// Cost: no allocation. Every Type comes from a table built at start-up;
// Detect only compares bytes (at most a few scans of the 4 KiB head).
package filetype

import (
	"bytes"
	"encoding/binary"
	"unicode/utf8"
)

// Type is what a file is.
type Type struct {
	Name string // libmagic-like description
	MIME string // media type
	Ext  string // usual extension, without the dot ("exe", "pdf"); empty when there is none
}

// HeadSize is how much of a file Detect looks at.
const HeadSize = 4096

var (
	Empty    = Type{"empty", "application/x-empty", ""}
	Data     = Type{"data", "application/octet-stream", ""}
	ASCII    = Type{"ASCII text", "text/plain", "txt"}
	UTF8     = Type{"Unicode text, UTF-8 text", "text/plain", "txt"}
	UTF8BOM  = Type{"Unicode text, UTF-8 (with BOM) text", "text/plain", "txt"}
	HTML     = Type{"HTML document", "text/html", "html"}
	XML      = Type{"XML document", "text/xml", "xml"}
	PDF      = Type{"PDF document", "application/pdf", "pdf"}
	RTF      = Type{"Rich Text Format data", "text/rtf", "rtf"}
	Zip      = Type{"Zip archive data", "application/zip", "zip"}
	JAR      = Type{"Java archive data (JAR)", "application/java-archive", "jar"}
	DOCX     = Type{"Microsoft Word 2007+", "application/vnd.openxmlformats-officedocument.wordprocessingml.document", "docx"}
	XLSX     = Type{"Microsoft Excel 2007+", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "xlsx"}
	PPTX     = Type{"Microsoft PowerPoint 2007+", "application/vnd.openxmlformats-officedocument.presentationml.presentation", "pptx"}
	OOXML    = Type{"Microsoft OOXML", "application/octet-stream", ""}
	ODT      = Type{"OpenDocument Text", "application/vnd.oasis.opendocument.text", "odt"}
	ODS      = Type{"OpenDocument Spreadsheet", "application/vnd.oasis.opendocument.spreadsheet", "ods"}
	ODP      = Type{"OpenDocument Presentation", "application/vnd.oasis.opendocument.presentation", "odp"}
	OLE      = Type{"Composite Document File V2 Document", "application/x-ole-storage", ""}
	DOC      = Type{"Composite Document File V2 Document, Microsoft Word", "application/msword", "doc"}
	XLS      = Type{"Composite Document File V2 Document, Microsoft Excel", "application/vnd.ms-excel", "xls"}
	PPT      = Type{"Composite Document File V2 Document, Microsoft PowerPoint", "application/vnd.ms-powerpoint", "ppt"}
	MSI      = Type{"Composite Document File V2 Document, MSI Installer", "application/x-msi", "msi"}
	Gzip     = Type{"gzip compressed data", "application/gzip", "gz"}
	Bzip2    = Type{"bzip2 compressed data", "application/x-bzip2", "bz2"}
	Xz       = Type{"XZ compressed data", "application/x-xz", "xz"}
	SevenZ   = Type{"7-zip archive data", "application/x-7z-compressed", "7z"}
	ISO9660  = Type{"ISO 9660 CD-ROM filesystem data", "application/x-iso9660-image", "iso"}
	RAR      = Type{"RAR archive data", "application/vnd.rar", "rar"}
	RAR5     = Type{"RAR archive data, v5", "application/vnd.rar", "rar"}
	TarPOSIX = Type{"POSIX tar archive", "application/x-tar", "tar"}
	TarGNU   = Type{"POSIX tar archive (GNU)", "application/x-tar", "tar"}
	TarV7    = Type{"tar archive", "application/x-tar", "tar"}
	CAB      = Type{"Microsoft Cabinet archive data", "application/vnd.ms-cab-compressed", "cab"}
	JPEG     = Type{"JPEG image data", "image/jpeg", "jpg"}
	PNG      = Type{"PNG image data", "image/png", "png"}
	GIF      = Type{"GIF image data", "image/gif", "gif"}
	LNK      = Type{"MS Windows shortcut", "application/x-ms-shortcut", "lnk"}
	DOS      = Type{"MS-DOS executable", "application/x-dosexec", "exe"}
	Class    = Type{"compiled Java class data", "application/x-java-applet", "class"}
	MachOFat = Type{"Mach-O universal binary", "application/x-mach-binary", ""}
	Script   = Type{"script text executable", "text/plain", ""}
)

// Scripts by interpreter (the shebang's program, or the one after env).
var scripts = []struct {
	prog string
	t    Type
}{
	{"sh", Type{"POSIX shell script, ASCII text executable", "text/x-shellscript", "sh"}},
	{"bash", Type{"Bourne-Again shell script, ASCII text executable", "text/x-shellscript", "sh"}},
	{"dash", Type{"POSIX shell script, ASCII text executable", "text/x-shellscript", "sh"}},
	{"zsh", Type{"Paul Falstad's zsh script, ASCII text executable", "text/x-shellscript", "zsh"}},
	{"ksh", Type{"Korn shell script, ASCII text executable", "text/x-shellscript", "ksh"}},
	{"csh", Type{"C shell script, ASCII text executable", "text/x-shellscript", "csh"}},
	{"python", Type{"Python script, ASCII text executable", "text/x-script.python", "py"}},
	{"python2", Type{"Python script, ASCII text executable", "text/x-script.python", "py"}},
	{"python3", Type{"Python script, ASCII text executable", "text/x-script.python", "py"}},
	{"perl", Type{"Perl script text executable", "text/x-perl", "pl"}},
	{"ruby", Type{"Ruby script, ASCII text executable", "text/x-ruby", "rb"}},
	{"node", Type{"Node.js script, ASCII text executable", "application/javascript", "js"}},
	{"php", Type{"PHP script, ASCII text executable", "text/x-php", "php"}},
	{"lua", Type{"Lua script, ASCII text executable", "text/x-lua", "lua"}},
	{"tclsh", Type{"Tcl script, ASCII text executable", "text/x-tcl", "tcl"}},
	{"awk", Type{"awk or perl script, ASCII text", "text/x-awk", "awk"}},
	{"pwsh", Type{"PowerShell script, ASCII text executable", "text/plain", "ps1"}},
}

// Executable formats are tables indexed by their header fields, built once.
var (
	peMachines = []struct {
		id   uint16
		name string
	}{{0x14c, "Intel 80386"}, {0x8664, "x86-64"}, {0xaa64, "Aarch64"}, {0x1c0, "ARM"}, {0x1c4, "ARMv7 Thumb"}, {0x200, "Intel Itanium"}, {0, "unknown processor"}}
	peSubsystems = []struct {
		id   uint16
		name string
	}{{2, "(GUI)"}, {3, "(console)"}, {1, "(native)"}, {10, "(EFI application)"}, {0, ""}}
	// pe[class][dll][subsystem][machine]: class 0 PE32, 1 PE32+.
	pe [2][2][5][7]Type

	elfMachines = []struct {
		id   uint16
		name string
	}{{3, "Intel 80386"}, {0x3e, "x86-64"}, {0xb7, "ARM aarch64"}, {0x28, "ARM"}, {8, "MIPS"}, {0x14, "PowerPC"}, {0x15, "64-bit PowerPC"}, {0xf3, "UCB RISC-V"}, {0, "unknown machine"}}
	elfTypes = []string{"no file type", "relocatable", "executable", "shared object", "core file"}
	// elf[class][endian][type][machine]: class 0 32-bit, 1 64-bit; endian 0 LSB, 1 MSB.
	elf [2][2][5][9]Type

	machoTypes = []struct {
		id   uint32
		name string
	}{{2, "executable"}, {6, "dynamically linked shared library"}, {1, "object"}, {8, "bundle"}, {0, "file"}}
	macho [2][5]Type // [64-bit][type]
)

func init() {
	for c, class := range []string{"PE32", "PE32+"} {
		for d, kind := range []string{"executable", "executable (DLL)"} {
			for s, sub := range peSubsystems {
				for m, mach := range peMachines {
					name := class + " " + kind + " "
					if sub.name != "" {
						name += sub.name + " "
					}
					ext := "exe"
					if d == 1 {
						ext = "dll"
					}
					if sub.id == 10 {
						ext = "efi"
					}
					pe[c][d][s][m] = Type{name + mach.name, "application/vnd.microsoft.portable-executable", ext}
				}
			}
		}
	}
	for c, class := range []string{"32-bit", "64-bit"} {
		for e, end := range []string{"LSB", "MSB"} {
			for ty, tname := range elfTypes {
				for m, mach := range elfMachines {
					mime, ext := "application/x-executable", ""
					switch ty {
					case 1:
						mime, ext = "application/x-object", "o"
					case 3:
						mime, ext = "application/x-sharedlib", "so"
					case 4:
						mime = "application/x-coredump"
					}
					elf[c][e][ty][m] = Type{"ELF " + class + " " + end + " " + tname + ", " + mach.name, mime, ext}
				}
			}
		}
	}
	for b, bits := range []string{"Mach-O ", "Mach-O 64-bit "} {
		for t, ty := range machoTypes {
			ext := ""
			if ty.id == 6 {
				ext = "dylib"
			}
			macho[b][t] = Type{bits + ty.name, "application/x-mach-binary", ext}
		}
	}
}

// Detect tells what the file starting with head is. Only the first
// HeadSize bytes are looked at.
func Detect(head []byte) Type {
	if len(head) > HeadSize {
		head = head[:HeadSize]
	}
	if len(head) == 0 {
		return Empty
	}
	if t, ok := binaryType(head); ok {
		return t
	}
	return textType(head)
}

// isoMagicAt is where an ISO 9660 image says "CD001": its first volume
// descriptor, past the 32 KiB system area, so past HeadSize.
const isoMagicAt = 16*2048 + 1

// DetectFile is Detect for a whole file (or as much of it as is kept): it
// also names what is told only past HeadSize, an ISO 9660 image.
func DetectFile(data []byte) Type {
	if has(data, isoMagicAt, "CD001") {
		return ISO9660
	}
	return Detect(data)
}

func has(b []byte, off int, magic string) bool {
	return len(b) >= off+len(magic) && string(b[off:off+len(magic)]) == magic
}

func binaryType(b []byte) (Type, bool) {
	switch {
	case has(b, 0, "MZ"):
		return peType(b), true
	case has(b, 0, "\x7fELF"):
		return elfType(b), true
	case has(b, 0, "\xfe\xed\xfa\xce"), has(b, 0, "\xce\xfa\xed\xfe"):
		return machoType(b, 0), true
	case has(b, 0, "\xfe\xed\xfa\xcf"), has(b, 0, "\xcf\xfa\xed\xfe"):
		return machoType(b, 1), true
	case has(b, 0, "\xca\xfe\xba\xbe"):
		// Mach-O universal binaries and Java classes share the magic:
		// a fat header counts architectures (few), a class its version (>= 45).
		if len(b) >= 8 && binary.BigEndian.Uint32(b[4:]) < 43 {
			return MachOFat, true
		}
		return Class, true
	case has(b, 0, "PK\x03\x04"):
		return zipType(b), true
	case has(b, 0, "PK\x05\x06"), has(b, 0, "PK\x07\x08"):
		return Zip, true
	case has(b, 0, "\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"):
		return oleType(b), true
	case has(b, 0, "{\\rtf"):
		return RTF, true
	case has(b, 0, "\x1f\x8b"):
		return Gzip, true
	case has(b, 0, "BZh") && len(b) >= 4 && b[3] >= '1' && b[3] <= '9':
		return Bzip2, true
	case has(b, 0, "\xfd7zXZ\x00"):
		return Xz, true
	case has(b, 0, "7z\xbc\xaf\x27\x1c"):
		return SevenZ, true
	case has(b, 0, "Rar!\x1a\x07\x00"):
		return RAR, true
	case has(b, 0, "Rar!\x1a\x07\x01\x00"):
		return RAR5, true
	case has(b, 0, "MSCF\x00\x00\x00\x00"):
		return CAB, true
	case has(b, 0, "\xff\xd8\xff"):
		return JPEG, true
	case has(b, 0, "\x89PNG\r\n\x1a\n"):
		return PNG, true
	case has(b, 0, "GIF87a"), has(b, 0, "GIF89a"):
		return GIF, true
	case has(b, 0, "L\x00\x00\x00\x01\x14\x02\x00\x00\x00\x00\x00\xc0\x00\x00\x00\x00\x00\x00F"):
		return LNK, true
	case has(b, 257, "ustar\x00"):
		return TarPOSIX, true
	case has(b, 257, "ustar  \x00"):
		return TarGNU, true
	case tarV7(b):
		return TarV7, true
	}
	// Readers accept a PDF header anywhere in the first KiB.
	if i := bytes.Index(b[:min(len(b), 1024)], pdfMagic); i >= 0 {
		return PDF, true
	}
	return Type{}, false
}

var pdfMagic = []byte("%PDF-")

func peType(b []byte) Type {
	if len(b) < 0x40 {
		return DOS
	}
	off := int(binary.LittleEndian.Uint32(b[0x3c:]))
	if off < 0x40 || off+24+70 > len(b) || !has(b, off, "PE\x00\x00") {
		return DOS
	}
	machine := binary.LittleEndian.Uint16(b[off+4:])
	chars := binary.LittleEndian.Uint16(b[off+22:])
	opt := off + 24
	class := 0
	switch binary.LittleEndian.Uint16(b[opt:]) {
	case 0x10b:
	case 0x20b:
		class = 1
	default:
		return DOS
	}
	sub := binary.LittleEndian.Uint16(b[opt+68:])
	dll := 0
	if chars&0x2000 != 0 {
		dll = 1
	}
	si := len(peSubsystems) - 1
	for i, s := range peSubsystems {
		if s.id == sub {
			si = i
			break
		}
	}
	mi := len(peMachines) - 1
	for i, m := range peMachines {
		if m.id == machine {
			mi = i
			break
		}
	}
	return pe[class][dll][si][mi]
}

func elfType(b []byte) Type {
	if len(b) < 20 || b[4] < 1 || b[4] > 2 || b[5] < 1 || b[5] > 2 {
		return Type{"ELF", "application/x-executable", ""}
	}
	class, end := int(b[4]-1), int(b[5]-1)
	var order binary.ByteOrder = binary.LittleEndian
	if end == 1 {
		order = binary.BigEndian
	}
	ty := int(order.Uint16(b[16:]))
	if ty >= len(elfTypes) {
		ty = 0
	}
	machine := order.Uint16(b[18:])
	mi := len(elfMachines) - 1
	for i, m := range elfMachines {
		if m.id == machine {
			mi = i
			break
		}
	}
	return elf[class][end][ty][mi]
}

func machoType(b []byte, bits int) Type {
	if len(b) < 16 {
		return macho[bits][len(machoTypes)-1]
	}
	ft := binary.LittleEndian.Uint32(b[12:])
	if b[0] == 0xfe { // big-endian magic
		ft = binary.BigEndian.Uint32(b[12:])
	}
	for i, t := range machoTypes {
		if t.id == ft {
			return macho[bits][i]
		}
	}
	return macho[bits][len(machoTypes)-1]
}

var (
	contentTypes = []byte("[Content_Types].xml")
	wordDir      = []byte("word/")
	xlDir        = []byte("xl/")
	pptDir       = []byte("ppt/")
	manifest     = []byte("META-INF/MANIFEST.MF")
	odfText      = []byte("application/vnd.oasis.opendocument.text")
	odfSheet     = []byte("application/vnd.oasis.opendocument.spreadsheet")
	odfPres      = []byte("application/vnd.oasis.opendocument.presentation")
)

// zipType tells OOXML, OpenDocument and JAR from other zips by the member
// names in the head.
func zipType(b []byte) Type {
	if len(b) < 30 {
		return Zip
	}
	nameLen := int(binary.LittleEndian.Uint16(b[26:]))
	name := b[30:min(len(b), 30+nameLen)]
	switch {
	case string(name) == "mimetype":
		switch {
		case bytes.Contains(b, odfText):
			return ODT
		case bytes.Contains(b, odfSheet):
			return ODS
		case bytes.Contains(b, odfPres):
			return ODP
		}
	case bytes.Contains(b, contentTypes):
		switch {
		case bytes.Contains(b, wordDir):
			return DOCX
		case bytes.Contains(b, xlDir):
			return XLSX
		case bytes.Contains(b, pptDir):
			return PPTX
		}
		return OOXML
	case bytes.Equal(name, manifest), string(name) == "META-INF/":
		return JAR
	}
	return Zip
}

var (
	oleWord  = []byte("W\x00o\x00r\x00d\x00D\x00o\x00c\x00u\x00m\x00e\x00n\x00t\x00")
	oleExcel = []byte("W\x00o\x00r\x00k\x00b\x00o\x00o\x00k\x00")
	olePPT   = []byte("P\x00o\x00w\x00e\x00r\x00P\x00o\x00i\x00n\x00t\x00 \x00D\x00o\x00c\x00u\x00m\x00e\x00n\x00t\x00")
	// An installer's root storage has the MSI class ID
	// {000C1084-0000-0000-C000-000000000046}.
	oleMSI = []byte("\x84\x10\x0c\x00\x00\x00\x00\x00\xc0\x00\x00\x00\x00\x00\x00\x46")
)

// oleType names the Office application when the directory entries are in
// the head (they often are not: then it is a generic OLE2 file).
func oleType(b []byte) Type {
	switch {
	case bytes.Contains(b, oleWord):
		return DOC
	case bytes.Contains(b, oleExcel):
		return XLS
	case bytes.Contains(b, olePPT):
		return PPT
	case bytes.Contains(b, oleMSI):
		return MSI
	}
	return OLE
}

func tarV7(b []byte) bool {
	if len(b) < 512 || b[0] == 0 {
		return false
	}
	var want, sum int64
	digits := 0
	for _, c := range b[148:156] {
		if c >= '0' && c <= '7' {
			want = want*8 + int64(c-'0')
			digits++
		} else if (c == ' ' || c == 0) && digits > 0 {
			break
		} else if c != ' ' && c != 0 {
			return false
		}
	}
	if digits == 0 {
		return false
	}
	for i, c := range b[:512] {
		if i >= 148 && i < 156 {
			c = ' '
		}
		sum += int64(c)
	}
	return sum == want
}

// htmlStarts open an HTML document (libmagic's list, roughly); a comment
// only with an <html> tag after it.
var htmlStarts = []string{"<!doctype html", "<html", "<head", "<body", "<script", "<iframe", "<title", "<meta",
	"<style", "<table", "<a href", "<div", "<h1", "<form", "<img", "<frameset", "<br", "<p>", "<!--"}

// textType: scripts, markup, text, or data.
func textType(b []byte) Type {
	if has(b, 0, "#!") {
		return scriptType(b)
	}
	bom := has(b, 0, "\xef\xbb\xbf")
	s := b
	if bom {
		s = s[3:]
	}
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t' || s[0] == '\r' || s[0] == '\n') {
		s = s[1:]
	}
	if !isText(b) {
		return Data
	}
	if hasFold(s, "<?xml") {
		if containsFold(s, "<html") {
			return HTML
		}
		return XML
	}
	for _, h := range htmlStarts {
		if hasFold(s, h) {
			if h == "<!--" && !containsFold(s, "<html") {
				continue
			}
			return HTML
		}
	}
	switch {
	case bom:
		return UTF8BOM
	case isASCII(b):
		return ASCII
	}
	return UTF8
}

func scriptType(b []byte) Type {
	line := b[2:]
	if i := bytes.IndexByte(line, '\n'); i >= 0 {
		line = line[:i]
	}
	line = bytes.TrimSpace(line)
	prog := line
	if i := bytes.IndexAny(prog, " \t"); i >= 0 {
		prog = prog[:i]
	}
	if i := bytes.LastIndexByte(prog, '/'); i >= 0 {
		prog = prog[i+1:]
	}
	if string(prog) == "env" { // #!/usr/bin/env [-S] python3
		rest := bytes.TrimSpace(line[bytes.IndexAny(line, " \t")+1:])
		for bytes.HasPrefix(rest, []byte("-")) {
			i := bytes.IndexAny(rest, " \t")
			if i < 0 {
				rest = nil
				break
			}
			rest = bytes.TrimSpace(rest[i:])
		}
		prog = rest
		if i := bytes.IndexAny(prog, " \t"); i >= 0 {
			prog = prog[:i]
		}
	}
	for _, s := range scripts {
		if string(prog) == s.prog {
			return s.t
		}
	}
	// python3.11, perl5.36: the name before the version.
	for _, s := range scripts {
		if len(prog) > len(s.prog) && string(prog[:len(s.prog)]) == s.prog && (prog[len(s.prog)] == '.' || prog[len(s.prog)] >= '0' && prog[len(s.prog)] <= '9') {
			return s.t
		}
	}
	return Script
}

// isText: no control bytes but whitespace, ESC and form feed; valid UTF-8
// except for a sequence cut at the end of the head.
func isText(b []byte) bool {
	for _, c := range b {
		if c < 0x20 && c != '\t' && c != '\n' && c != '\r' && c != '\f' && c != 0x1b || c == 0x7f {
			return false
		}
	}
	if utf8.Valid(b) {
		return true
	}
	// Allow a rune cut by the head's end.
	for cut := 1; cut <= 3 && cut < len(b); cut++ {
		if utf8.Valid(b[:len(b)-cut]) && !utf8.FullRune(b[len(b)-cut:]) {
			return true
		}
	}
	return false
}

func isASCII(b []byte) bool {
	for _, c := range b {
		if c >= 0x80 {
			return false
		}
	}
	return true
}

func hasFold(b []byte, prefix string) bool {
	if len(b) < len(prefix) {
		return false
	}
	for i := 0; i < len(prefix); i++ {
		c := b[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != prefix[i] {
			return false
		}
	}
	return true
}

func containsFold(b []byte, s string) bool {
	for i := 0; i+len(s) <= len(b); i++ {
		if hasFold(b[i:], s) {
			return true
		}
	}
	return false
}
