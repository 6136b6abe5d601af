package av

import (
	"fmt"
	"strconv"
	"strings"
)

// ytok is one token of a YARA source, for the literal gate.
type ytok struct {
	kind ykind
	val  string // text strings decoded; hex string bodies without comments
	line int
}

type ykind uint8

const (
	tPunct  ykind = iota
	tIdent        // keywords too
	tNum          // "12", "0x4D5A", "1.5", "2MB" (suffix dropped)
	tText         // "..."
	tHex          // { 4D 5A ?? } after "="
	tRegex        // /.../is
	tStrRef       // $a $a* $ #a @a !a
)

func (t ytok) is(s string) bool { return (t.kind == tPunct || t.kind == tIdent) && t.val == s }

// lexYara splits a YARA source into tokens, without comments.
func lexYara(src []byte) ([]ytok, error) {
	s := string(src)
	var toks []ytok
	line := 1
	emit := func(k ykind, v string) { toks = append(toks, ytok{kind: k, val: v, line: line}) }
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '\n':
			line++
			i++
		case c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v':
			i++
		case strings.HasPrefix(s[i:], "//"):
			j := strings.IndexByte(s[i:], '\n')
			if j < 0 {
				j = len(s) - i
			}
			i += j
		case strings.HasPrefix(s[i:], "/*"):
			j := strings.Index(s[i+2:], "*/")
			if j < 0 {
				return nil, fmt.Errorf("line %d: unterminated comment", line)
			}
			line += strings.Count(s[i:i+2+j], "\n")
			i += j + 4
		case c == '"':
			v, n, err := lexText(s[i:])
			if err != nil {
				return nil, fmt.Errorf("line %d: %v", line, err)
			}
			emit(tText, v)
			i += n
		case c == '/':
			j := i + 1
			for ; j < len(s) && s[j] != '/' && s[j] != '\n'; j++ {
				if s[j] == '\\' {
					j++
				}
			}
			if j >= len(s) || s[j] != '/' {
				return nil, fmt.Errorf("line %d: unterminated regular expression", line)
			}
			j++
			for j < len(s) && (s[j] == 'i' || s[j] == 's') {
				j++
			}
			emit(tRegex, s[i:j])
			i = j
		case c == '{' && len(toks) > 0 && toks[len(toks)-1].is("="):
			body, n, err := lexHex(s[i:])
			if err != nil {
				return nil, fmt.Errorf("line %d: %v", line, err)
			}
			emit(tHex, body)
			line += strings.Count(s[i:i+n], "\n")
			i += n
		case c == '!' && i+1 < len(s) && s[i+1] == '=':
			emit(tPunct, "!=")
			i += 2
		case c == '$' || c == '#' || c == '@' || c == '!':
			j := i + 1
			for j < len(s) && isIdent(s[j]) {
				j++
			}
			if c == '$' && j < len(s) && s[j] == '*' {
				j++
			}
			emit(tStrRef, s[i:j])
			i = j
		case '0' <= c && c <= '9':
			j := i
			for j < len(s) && (isIdent(s[j]) || s[j] == '.' && j+1 < len(s) && '0' <= s[j+1] && s[j+1] <= '9') {
				j++
			}
			v := strings.TrimSuffix(strings.TrimSuffix(s[i:j], "KB"), "MB")
			emit(tNum, v)
			i = j
		case isIdent(c):
			j := i
			for j < len(s) && isIdent(s[j]) {
				j++
			}
			emit(tIdent, s[i:j])
			i = j
		default:
			n := 1
			for _, op := range []string{"..", "==", "<=", ">=", "<<", ">>"} {
				if strings.HasPrefix(s[i:], op) {
					n = 2
					break
				}
			}
			emit(tPunct, s[i:i+n])
			i += n
		}
	}
	return toks, nil
}

// lexText decodes the text string at the start of s; it returns the
// bytes and the length of the token.
func lexText(s string) (string, int, error) {
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		switch c := s[i]; c {
		case '"':
			return b.String(), i + 1, nil
		case '\n':
			return "", 0, fmt.Errorf("unterminated string")
		case '\\':
			if i+1 >= len(s) {
				return "", 0, fmt.Errorf("unterminated string")
			}
			i++
			switch s[i] {
			case 'n':
				b.WriteByte('\n')
			case 't':
				b.WriteByte('\t')
			case 'r':
				b.WriteByte('\r')
			case '"', '\\':
				b.WriteByte(s[i])
			case 'x':
				if i+2 >= len(s) {
					return "", 0, fmt.Errorf("unterminated string")
				}
				v, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
				if err != nil {
					return "", 0, fmt.Errorf("bad escape \\x%s in a string", s[i+1:i+3])
				}
				b.WriteByte(byte(v))
				i += 2
			default:
				return "", 0, fmt.Errorf("unknown escape \\%c in a string", s[i])
			}
		default:
			b.WriteByte(c)
		}
	}
	return "", 0, fmt.Errorf("unterminated string")
}

// lexHex returns the body of the hex string at the start of s, comments
// removed, and the length of the token.
func lexHex(s string) (string, int, error) {
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		switch {
		case s[i] == '}':
			return b.String(), i + 1, nil
		case strings.HasPrefix(s[i:], "//"):
			j := strings.IndexByte(s[i:], '\n')
			if j < 0 {
				return "", 0, fmt.Errorf("unterminated hex string")
			}
			i += j
			b.WriteByte('\n')
		case strings.HasPrefix(s[i:], "/*"):
			j := strings.Index(s[i+2:], "*/")
			if j < 0 {
				return "", 0, fmt.Errorf("unterminated comment in a hex string")
			}
			b.WriteString(strings.Repeat("\n", strings.Count(s[i:i+2+j], "\n")))
			b.WriteByte(' ')
			i += j + 3
		default:
			b.WriteByte(s[i])
		}
	}
	return "", 0, fmt.Errorf("unterminated hex string")
}
