package dlq

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Text returns s safe to print on a terminal or in a log line: every control
// character (ESC, \r, \n, \t, DEL, the C1 controls), every format character
// (the bidi overrides that reorder what follows) and every byte that is not
// UTF-8 is written as a Go escape (\x1b, \r, \u202e, \xff); the rest is
// kept. Header values read from a DLQ record are printed through it, so
// that a record cannot clear the operator's screen or forge table rows.
func Text(s string) string { return escape(s, false) }

// textLines is Text that keeps newlines: for a record's value shown over
// several lines.
func textLines(s string) string { return escape(s, true) }

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
			b.WriteString(hexString([]byte{s[i]}))
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
