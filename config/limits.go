package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/dustin/go-humanize"
	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
	"github.com/goccy/go-yaml/scanner"
	"github.com/goccy/go-yaml/token"
)

// Bounds on a config file, checked before it is parsed so that any input is
// accepted or refused quickly and in little memory: the YAML parser's time
// grows with the square of a mapping's keys, and its memory with the
// nesting. A real kretry.yaml is far inside them (hundreds of topics fit).
const (
	// MaxFileSize is the largest config file Load and Parse read: 256 KiB.
	MaxFileSize = 256 << 10
	// MaxKeys is the most mapping keys a config file may have.
	MaxKeys = 2000
	// MaxTokens is the most YAML tokens (keys, values, list entries,
	// brackets; comments not counted) a config file may have.
	MaxTokens = 10000
	// MaxDepth is the deepest nesting of lists and mappings allowed; a
	// kretry.yaml needs 5.
	MaxDepth = 32
	// MaxExpanded is the most YAML nodes a config file may have with its
	// aliases expanded: an alias is read as a copy of its anchor's value.
	MaxExpanded = 20000
	// MaxLineSize is the longest line allowed, in bytes: 16 KiB.
	MaxLineSize = 16 << 10
	// MaxValueSize is the longest key or value allowed, in bytes.
	MaxValueSize = 4096
	// MaxPEMFileSize is the largest TLS file (tls.ca_file, tls.cert_file,
	// tls.key_file) ClientOpts reads: 1 MiB.
	MaxPEMFileSize = 1 << 20
)

// readBounded reads the file at path, refusing one that is not a regular
// file (a device such as /dev/zero, a directory, a FIFO) or is larger than
// limit, without reading more than limit+1 bytes.
func readBounded(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, &boundError{fmt.Sprintf("is not a regular file (it is %s)", fileKind(st.Mode()))}
	}
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, &boundError{"is larger than " + humanize.IBytes(uint64(limit))}
	}
	return data, nil
}

// boundError is a file refused by readBounded; its message follows the
// file's name.
type boundError struct{ msg string }

func (e *boundError) Error() string { return e.msg }

func fileKind(m os.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&os.ModeCharDevice != 0, m&os.ModeDevice != 0:
		return "a device"
	case m&os.ModeNamedPipe != 0:
		return "a named pipe"
	case m&os.ModeSocket != 0:
		return "a socket"
	}
	return "not a plain file"
}

// utf8BOM is the byte order mark some editors put at the start of a file.
var utf8BOM = []byte{0xEF, 0xBB, 0xBF}

// parseYAML checks data against the bounds above and parses it. A problem is
// a *FieldError with the line and, for a syntax error, what is wrong in
// words.
func parseYAML(src string, data []byte) (*ast.File, error) {
	fail := func(line int, format string, args ...any) (*ast.File, error) {
		return nil, &FieldError{Source: src, Line: line, Problem: fmt.Sprintf(format, args...)}
	}
	if len(data) > MaxFileSize {
		return fail(0, "the file is %s, more than the %s a kretry config may have: is it the right file?",
			humanize.IBytes(uint64(len(data))), humanize.IBytes(MaxFileSize))
	}
	data = bytes.TrimPrefix(data, utf8BOM)
	// The scanner returns a line's tokens at once: bound a line before it
	// makes 200 bytes of token of each byte of "[[[[…".
	for line, rest := 1, data; len(rest) > 0; line++ {
		n := bytes.IndexByte(rest, '\n')
		if n < 0 {
			n = len(rest)
		}
		if n > MaxLineSize {
			return fail(line, "a line of %s, longer than the %s a line may have: break it into lines (a [list] or {mapping} may span lines)",
				humanize.IBytes(uint64(n)), humanize.IBytes(MaxLineSize))
		}
		rest = rest[min(n+1, len(rest)):]
	}

	if line, what := flowBomb(data); line > 0 {
		return fail(line, "%s: a kretry config needs far fewer; is it the right file?", what)
	}

	var s scanner.Scanner
	s.Init(string(data))
	var tokens token.Tokens
	var blocks []int // columns of the open block collections, outermost first
	flow, count, keys := 0, 0, 0
	for {
		sub, err := s.Scan()
		if err == io.EOF {
			break
		}
		for _, tk := range sub {
			line := tk.Position.Line
			if tk.Type == token.CommentType {
				continue
			}
			if count++; count > MaxTokens {
				return fail(line, "too many values: a kretry config has at most %d keys, values and list entries; is it the right file?", MaxTokens)
			}
			if len(tk.Value) > MaxValueSize {
				return fail(line, "a value of %s: keys and values are at most %d bytes", humanize.IBytes(uint64(len(tk.Value))), MaxValueSize)
			}
			open := func(column int) bool { // a block collection starts at column
				for len(blocks) > 0 && blocks[len(blocks)-1] >= column {
					blocks = blocks[:len(blocks)-1]
				}
				blocks = append(blocks, column)
				return len(blocks)+flow <= MaxDepth
			}
			deep := false
			switch tk.Type {
			case token.SequenceStartType, token.MappingStartType:
				flow++
				deep = len(blocks)+flow > MaxDepth
			case token.SequenceEndType, token.MappingEndType:
				flow = max(flow-1, 0)
			case token.SequenceEntryType:
				if flow == 0 {
					deep = !open(tk.Position.Column)
				}
			case token.MappingValueType:
				if keys++; keys > MaxKeys {
					return fail(line, "too many keys: a kretry config has at most %d; is it the right file?", MaxKeys)
				}
				if flow == 0 {
					column := tk.Position.Column
					if tk.Prev != nil && tk.Prev.Position.Line == line {
						column = tk.Prev.Position.Column
					}
					deep = !open(column)
				}
			}
			if deep {
				return fail(line, "nested more than %d levels deep: a kretry config needs 5; check the brackets and the indentation", MaxDepth)
			}
		}
		tokens.Add(sub...)
		if err != nil {
			break // an invalid token, reported by Parse
		}
	}
	file, err := parser.Parse(tokens, 0)
	if err != nil {
		line, msg := 0, err.Error()
		var ye yaml.Error
		if errors.As(err, &ye) {
			msg = ye.GetMessage()
			if tk := ye.GetToken(); tk != nil && tk.Position != nil {
				line = tk.Position.Line
				if l, words := explain(msg, tk); words != "" {
					return fail(l, "%s (YAML: %s)", words, cleanMessage(msg))
				}
			}
		}
		return fail(line, "invalid YAML: %s: check the indentation (spaces only, the keys of one mapping in one column) and the quotes and brackets here", cleanMessage(msg))
	}
	return file, nil
}

