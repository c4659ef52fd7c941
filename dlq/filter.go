package dlq

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kretry/kretry/headers"
)

// ReasonUnknown is the reason of a DLQ record that carries no kretry-reason
// (written by something other than kretry's consumer); the others are
// headers' Reason constants.
const ReasonUnknown headers.Reason = "unknown"

// Reasons returns every reason a Filter accepts, in the order help text
// shows them: headers.Reasons and ReasonUnknown. A new slice on each call.
func Reasons() []headers.Reason { return append(headers.Reasons(), ReasonUnknown) }

// Filter selects DLQ records. Its zero value selects every record. All set
// fields must match (and); a list field matches when any of its values does.
type Filter struct {
	Since TimeBound // records with timestamp ≥ Since; zero: no lower bound
	Until TimeBound // records with timestamp < Until; zero: no upper bound

	Reasons       []headers.Reason // Reason is one of these (see Reasons)
	ErrorContains string           // the error text contains this, ignoring case
	Key           string           // the key is exactly these bytes (ParseKeyHex for a binary key)
	OriginalTopic string           // kretry-original-topic is exactly this
	FailedGroup   string           // kretry-group (the group whose handler failed it) is exactly this

	Partitions []int32     // DLQ partitions to read; nil: all
	Offsets    OffsetRange // DLQ offsets to read, in every selected partition

	// Limit stops a read after this many matching records; 0: no limit.
	// It is not part of the selection: a replay with a limit continues, when
	// run again, where the previous one stopped.
	Limit int
}

// TimeBound is a point in time, either absolute or a duration before the
// moment a read starts. The zero TimeBound is unset.
type TimeBound struct {
	At  time.Time     // absolute; used when Ago is 0
	Ago time.Duration // relative: now − Ago
}

// IsZero reports whether b is unset.
func (b TimeBound) IsZero() bool { return b.Ago == 0 && b.At.IsZero() }

// Resolve returns the time b stands for at now.
func (b TimeBound) Resolve(now time.Time) time.Time {
	if b.Ago != 0 {
		return now.Add(-b.Ago)
	}
	return b.At
}

// String gives b as ParseTimeBound accepts it.
func (b TimeBound) String() string {
	switch {
	case b.Ago != 0:
		if b.Ago%(24*time.Hour) == 0 {
			return strconv.FormatInt(int64(b.Ago/(24*time.Hour)), 10) + "d"
		}
		return b.Ago.String()
	case b.At.IsZero():
		return ""
	default:
		return b.At.UTC().Format(time.RFC3339Nano)
	}
}

// timeBoundHelp says what ParseTimeBound accepts.
const timeBoundHelp = "a time (2026-11-25T10:00:00Z, 2026-11-25T10:00, 2026-11-25 10:00, 2026-11-25; UTC unless a zone is given) or a duration ago (90s, 30m, 2h, 3d)"

var timeLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02T15:04:05",
	"2006-01-02T15:04",
	"2006-01-02 15:04:05",
	"2006-01-02 15:04",
	"2006-01-02",
}

// ParseTimeBound parses a --since or --until value: an RFC 3339 time, a date
// or date and time without zone (read as UTC), or a positive duration ago with
// the units of time.ParseDuration plus d for days.
func ParseTimeBound(s string) (TimeBound, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return TimeBound{}, fmt.Errorf("empty time: want %s", timeBoundHelp)
	}
	for _, layout := range timeLayouts {
		if t, err := time.ParseInLocation(layout, s, time.UTC); err == nil {
			return TimeBound{At: t}, nil
		}
	}
	if d, ok := parseAgo(s); ok {
		return TimeBound{Ago: d}, nil
	}
	return TimeBound{}, fmt.Errorf("%q is not a time: want %s", s, timeBoundHelp)
}

func parseAgo(s string) (time.Duration, bool) {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.ParseFloat(n, 64)
		if err != nil || days <= 0 || days > math.MaxInt64/float64(24*time.Hour) {
			return 0, false
		}
		return time.Duration(days * float64(24*time.Hour)), true
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, false
	}
	return d, true
}

// OffsetRange is an inclusive range of offsets. The zero OffsetRange is every
// offset.
type OffsetRange struct {
	From  int64 // first offset; 0: from the start
	To    int64 // last offset, included; read only when HasTo
	HasTo bool  // false: to the end of the partition
}

