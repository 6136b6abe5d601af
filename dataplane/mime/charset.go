package mime

//go:generate sh -c "python3 gen_jis0208.py > jis0208.go"

import (
	"bytes"
	"io"
	"strings"
	"unicode/utf8"
)

// Charsets decoded without golang.org/x/text (not a dependency of this module):
// utf-8, us-ascii, iso-8859-1, iso-8859-15, windows-1252, iso-2022-jp (with
// JIS X 0201 Roman/katakana and NEC row 13, as mail clients send it),
// shift_jis/cp932 and euc-jp. Any other charset keeps ASCII and turns every other
// byte into U+FFFD: the text stays valid UTF-8 and never fails to decode.

// cp1252 maps 0x80-0x9F of windows-1252; 0 = undefined.
var cp1252 = [32]rune{
	0x20AC, 0, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160, 0x2039, 0x0152, 0, 0x017D, 0,
	0, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0, 0x017E, 0x0178,
}

func normCharset(cs string) string {
	cs = strings.ToLower(strings.TrimSpace(cs))
	cs = strings.Trim(cs, `"`)
	switch cs {
	case "utf-8", "utf8":
		return "utf-8"
	case "us-ascii", "ascii", "ansi_x3.4-1968", "":
		return "us-ascii"
	case "iso-8859-1", "iso8859-1", "latin1", "l1", "iso_8859-1":
		return "iso-8859-1"
	case "iso-8859-15", "iso8859-15", "latin-9", "latin9":
		return "iso-8859-15"
	case "windows-1252", "cp1252", "x-cp1252":
		return "windows-1252"
	case "iso-2022-jp", "csiso2022jp", "iso-2022-jp-1", "iso-2022-jp-2", "iso-2022-jp-3", "cp50220", "cp50221", "cp50222":
		return "iso-2022-jp"
	case "shift_jis", "shift-jis", "sjis", "x-sjis", "cp932", "windows-31j", "ms_kanji", "csshiftjis":
		return "shift_jis"
	case "euc-jp", "eucjp", "x-euc-jp", "cseucpkdfmtjapanese":
		return "euc-jp"
	}
	return cs
}

// toUTF8 appends b decoded from charset cs to dst. It never fails: unmapped bytes
// become U+FFFD.
func toUTF8(dst []byte, cs string, b []byte) []byte {
	switch normCharset(cs) {
	case "utf-8", "us-ascii":
		return appendValid(dst, b)
	case "iso-8859-1":
		for _, c := range b {
			dst = utf8.AppendRune(dst, rune(c))
		}
		return dst
	case "iso-8859-15":
		for _, c := range b {
			r := rune(c)
			switch c {
			case 0xA4:
				r = 0x20AC
			case 0xA6:
				r = 0x160
			case 0xA8:
				r = 0x161
			case 0xB4:
				r = 0x17D
			case 0xB8:
				r = 0x17E
			case 0xBC:
				r = 0x152
			case 0xBD:
				r = 0x153
			case 0xBE:
				r = 0x178
			}
			dst = utf8.AppendRune(dst, r)
		}
		return dst
	case "windows-1252":
		for _, c := range b {
			r := rune(c)
			if c >= 0x80 && c < 0xA0 {
				if r = cp1252[c-0x80]; r == 0 {
					r = utf8.RuneError
				}
			}
			dst = utf8.AppendRune(dst, r)
		}
		return dst
	case "iso-2022-jp":
		return iso2022jp(dst, b)
	case "shift_jis":
		return shiftJIS(dst, b)
	case "euc-jp":
		return eucJP(dst, b)
	}
	for _, c := range b {
		if c < 0x80 {
			dst = append(dst, c)
		} else {
			dst = utf8.AppendRune(dst, utf8.RuneError)
		}
	}
	return dst
}

func appendValid(dst, b []byte) []byte {
	if utf8.Valid(b) {
		return append(dst, b...)
	}
	return append(dst, bytes.ToValidUTF8(b, []byte("\uFFFD"))...)
}

