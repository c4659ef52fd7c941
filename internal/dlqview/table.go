package dlqview

import (
	"bytes"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/kretry/kretry/dlq"
	"github.com/kretry/kretry/internal/safetext"
)

// DefaultWidth is the line width a Table fits when it is not told one.
const DefaultWidth = 80

// tableChunk is how many rows a Table holds before it writes them: column
// widths are those of each chunk, so a long listing streams.
const tableChunk = 500

// Table writes records as `kretry dlq ls` does: one line per record with its
// partition/offset, time (UTC, month-day and time of day), key, original
// topic/partition@offset, attempts, reason and error. The error is cut so
// that a line fits the width; in a narrow one the key and original columns
// are cut first so that at least 24 characters of error show.
type Table struct {
	w      io.Writer
	width  int
	rows   [][]string
	header bool
	err    error
}

var tableHeader = []string{"P/OFFSET", "TIME (UTC)", "KEY", "ORIGINAL", "ATT", "REASON", "ERROR"}

// Columns a narrow table shortens.
const (
	colKey      = 2
	colOriginal = 3
)

// NewTable returns a Table writing to w lines of at most width characters
// (DefaultWidth when width ≤ 0). Call Flush at the end.
func NewTable(w io.Writer, width int) *Table {
	if width <= 0 {
		width = DefaultWidth
	}
	return &Table{w: w, width: width}
}

// Add adds r to the table.
func (t *Table) Add(r *dlq.Record) error {
	orig := "-"
	if r.Fields()&dlq.FieldOriginal != 0 {
		orig = fmt.Sprintf("%s/%d@%d", safetext.Text(r.Meta.OriginalTopic), r.Meta.OriginalPartition, r.Meta.OriginalOffset)
	}
	attempts := "-"
	if r.Fields()&dlq.FieldAttempts != 0 {
		attempts = strconv.Itoa(r.Meta.Attempts)
	}
	errText := r.ErrorText()
	if r.MetaErr != nil && r.Fields()&dlq.FieldError != 0 {
		errText = fmt.Sprintf("%s [metadata: %v]", errText, r.MetaErr)
	}
	errText = safetext.Text(strings.Join(strings.Fields(errText), " "))
	if errText == "" {
		errText = "-"
	}
	t.rows = append(t.rows, []string{
		fmt.Sprintf("%d/%d", r.Partition, r.Offset),
		r.Timestamp.UTC().Format("01-02 15:04:05"),
		cut(safetext.Key(r.Key), 24),
		cutKeepSuffix(orig, 40),
		attempts,
		safetext.Text(string(r.Reason)),
		errText,
	})
	if len(t.rows) >= tableChunk {
		return t.Flush()
	}
	return t.err
}

// Flush writes the rows added since the last Flush.
func (t *Table) Flush() error {
	if t.err != nil || (len(t.rows) == 0 && t.header) {
		return t.err
	}
	rows := t.rows
	if !t.header {
		rows = append([][]string{tableHeader}, rows...)
		t.header = true
	}
	widths := make([]int, len(tableHeader))
	for _, row := range rows {
		for i, c := range row[:len(row)-1] {
			widths[i] = max(widths[i], utf8.RuneCountInString(c))
		}
	}
	// Fit the width: the error gets what is left, at least errMin; when
	// that is not enough, the original and the key columns give way first.
	const errMin, origMin, keyMin = 24, 16, 8
	fixed := 0
	for _, w := range widths[:len(widths)-1] {
		fixed += w + 2
	}
	if short := errMin - (t.width - fixed); short > 0 {
		give := min(short, max(widths[colOriginal]-origMin, 0))
		widths[colOriginal] -= give
		short -= give
		give = min(short, max(widths[colKey]-keyMin, 0))
		widths[colKey] -= give
		fixed -= short
	}
	fixed = 0
	for _, w := range widths[:len(widths)-1] {
		fixed += w + 2
	}
	errWidth := max(t.width-fixed, 10)
	var b bytes.Buffer
	for _, row := range rows {
		for i, c := range row[:len(row)-1] {
			if i == colOriginal {
				c = cutKeepSuffix(c, widths[i])
			} else {
				c = cut(c, widths[i])
			}
			b.WriteString(c)
			b.WriteString(strings.Repeat(" ", widths[i]-utf8.RuneCountInString(c)+2))
		}
		b.WriteString(cut(row[len(row)-1], errWidth))
		b.WriteByte('\n')
	}
	t.rows = t.rows[:0]
	_, t.err = t.w.Write(b.Bytes())
	return t.err
}

// WriteTable writes recs as `kretry dlq ls` does, in lines of at most width
// characters (DefaultWidth when width ≤ 0).
func WriteTable(w io.Writer, recs []*dlq.Record, width int) error {
	t := NewTable(w, width)
	for _, r := range recs {
		if err := t.Add(r); err != nil {
			return err
		}
	}
	return t.Flush()
}

// cut shortens s to n characters, ending it with … when cut.
func cut(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	if n <= 1 {
		return "…"
	}
	return string([]rune(s)[:n-1]) + "…"
}

// cutKeepSuffix shortens topic/partition@offset to n characters in the
// topic name, so that the partition and offset stay whole.
func cutKeepSuffix(s string, n int) string {
	i := strings.LastIndexByte(s, '/')
	if utf8.RuneCountInString(s) <= n || i < 0 {
		return cut(s, n)
	}
	suffix := s[i:]
	keep := n - utf8.RuneCountInString(suffix) - 1
	if keep < 1 {
		return cut(s, n)
	}
	return string([]rune(s[:i])[:keep]) + "…" + suffix
}