// IsZero reports whether r selects every offset.
func (r OffsetRange) IsZero() bool { return r.From == 0 && !r.HasTo }

// Contains reports whether o is in r.
func (r OffsetRange) Contains(o int64) bool {
	return o >= r.From && (!r.HasTo || o <= r.To)
}

// String gives r as ParseOffsets accepts it.
func (r OffsetRange) String() string {
	switch {
	case r.IsZero():
		return ""
	case !r.HasTo:
		return strconv.FormatInt(r.From, 10) + "-"
	case r.From == r.To:
		return strconv.FormatInt(r.From, 10)
	default:
		return strconv.FormatInt(r.From, 10) + "-" + strconv.FormatInt(r.To, 10)
	}
}

// offsetsHelp says what ParseOffsets accepts.
const offsetsHelp = "FROM-TO (both included, FROM ≤ TO), FROM- (to the end), -TO (from the start) or one OFFSET, with offsets ≥ 0"

// ParseOffsets parses an --offsets value: "5-9", "5-", "-9" or "5".
func ParseOffsets(s string) (OffsetRange, error) {
	bad := func() (OffsetRange, error) {
		return OffsetRange{}, fmt.Errorf("%q is not an offset range: want %s", s, offsetsHelp)
	}
	num := func(v string) (int64, bool) {
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		return n, err == nil && n >= 0
	}
	from, to, dash := strings.Cut(strings.TrimSpace(s), "-")
	switch {
	case !dash:
		n, ok := num(from)
		if !ok {
			return bad()
		}
		return OffsetRange{From: n, To: n, HasTo: true}, nil
	case strings.TrimSpace(from) == "" && strings.TrimSpace(to) == "":
		return bad()
	}
	var r OffsetRange
	if strings.TrimSpace(from) != "" {
		n, ok := num(from)
		if !ok {
			return bad()
		}
		r.From = n
	}
	if strings.TrimSpace(to) != "" {
		n, ok := num(to)
		if !ok {
			return bad()
		}
		r.To, r.HasTo = n, true
	}
	if r.HasTo && r.To < r.From {
		return OffsetRange{}, fmt.Errorf("%q is not an offset range: FROM %d is after TO %d; want %s", s, r.From, r.To, offsetsHelp)
	}
	return r, nil
}

// ParseKeyHex parses a --key-hex value: a key's bytes as hex digits, with or
// without the 0x that `kretry dlq ls` shows before a binary key.
func ParseKeyHex(s string) (string, error) {
	digits := strings.TrimPrefix(strings.TrimPrefix(strings.TrimSpace(s), "0x"), "0X")
	b, err := hex.DecodeString(digits)
	if err != nil || len(b) == 0 {
		return "", fmt.Errorf("%q is not a key in hex: want its bytes as pairs of hex digits, as dlq ls shows a binary key (0xff00)", s)
	}
	return string(b), nil
}

// ParseReason checks a --reason value against Reasons.
func ParseReason(s string) (headers.Reason, error) {
	r := headers.Reason(strings.ToLower(strings.TrimSpace(s)))
	all := Reasons()
	if slices.Contains(all, r) {
		return r, nil
	}
	names := make([]string, len(all))
	for i, r := range all {
		names[i] = string(r)
	}
	return "", fmt.Errorf("%q is not a reason: want one of %s", s, strings.Join(names, ", "))
}

// Validate checks f for values no record can match.
func (f Filter) Validate() error {
	for _, r := range f.Reasons {
		if _, err := ParseReason(string(r)); err != nil {
			return err
		}
	}
	for _, p := range f.Partitions {
		if p < 0 {
			return fmt.Errorf("partition %d is negative: want a partition number ≥ 0", p)
		}
	}
	if f.Offsets.From < 0 || (f.Offsets.HasTo && f.Offsets.To < f.Offsets.From) {
		return fmt.Errorf("offsets %d-%d are not a range: want %s", f.Offsets.From, f.Offsets.To, offsetsHelp)
	}
	if f.Since.Ago < 0 || f.Until.Ago < 0 {
		return errors.New("a duration ago must be positive")
	}
	if f.Limit < 0 {
		return fmt.Errorf("limit %d is negative: want 0 (no limit) or more", f.Limit)
	}
	return nil
}