// Bounds on the flow indicators of a file, which the YAML scanner turns
// into tokens a whole [list] or {mapping} at a time, however many lines it
// spans: 200,000 "[" made 59 MB of tokens before the token count could stop
// them.
const (
	maxFlowOpen   = 2000  // "[" and "{"
	maxFlowCommas = 10000 // ","
)

// flowBomb counts the "[", "{" and "," of data outside comments and quoted
// text, and returns the line where one of them passes its bound and what
// passed it; 0 when none does. It reads bytes, not YAML, and so may count a
// bracket inside a plain value: the bounds are far above what a real file
// has.
func flowBomb(data []byte) (int, string) {
	line, opens, commas := 1, 0, 0
	var quote byte
	prev := byte('\n') // the byte before i outside a quote
	for i := 0; i < len(data); i++ {
		c := data[i]
		if c == '\n' {
			line++
		}
		if quote != 0 {
			switch {
			case quote == '"' && c == '\\':
				i++ // an escaped character
				if i < len(data) && data[i] == '\n' {
					line++
				}
			case c == quote && quote == '\'' && i+1 < len(data) && data[i+1] == '\'':
				i++ // '' inside '...'
			case c == quote:
				quote, prev = 0, c
			}
			continue
		}
		atStart := prev == '\n' || prev == ' ' || prev == '\t' || prev == '[' || prev == '{' || prev == ',' || prev == ':'
		switch {
		case c == '#' && (prev == '\n' || prev == ' ' || prev == '\t'):
			for i < len(data) && data[i] != '\n' {
				i++
			}
			if i < len(data) {
				line++
			}
			prev = '\n'
			continue
		case (c == '"' || c == '\'') && atStart:
			quote = c
		case c == '[' || c == '{':
			if opens++; opens > maxFlowOpen {
				return line, fmt.Sprintf("more than %d \"[\" and \"{\"", maxFlowOpen)
			}
		case c == ',':
			if commas++; commas > maxFlowCommas {
				return line, fmt.Sprintf("more than %d \",\"", maxFlowCommas)
			}
		}
		prev = c
	}
	return 0, ""
}