func jis(dst []byte, r, c byte) []byte {
	if r < 0x21 || r > 0x7E || c < 0x21 || c > 0x7E {
		return utf8.AppendRune(dst, utf8.RuneError)
	}
	v := jis0208[int(r-0x21)*94+int(c-0x21)]
	if v == 0 {
		return utf8.AppendRune(dst, utf8.RuneError)
	}
	return utf8.AppendRune(dst, rune(v))
}

// iso2022jp decodes RFC 1468 ISO-2022-JP: ESC ( B / ESC ( J (ASCII / JIS Roman),
// ESC $ @ / ESC $ B (JIS X 0208), ESC ( I (half-width katakana, a common extension).
func iso2022jp(dst, b []byte) []byte {
	const (
		ascii = iota
		kanji
		kana
	)
	mode := ascii
	for i := 0; i < len(b); i++ {
		c := b[i]
		if c == 0x1B && i+2 < len(b) {
			switch {
			case b[i+1] == '(' && (b[i+2] == 'B' || b[i+2] == 'J'):
				mode = ascii
			case b[i+1] == '$' && (b[i+2] == 'B' || b[i+2] == '@'):
				mode = kanji
			case b[i+1] == '(' && b[i+2] == 'I':
				mode = kana
			default:
				dst = utf8.AppendRune(dst, utf8.RuneError)
				continue
			}
			i += 2
			continue
		}
		switch {
		case c == '\r' || c == '\n':
			mode = ascii
			dst = append(dst, c)
		case mode == kanji && i+1 < len(b):
			dst = jis(dst, c, b[i+1])
			i++
		case mode == kana && c >= 0x21 && c <= 0x5F:
			dst = utf8.AppendRune(dst, 0xFF61+rune(c-0x21))
		case c < 0x80 && mode != kanji:
			dst = append(dst, c)
		default:
			dst = utf8.AppendRune(dst, utf8.RuneError)
		}
	}
	return dst
}

func shiftJIS(dst, b []byte) []byte {
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch {
		case c < 0x80:
			dst = append(dst, c)
		case c >= 0xA1 && c <= 0xDF:
			dst = utf8.AppendRune(dst, 0xFF61+rune(c-0xA1))
		case (c >= 0x81 && c <= 0x9F || c >= 0xE0 && c <= 0xEF) && i+1 < len(b):
			c2 := b[i+1]
			i++
			if c2 < 0x40 || c2 == 0x7F || c2 > 0xFC {
				dst = utf8.AppendRune(dst, utf8.RuneError)
				continue
			}
			r := int(c)
			if r >= 0xE0 {
				r -= 0x40
			}
			r = (r-0x81)*2 + 0x21
			var cell int
			if c2 >= 0x9F {
				r++
				cell = int(c2) - 0x7E
			} else {
				cell = int(c2) - 0x1F
				if c2 > 0x7F {
					cell--
				}
			}
			dst = jis(dst, byte(r), byte(cell))
		default:
			dst = utf8.AppendRune(dst, utf8.RuneError)
		}
	}
	return dst
}

func eucJP(dst, b []byte) []byte {
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch {
		case c < 0x80:
			dst = append(dst, c)
		case c == 0x8E && i+1 < len(b):
			dst = utf8.AppendRune(dst, 0xFF61+rune(b[i+1])-0xA1)
			i++
		case c == 0x8F && i+2 < len(b): // JIS X 0212: not mapped
			dst = utf8.AppendRune(dst, utf8.RuneError)
			i += 2
		case c >= 0xA1 && c <= 0xFE && i+1 < len(b):
			dst = jis(dst, c-0x80, b[i+1]-0x80)
			i++
		default:
			dst = utf8.AppendRune(dst, utf8.RuneError)
		}
	}
	return dst
}

// charsetReader serves mime.WordDecoder: every charset converts (see toUTF8).
func charsetReader(cs string, r io.Reader) (io.Reader, error) {
	b, err := io.ReadAll(io.LimitReader(r, 64<<10))
	if err != nil {
		return nil, err
	}
	return bytes.NewReader(toUTF8(nil, cs, b)), nil
}
