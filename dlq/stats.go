package dlq

import (
	"cmp"
	"context"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// Stats counts DLQ records. The zero Stats is ready to use.
type Stats struct {
	Total           int
	First, Last     time.Time      // oldest and newest record timestamps counted
	ByReason        map[string]int // Record.Reason
	ByOriginalTopic map[string]int // kretry-original-topic; "" when the record has none
	ByError         map[string]int // the error with ids and numbers masked (see maskError: "order <n> not found")
	ByHour          map[time.Time]int
}

// Add counts r.
func (s *Stats) Add(r *Record) {
	if s.ByReason == nil {
		s.ByReason = map[string]int{}
		s.ByOriginalTopic = map[string]int{}
		s.ByError = map[string]int{}
		s.ByHour = map[time.Time]int{}
	}
	s.Total++
	ts := r.Timestamp.UTC()
	if s.First.IsZero() || ts.Before(s.First) {
		s.First = ts
	}
	if ts.After(s.Last) {
		s.Last = ts
	}
	s.ByReason[string(r.Reason)]++
	s.ByOriginalTopic[r.Meta.OriginalTopic]++
	s.ByError[maskError(r.ErrorText())]++
	s.ByHour[ts.Truncate(time.Hour)]++
}

// Stats counts the records f selects.
func (r *Reader) Stats(ctx context.Context, f Filter) (*Stats, error) {
	var s Stats
	err := r.Read(ctx, f, func(rec *Record) error { s.Add(rec); return nil })
	if err != nil {
		return nil, err
	}
	return &s, nil
}

// Count is one row of a breakdown.
type Count struct {
	Value string `json:"value"`
	Count int    `json:"count"`
}

// HourCount is the number of records dead-lettered in the hour that starts at Hour.
type HourCount struct {
	Hour  time.Time `json:"hour"`
	Count int       `json:"count"`
}

// Reasons returns the counts by reason, most first.
func (s *Stats) Reasons() []Count { return sorted(s.ByReason) }

// OriginalTopics returns the counts by original topic, most first.
func (s *Stats) OriginalTopics() []Count { return sorted(s.ByOriginalTopic) }

// Errors returns the counts by masked error, most first.
func (s *Stats) Errors() []Count { return sorted(s.ByError) }

// Hours returns the counts by hour, oldest first.
func (s *Stats) Hours() []HourCount {
	out := make([]HourCount, 0, len(s.ByHour))
	for h, n := range s.ByHour {
		out = append(out, HourCount{h, n})
	}
	slices.SortFunc(out, func(a, b HourCount) int { return a.Hour.Compare(b.Hour) })
	return out
}

func sorted(m map[string]int) []Count {
	out := make([]Count, 0, len(m))
	for v, n := range m {
		out = append(out, Count{v, n})
	}
	slices.SortFunc(out, func(a, b Count) int {
		return cmp.Or(cmp.Compare(b.Count, a.Count), cmp.Compare(a.Value, b.Value))
	})
	return out
}

var (
	uuidRE   = regexp.MustCompile(`(?i)\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b`)
	hex0xRE  = regexp.MustCompile(`(?i)\b0x[0-9a-f]+\b`)
	hexRE    = regexp.MustCompile(`(?i)\b[0-9a-f]{8,}\b`)
	numberRE = regexp.MustCompile(`\d+`)
	spaceRE  = regexp.MustCompile(`\s+`)
)

// maskedErrorLen is how many characters of a masked error are kept: errors
// that differ only after it group together.
const maskedErrorLen = 200

// maskError returns err with what differs between occurrences of the same
// error masked, so that they group together: UUIDs become <uuid>, hex ids
// (0x…, or 8 or more hex digits mixing digits and letters) <hex>, other runs of
// digits <n>; whitespace is collapsed and the result cut at 200 characters.
// An empty error is "".
func maskError(err string) string {
	s := uuidRE.ReplaceAllString(err, "<uuid>")
	s = hex0xRE.ReplaceAllString(s, "<hex>")
	s = hexRE.ReplaceAllStringFunc(s, func(m string) string {
		if strings.ContainsAny(m, "0123456789") && strings.Trim(m, "0123456789") != "" {
			return "<hex>"
		}
		return m // a word such as "deadbeefcafe", or a number masked below
	})
	s = numberRE.ReplaceAllString(s, "<n>")
	s = strings.TrimSpace(spaceRE.ReplaceAllString(s, " "))
	if utf8.RuneCountInString(s) > maskedErrorLen {
		s = string([]rune(s)[:maskedErrorLen]) + "…"
	}
	return s
}
