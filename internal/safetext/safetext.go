// Package safetext makes text read from Kafka records (keys, values, header
// names and values) safe to print on a terminal or in a log line: control
// and format characters and bytes that are not UTF-8 are written as
// escapes, so that a record cannot clear the operator's screen, colour it,
// or forge table rows.
package safetext

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// Text returns s safe to print on a terminal or in a log line: every control
// character (ESC, \r, \n, \t, DEL, the C1 controls), every format character
// (the bidi overrides that reorder what follows) and every byte that is not
// UTF-8 is written as a Go escape (\x1b, \r, \u202e, \xff); the rest is
// kept.
func Text(s string) string { return escape(s, false) }

// Lines is Text that keeps newlines: for a value shown over several lines.
func Lines(s string) string { return escape(s, true) }

func escape(s string, keepNewlines bool) string {
	i := 0
	for i < len(s) {
		r, n := utf8.DecodeRuneInString(s[i:])
		if !shown(r, n, keepNewlines) {
			break
		}
		i += n
	}
	if i == len(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	b.WriteString(s[:i])
	for i < len(s) {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case shown(r, n, keepNewlines):
			b.WriteString(s[i : i+n])
		case r == utf8.RuneError && n == 1:
			b.WriteString(`\x`)
			b.WriteString(Hex([]byte{s[i]}))
		default:
			q := strconv.QuoteRune(r) // '\x1b', '\r', '\u202e'
			b.WriteString(q[1 : len(q)-1])
		}
		i += n
	}
	return b.String()
}

func shown(r rune, n int, keepNewlines bool) bool {
	switch {
	case r == utf8.RuneError && n == 1:
		return false
	case r < utf8.RuneSelf:
		return r >= 0x20 && r < 0x7f || keepNewlines && r == '\n'
	}
	return !unicode.IsControl(r) && !unicode.Is(unicode.Cf, r) && r != '\u2028' && r != '\u2029'
}

// Printable reports whether b is UTF-8 text without control characters other
// than tab and newline, so it can be shown as is.
func Printable(b []byte) bool {
	if !utf8.Valid(b) {
		return false
	}
	for _, c := range string(b) {
		if c == utf8.RuneError || (unicode.IsControl(c) && c != '\n' && c != '\t' && c != '\r') {
			return false
		}
	}
	return true
}

// Key shows a record key on one line: "-" for none, "" quoted for an empty
// one, the text when printable without control or format characters, else
// 0x and hex.
func Key(key []byte) string {
	switch {
	case key == nil:
		return "-"
	case len(key) == 0:
		return `""`
	case Printable(key) && Text(string(key)) == string(key):
		return string(key)
	default:
		return "0x" + Hex(key)
	}
}

// Hex writes b as lower-case hex digits.
func Hex(b []byte) string {
	const digits = "0123456789abcdef"
	var sb strings.Builder
	sb.Grow(2 * len(b))
	for _, c := range b {
		sb.WriteByte(digits[c>>4])
		sb.WriteByte(digits[c&0xf])
	}
	return sb.String()
}

// JSON returns the JSON text b with every control or format character
// that encoding/json leaves as it is (DEL, the C1 controls, bidi overrides)
// written as a \u escape, so that JSON printed to a terminal cannot drive
// it. Outside strings JSON is ASCII: only string contents change.
func JSON(b []byte) []byte {
	s := string(b)
	if escape(s, true) == s {
		return b
	}
	out := make([]byte, 0, len(b)+16)
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if shown(r, n, true) || r < 0x7f { // encoding/json escaped the ASCII controls
			out = append(out, s[i:i+n]...)
		} else if r1, r2 := utf16.EncodeRune(r); r1 != utf8.RuneError {
			out = fmt.Appendf(out, `\u%04x\u%04x`, r1, r2)
		} else {
			out = fmt.Appendf(out, `\u%04x`, r) // encoding/json writes no invalid UTF-8
		}
		i += n
	}
	return out
}

// quotedLen is how many bytes of a value Quoted shows.
const quotedLen = 64

// Quoted returns v as a log line or an error may show a value read from a
// record: cut at 64 bytes on a UTF-8 boundary (marked with "..."), in
// double quotes, with every control character and invalid byte escaped, so
// that a forged value cannot rewrite an operator's terminal or forge a line.
func Quoted(v string) string {
	if len(v) > quotedLen {
		return strconv.Quote(CutUTF8(v, quotedLen)) + "..."
	}
	return strconv.Quote(v)
}

// CutUTF8 returns the longest prefix of s of at most n bytes that does not
// split a UTF-8 sequence.
func CutUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