// explain says in words what a YAML syntax error at tk most likely is, with
// the line to point at; "" when it does not know.
func explain(msg string, tk *token.Token) (int, string) {
	line := tk.Position.Line
	next, prev := tk.Next, tk.Prev
	switch {
	case strings.Contains(msg, "mapping value is not allowed in this context") && next != nil && next.Type == token.MappingValueType:
		// A plain value runs on to a ":" that YAML cannot take: the value
		// spans lines (a key indented under the key before it) or holds ": ".
		owner := ""
		if prev != nil && prev.Type == token.MappingValueType && prev.Prev != nil {
			owner = prev.Prev.Value
		}
		if next.Position.Line > line {
			lines := strings.Split(strings.TrimSpace(tk.Origin), "\n")
			key := strings.TrimSpace(lines[len(lines)-1])
			if owner == "" {
				return next.Position.Line, fmt.Sprintf("%s is indented deeper than the key above it, so YAML reads it as part of the value above: indent it like the other keys of its mapping", show(key))
			}
			return next.Position.Line, fmt.Sprintf("%s is indented deeper than %s (line %d, column %d), so YAML reads it as part of the value of %s: put %s in the same column as %s",
				show(key), show(owner), prev.Prev.Position.Line, prev.Prev.Position.Column, show(owner), show(key), show(owner))
		}
		if owner != "" {
			return line, fmt.Sprintf(`the value of %s holds ": ": quote the value, or put a key on a line of its own`, show(owner))
		}
		return line, `a value holds ": ": quote it, or put a key on a line of its own`
	case strings.Contains(msg, "value is not allowed in this context") && tk.Type == token.StringType && next != nil && next.Type == token.MappingValueType:
		// A key whose column lines up with no mapping above it.
		for p := prev; p != nil; p = p.Prev {
			if p.Type == token.MappingValueType && p.Prev != nil && p.Prev.Position.Line < line {
				k := p.Prev
				how := "deeper than"
				if tk.Position.Column < k.Position.Column {
					how = "less deep than"
				}
				return line, fmt.Sprintf("key %s (column %d) is indented %s %s (line %d, column %d) and lines up with no mapping above it: keys of one mapping start in the same column; indent %s like the keys it belongs with",
					show(tk.Value), tk.Position.Column, how, show(k.Value), k.Position.Line, k.Position.Column, show(tk.Value))
			}
		}
	case strings.Contains(msg, "']' must be specified"), strings.Contains(msg, "'}' must be specified"),
		strings.Contains(msg, "could not find flow"):
		open, close := token.SequenceStartType, token.SequenceEndType
		ch := "["
		if strings.Contains(msg, "'}'") || strings.Contains(msg, "mapping") {
			open, close, ch = token.MappingStartType, token.MappingEndType, "{"
		}
		depth := 0
		for p := prev; p != nil; p = p.Prev {
			switch p.Type {
			case close:
				depth++
			case open:
				if depth == 0 {
					return line, fmt.Sprintf(`the %q opened on line %d is not closed before this line: close it, or separate its items with ","`, ch, p.Position.Line)
				}
				depth--
			}
		}
	case strings.Contains(msg, "already defined at") && strings.HasPrefix(msg, "mapping key "):
		first := ""
		if i := strings.LastIndex(msg, "already defined at ["); i >= 0 {
			if l, _, ok := strings.Cut(msg[i+len("already defined at ["):], ":"); ok {
				first = " (first on line " + l + ")"
			}
		}
		return line, fmt.Sprintf("key %s is given twice in one mapping%s: keep one", show(tk.Value), first)
	case strings.Contains(msg, "cannot start any token") && strings.Contains(msg, "'\t'"):
		return line, "a tab: YAML indents with spaces only; replace the tabs with spaces"
	case strings.Contains(msg, "could not find end character of double-quoted text"):
		return line, `a value opens a "..." quote that is never closed: close it, or escape a " inside it as \"`
	case strings.Contains(msg, "could not find end character of single-quoted text"):
		return line, `a value opens a '...' quote that is never closed: close it, or write a ' inside it as ''`
	}
	return line, ""
}

// cleanMessage makes a message of the YAML library safe to print: control
// characters escaped, cut to 200 bytes.
func cleanMessage(msg string) string {
	var b strings.Builder
	for _, r := range msg {
		if b.Len() >= 200 {
			b.WriteString("…")
			break
		}
		if unicode.IsPrint(r) {
			b.WriteRune(r)
		} else {
			b.WriteString(strings.Trim(strconv.QuoteRune(r), "'"))
		}
	}
	return b.String()
}

// maxQuoted is how much of a bad value an error message shows quoted, and
// maxPlain how long a plain one (a file name) may be to be shown as it is.
const (
	maxQuoted = 128
	maxPlain  = 256
)

// quoteCut quotes s for an error message with Go escapes for every control
// and non-printable character, cut to maxQuoted bytes of s.
func quoteCut(s string) string {
	if len(s) <= maxQuoted {
		return strconv.Quote(s)
	}
	cut := maxQuoted
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%s… (%d bytes)", strconv.Quote(s[:cut]), len(s))
}

// show is how an error message shows a value or key from a file: as it is
// when it is short and plain (5s, orders.retry-5s), else quoted and cut
// (quoteCut), so that no control character or mass of bytes from a bad
// file reaches a terminal or a log.
func show(s string) string {
	if s == "" || len(s) > maxPlain {
		return quoteCut(s)
	}
	for _, r := range s {
		if !unicode.IsGraphic(r) || unicode.IsSpace(r) || r == '"' || r == '\\' || r == utf8.RuneError {
			return quoteCut(s)
		}
	}
	return s
}