// Selection returns what the filter selects within a partition, in a
// canonical text form: two filters with the same Selection select the same
// records of a partition. Limit and Partitions are left out: a replay keeps
// the Selection with its progress, which is per partition. Relative times keep
// their relative form, so the same command run twice is the same selection.
func (f Filter) Selection() string {
	var parts []string
	add := func(k, v string) {
		if v != "" {
			parts = append(parts, k+"="+strconv.Quote(v))
		}
	}
	add("since", f.Since.String())
	add("until", f.Until.String())
	rs := make([]string, len(f.Reasons))
	for i, r := range f.Reasons {
		rs[i] = strings.ToLower(strings.TrimSpace(string(r)))
	}
	slices.Sort(rs)
	add("reason", strings.Join(slices.Compact(rs), ","))
	add("error-contains", strings.ToLower(f.ErrorContains))
	add("key", f.Key)
	add("original-topic", f.OriginalTopic)
	add("failed-group", f.FailedGroup)
	add("offsets", f.Offsets.String())
	if len(parts) == 0 {
		return "all"
	}
	return strings.Join(parts, " ")
}

// selectionID is Selection cut to fit an offset commit's metadata.
func (f Filter) selectionID() string {
	s := f.Selection()
	if len(s) <= 200 {
		return s
	}
	sum := sha256.Sum256([]byte(s))
	return s[:120] + "… sha256:" + hex.EncodeToString(sum[:12])
}

// CheckAt checks what Validate cannot without a clock: that Since, resolved
// at now, is before Until.
func (f Filter) CheckAt(now time.Time) error {
	if f.Since.IsZero() || f.Until.IsZero() {
		return nil
	}
	if since, until := f.Since.Resolve(now), f.Until.Resolve(now); !since.Before(until) {
		return fmt.Errorf("since %s (%s) is not before until %s (%s): no record can match; swap them, or widen the window",
			f.Since, since.UTC().Format(time.RFC3339), f.Until, until.UTC().Format(time.RFC3339))
	}
	return nil
}

// compileChecked is compile after CheckAt.
func (f Filter) compileChecked(now time.Time) (matcher, error) {
	if err := f.CheckAt(now); err != nil {
		return matcher{}, err
	}
	return f.compile(now), nil
}

// matcher is a Filter resolved at the start of a read.
type matcher struct {
	f            Filter
	since, until time.Time
	reasons      map[headers.Reason]bool
	errContains  string
}

func (f Filter) compile(now time.Time) matcher {
	m := matcher{f: f, errContains: strings.ToLower(f.ErrorContains)}
	if !f.Since.IsZero() {
		m.since = f.Since.Resolve(now)
	}
	if !f.Until.IsZero() {
		m.until = f.Until.Resolve(now)
	}
	if len(f.Reasons) > 0 {
		m.reasons = make(map[headers.Reason]bool, len(f.Reasons))
		for _, r := range f.Reasons {
			m.reasons[headers.Reason(strings.ToLower(strings.TrimSpace(string(r))))] = true
		}
	}
	return m
}

func (m matcher) wantPartition(p int32) bool {
	return len(m.f.Partitions) == 0 || slices.Contains(m.f.Partitions, p)
}

func (m matcher) match(r *Record) bool {
	ts := r.Timestamp
	switch {
	case !m.since.IsZero() && ts.Before(m.since):
		return false
	case !m.until.IsZero() && !ts.Before(m.until):
		return false
	case m.reasons != nil && !m.reasons[r.Reason]:
		return false
	case m.errContains != "" && !strings.Contains(strings.ToLower(r.ErrorText()), m.errContains):
		return false
	case m.f.Key != "" && string(r.Key) != m.f.Key:
		return false
	case m.f.OriginalTopic != "" && r.Meta.OriginalTopic != m.f.OriginalTopic:
		return false
	case m.f.FailedGroup != "" && r.Meta.Group != m.f.FailedGroup:
		return false
	case !m.wantPartition(r.Partition) || !m.f.Offsets.Contains(r.Offset):
		return false
	}
	return true
}
