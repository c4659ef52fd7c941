package bench

import (
	"fmt"
	"io"
	"strings"
)

// Table is a Markdown table: a header row and rows of cells.
type Table struct {
	Header []string
	Rows   [][]string
}

// Add appends a row; cells are formatted with fmt's %v.
func (t *Table) Add(cells ...any) {
	row := make([]string, len(cells))
	for i, c := range cells {
		row[i] = fmt.Sprint(c)
	}
	t.Rows = append(t.Rows, row)
}

// Markdown renders t with columns padded to their widest cell, so that it reads
// as well in a terminal as on a rendered page.
func (t *Table) Markdown() string {
	width := make([]int, len(t.Header))
	for i, h := range t.Header {
		width[i] = len([]rune(h))
	}
	for _, r := range t.Rows {
		for i, c := range r {
			if i < len(width) && len([]rune(c)) > width[i] {
				width[i] = len([]rune(c))
			}
		}
	}
	var b strings.Builder
	line := func(cells []string) {
		b.WriteString("|")
		for i := range width {
			c := ""
			if i < len(cells) {
				c = cells[i]
			}
			b.WriteString(" " + c + strings.Repeat(" ", width[i]-len([]rune(c))) + " |")
		}
		b.WriteString("\n")
	}
	line(t.Header)
	sep := make([]string, len(width))
	for i, w := range width {
		sep[i] = strings.Repeat("-", w)
	}
	line(sep)
	for _, r := range t.Rows {
		line(r)
	}
	return b.String()
}

// Section is one titled part of a report: paragraphs of text, then an optional
// table, then optional notes.
type Section struct {
	Title string
	Text  []string
	Table *Table
	Notes []string
}

// Report is what `make bench` prints and writes to BENCHMARKS.md.
type Report struct {
	Title    string
	Preamble []string // lines under the title (machine, versions, command, date)
	Sections []Section
	Summary  []string // the machine-readable lines that end the output
}

// Markdown renders the whole report. The summary lines go last, in a code block.
func (r *Report) Markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "# %s\n\n", r.Title)
	for _, p := range r.Preamble {
		b.WriteString(p + "\n")
	}
	for _, s := range r.Sections {
		fmt.Fprintf(&b, "\n## %s\n\n", s.Title)
		for _, p := range s.Text {
			b.WriteString(p + "\n\n")
		}
		if s.Table != nil {
			b.WriteString(s.Table.Markdown())
			b.WriteString("\n")
		}
		for _, n := range s.Notes {
			b.WriteString(n + "\n\n")
		}
	}
	if len(r.Summary) > 0 {
		b.WriteString("\n## Summary\n\n```\n")
		for _, l := range r.Summary {
			b.WriteString(l + "\n")
		}
		b.WriteString("```\n")
	}
	return b.String()
}

// WriteSummary writes the summary lines alone, one per line, so that a script
// reading the output finds them as its last lines.
func (r *Report) WriteSummary(w io.Writer) error {
	for _, l := range r.Summary {
		if _, err := fmt.Fprintln(w, l); err != nil {
			return err
		}
	}
	return nil
}
