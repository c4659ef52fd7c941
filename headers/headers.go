package headers

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/internal/safetext"
)

// The record headers of the header contract, version 1 (docs/design.md §3). Every
// kretry header starts with HeaderPrefix; all other headers belong to the user
// and are kept, in order, on every hop.
const (
	HeaderPrefix = "kretry-"

	HeaderVersion           = "kretry-version"            // "1"
	HeaderGroup             = "kretry-group"              // the group whose handler failed
	HeaderAttempts          = "kretry-attempts"           // failed attempts so far, ≥ 1
	HeaderTier              = "kretry-tier"               // the tier the record is in or came from: "retry-5s"
	HeaderDueAt             = "kretry-due-at"             // earliest re-feed time
	HeaderOriginalTopic     = "kretry-original-topic"     // the first delivery's topic
	HeaderOriginalPartition = "kretry-original-partition" // ... partition
	HeaderOriginalOffset    = "kretry-original-offset"    // ... offset
	HeaderOriginalTimestamp = "kretry-original-timestamp" // ... record timestamp
	HeaderFirstFailureAt    = "kretry-first-failure-at"
	HeaderLastFailureAt     = "kretry-last-failure-at"
	HeaderErrorText         = "kretry-error"   // the last error's text, at most MaxErrorLen bytes
	HeaderReason            = "kretry-reason"  // DLQ records only
	HeaderReplays           = "kretry-replays" // replays from the DLQ so far
	// HeaderTraceParent is the W3C traceparent of the first handler
	// attempt's span, written only by a consumer with a tracer provider and
	// kept on every hop after, so that each retried attempt's span links to
	// it. Optional; a malformed value is dropped, never an error: tracing
	// never changes what happens to a record.
	HeaderTraceParent = "kretry-traceparent"
	// HeaderInPlaceRetries counts the retries in place (retry_in_place) over
	// all hops so far; they are not failures of the ladder.
	HeaderInPlaceRetries = "kretry-in-place-retries"
	// HeaderRoute is the DLQ route (dlq_routes) of a record on a route's topic.
	HeaderRoute = "kretry-route"
)

// Version is the version of the header contract this package writes and reads.
const Version = 1

// MaxAttempts is the most failed attempts the headers count: kretry-attempts
// and kretry-replays are int32 values that saturate here rather than wrap
// or grow past what Decode reads.
const MaxAttempts = 1<<31 - 1

// MaxErrorLen is the most bytes of error text Encode writes to kretry-error.
const MaxErrorLen = 1024

// TimeLayout is the form of every kretry time header: RFC 3339, UTC, with
// milliseconds.
const TimeLayout = "2006-01-02T15:04:05.000Z"

// Reason says why a record is in the DLQ (the kretry-reason header).
type Reason string

// The reasons a record goes to the DLQ.
const (
	ReasonExhausted       Reason = "exhausted"        // the ladder is used up
	ReasonPermanent       Reason = "permanent"        // the handler returned a permanent error
	ReasonPanic           Reason = "panic"            // the handler panicked
	ReasonExpired         Reason = "expired"          // the record is older than max_age
	ReasonInvalidMetadata Reason = "invalid-metadata" // its kretry headers cannot be read
	ReasonTooLarge        Reason = "too-large"        // too large to forward: the DLQ record has no value; kretry-original-* say where it is
)

// Valid reports whether r is one of the Reason constants.
func (r Reason) Valid() bool {
	switch r {
	case ReasonExhausted, ReasonPermanent, ReasonPanic, ReasonExpired, ReasonInvalidMetadata, ReasonTooLarge:
		return true
	}
	return false
}

// Metadata is what the kretry headers of a record say. A record re-fed or
// dead-lettered by kretry carries all of it (Group set); a record replayed
// from the DLQ carries only Replays.
type Metadata struct {
	Group             string    // the consumer group whose handler failed
	Attempts          int       // failed attempts so far: 1 after the first failure
	Tier              string    // the tier the record is in or came from: "retry-5s"
	DueAt             time.Time // earliest time the relay may re-feed it
	OriginalTopic     string    // where the record was first delivered
	OriginalPartition int32
	OriginalOffset    int64
	OriginalTimestamp time.Time
	FirstFailureAt    time.Time
	LastFailureAt     time.Time
	Error             string // the last error's text; Encode cuts it at MaxErrorLen bytes on a UTF-8 boundary
	Reason            Reason // DLQ records only; "" elsewhere
	Replays           int    // times replayed from the DLQ
	TraceParent       string // kretry-traceparent: the first attempt's span, W3C form; "" when none
	InPlaceRetries    int    // retries in place (retry_in_place) over all hops; not failures of the ladder
	Route             string // the DLQ route (dlq_routes) a dead letter went to; "" for the DLQ and elsewhere
}

// HeaderError is the error Decode returns for a kretry header that is
// missing, repeated or malformed.
type HeaderError struct {
	Header string // the header's name, e.g. HeaderAttempts
	Value  string // its value as found; "" when missing
	Err    error  // what is wrong: ErrHeaderMissing, ErrHeaderRepeated or a description
}

// ErrHeaderMissing is the Err of a HeaderError for a required header that a
// record with kretry-group does not carry.
var ErrHeaderMissing = errors.New("missing")

// ErrHeaderRepeated is the Err of a HeaderError for a kretry header a record
// carries more than once.
var ErrHeaderRepeated = errors.New("repeated")

var (
	errMissing  = fmt.Errorf("%w: a record with kretry-group must carry it", ErrHeaderMissing)
	errRepeated = fmt.Errorf("%w: a record carries each kretry header at most once", ErrHeaderRepeated)
)

func (e *HeaderError) Error() string {
	if errors.Is(e.Err, ErrHeaderMissing) || errors.Is(e.Err, ErrHeaderRepeated) {
		return fmt.Sprintf("kretry header %s: %v", e.Header, e.Err)
	}
	return fmt.Sprintf("kretry header %s: invalid value %s: %v", e.Header, safetext.Quoted(e.Value), e.Err)
}

func (e *HeaderError) Unwrap() error { return e.Err }

// FormatTime writes t as a kretry time header does: RFC 3339 in UTC with
// milliseconds (TimeLayout). Finer precision is truncated.
func FormatTime(t time.Time) string { return t.UTC().Format(TimeLayout) }

// UserHeaders returns the headers of hs that are not kretry headers, in
// order, in a new slice; nil when there are none.
func UserHeaders(hs []kgo.RecordHeader) []kgo.RecordHeader {
	var out []kgo.RecordHeader
	for _, h := range hs {
		if !strings.HasPrefix(h.Key, HeaderPrefix) {
			out = append(out, h)
		}
	}
	return out
}

// Encode returns the user headers of hs in their order followed by md as
// kretry headers: every kretry-* header already in hs, known or not, is
// dropped, so headers never grow with the hops. Attempts and Replays above
// MaxAttempts are written as MaxAttempts. With md.Group set, Attempts 0 and
// Replays above 0 (a record replayed from the DLQ to the group that failed
// it) it writes kretry-version, kretry-group, the kretry-original-* headers
// when OriginalTopic is set, and kretry-replays. Otherwise, with md.Group
// set it writes
// the whole contract, leaving out kretry-error, kretry-reason and
// kretry-replays when they are empty or 0; with md.Group empty (a record
// replayed from the DLQ) it writes only kretry-replays, when above 0.
func Encode(hs []kgo.RecordHeader, md Metadata) []kgo.RecordHeader {
	var e Encoder
	return e.Encode(hs, md)
}

// An Encoder writes headers as Encode does into storage it keeps for its
// next call: the headers one call returns, and their values, are valid
// until the next call or Reset. It is for a producer that reuses its
// records once their produce promise has run. The zero Encoder is ready to
// use; an Encoder is not safe for concurrent use.
type Encoder struct {
	out   []kgo.RecordHeader
	buf   []byte
	users int // the most user headers out held since Reset: the ones Reset clears

	// The date of the last time written, which the next one usually shares.
	day  int64
	date [11]byte // "2006-01-02T"
}

// Reset drops the Encoder's references to the headers and values of its last
// call (user headers point into the records they came from), keeping its
// storage.
func (e *Encoder) Reset() {
	clear(e.out[:e.users])
	e.out, e.users = e.out[:0], 0
}

// Encode is Encode into e's storage.
func (e *Encoder) Encode(hs []kgo.RecordHeader, md Metadata) []kgo.RecordHeader {
	users := 0
	for _, h := range hs {
		if !strings.HasPrefix(h.Key, HeaderPrefix) {
			users++
		}
	}
	errText := md.Error
	if errText != "" {
		errText = safetext.CutUTF8(strings.ToValidUTF8(errText, "\uFFFD"), MaxErrorLen)
	}
	replayedHome := md.Group != "" && md.Attempts == 0 && md.Replays > 0 // to the group that failed it
	// Every value is appended to one buffer and sliced from it: one
	// allocation for all of them instead of one per header; both sized
	// exactly, as far as the values allow.
	n, size := 0, 0
	switch {
	case replayedHome:
		n, size = 2, 1+len(md.Group)
		if md.OriginalTopic != "" {
			n, size = n+4, size+len(md.OriginalTopic)+2*20+len(TimeLayout)
		}
	case md.Group != "":
		n, size = 11, 1+len(md.Group)+20+len(md.Tier)+len(md.OriginalTopic)+2*20+4*len(TimeLayout)
		for _, v := range []string{errText, string(md.Reason), md.Route} {
			if v != "" {
				n, size = n+1, size+len(v)
			}
		}
	}
	if md.Group != "" && md.Attempts > 0 && md.InPlaceRetries > 0 {
		n, size = n+1, size+20
	}
	if md.Replays > 0 {
		n, size = n+1, size+20
	}
	if md.Group != "" && md.Attempts > 0 && ValidTraceParent(md.TraceParent) {
		n++
	}
	if e.out == nil || cap(e.out) < users+n {
		e.out = make([]kgo.RecordHeader, 0, users+n)
	} else {
		e.out = e.out[:0]
	}
	if cap(e.buf) < size {
		e.buf = make([]byte, 0, size)
	} else {
		e.buf = e.buf[:0]
	}
	for _, h := range hs {
		if !strings.HasPrefix(h.Key, HeaderPrefix) {
			e.out = append(e.out, h)
		}
	}
	e.users = max(e.users, users)
	switch {
	case replayedHome:
		e.int(HeaderVersion, Version)
		e.text(HeaderGroup, md.Group)
		if md.OriginalTopic != "" {
			e.text(HeaderOriginalTopic, md.OriginalTopic)
			e.int(HeaderOriginalPartition, int64(md.OriginalPartition))
			e.int(HeaderOriginalOffset, md.OriginalOffset)
			e.time(HeaderOriginalTimestamp, md.OriginalTimestamp)
		}
	case md.Group != "":
		e.int(HeaderVersion, Version)
		e.text(HeaderGroup, md.Group)
		e.int(HeaderAttempts, int64(min(md.Attempts, MaxAttempts)))
		e.text(HeaderTier, md.Tier)
		e.time(HeaderDueAt, md.DueAt)
		e.text(HeaderOriginalTopic, md.OriginalTopic)
		e.int(HeaderOriginalPartition, int64(md.OriginalPartition))
		e.int(HeaderOriginalOffset, md.OriginalOffset)
		e.time(HeaderOriginalTimestamp, md.OriginalTimestamp)
		e.time(HeaderFirstFailureAt, md.FirstFailureAt)
		e.time(HeaderLastFailureAt, md.LastFailureAt)
		if errText != "" {
			e.text(HeaderErrorText, errText)
		}
		if md.Reason != "" {
			e.text(HeaderReason, string(md.Reason))
		}
		if md.Route != "" {
			e.text(HeaderRoute, md.Route)
		}
	}
	if md.Group != "" && md.Attempts > 0 && md.InPlaceRetries > 0 {
		e.int(HeaderInPlaceRetries, int64(min(md.InPlaceRetries, MaxAttempts)))
	}
	if md.Replays > 0 {
		e.int(HeaderReplays, int64(min(md.Replays, MaxAttempts)))
	}
	if md.Group != "" && md.Attempts > 0 && ValidTraceParent(md.TraceParent) {
		e.out = append(e.out, kgo.RecordHeader{Key: HeaderTraceParent, Value: []byte(md.TraceParent)})
	}
	return e.out
}

// add appends header k with the value buf holds from from on.
func (e *Encoder) add(k string, from int) {
	e.out = append(e.out, kgo.RecordHeader{Key: k, Value: e.buf[from:len(e.buf):len(e.buf)]})
}

func (e *Encoder) text(k, v string) {
	n := len(e.buf)
	e.buf = append(e.buf, v...)
	e.add(k, n)
}

func (e *Encoder) int(k string, v int64) {
	n := len(e.buf)
	e.buf = strconv.AppendInt(e.buf, v, 10)
	e.add(k, n)
}

func (e *Encoder) time(k string, t time.Time) {
	n := len(e.buf)
	e.buf = e.appendTime(e.buf, t)
	e.add(k, n)
}

// appendTime is appendTime reusing the date of the last time e wrote when t
// is of the same day (UTC), as the times of one record usually are.
func (e *Encoder) appendTime(b []byte, t time.Time) []byte {
	sec := t.Unix()
	const minSec, maxSec = -62167219200, 253402300800 // 0000-01-01, 10000-01-01
	if sec < minSec || sec >= maxSec {
		return appendTime(b, t)
	}
	day := (sec - minSec) / 86400 // days since 0000-01-01: ≥ 0, so / floors
	if e.day != day+1 {           // 0: none yet
		e.day = day + 1
		var full [len(TimeLayout)]byte
		copy(e.date[:], appendTime(full[:0], t))
	}
	s := int((sec - minSec) % 86400)
	h, mi, ss := s/3600, s/60%60, s%60
	ms := t.Nanosecond() / int(time.Millisecond)
	b = append(b, e.date[:]...)
	return append(b, byte('0'+h/10), byte('0'+h%10), ':', byte('0'+mi/10), byte('0'+mi%10), ':',
		byte('0'+ss/10), byte('0'+ss%10), '.', byte('0'+ms/100), byte('0'+ms/10%10), byte('0'+ms%10), 'Z')
}

// ValidTraceParent reports whether v is a W3C traceparent as kretry writes
// it: version 00, a 32-digit trace id and a 16-digit span id, neither all
// zeros, and 2 digits of flags, in lower-case hex.
func ValidTraceParent(v string) bool { return validTraceParent(v) }

// validTraceParent is ValidTraceParent of a string or, for ReadBrief, of a
// header's value as it is.
func validTraceParent[S string | []byte](v S) bool {
	if len(v) != 55 || v[0] != '0' || v[1] != '0' || v[2] != '-' || v[35] != '-' || v[52] != '-' {
		return false
	}
	hex := func(from, to int) (ok, nonZero bool) {
		for i := from; i < to; i++ {
			c := v[i]
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
				return false, false
			}
			nonZero = nonZero || c != '0'
		}
		return true, nonZero
	}
	traceOK, traceNZ := hex(3, 35)
	spanOK, spanNZ := hex(36, 52)
	flagsOK, _ := hex(53, 55)
	return traceOK && traceNZ && spanOK && spanNZ && flagsOK
}

// traceParent returns the valid kretry-traceparent of hs, "" when there is
// none, or more than one, or it is malformed.
func traceParent(hs []kgo.RecordHeader) string {
	found := ""
	for _, h := range hs {
		if h.Key == HeaderTraceParent {
			if found != "" {
				return ""
			}
			found = string(h.Value)
		}
	}
	if !ValidTraceParent(found) {
		return ""
	}
	return found
}

// appendTime appends t as FormatTime writes it, without time.Format's
// layout interpretation (Encode writes five times per record).
func appendTime(b []byte, t time.Time) []byte {
	t = t.UTC()
	y, mo, d := t.Date()
	if y < 0 || y > 9999 {
		return t.AppendFormat(b, TimeLayout)
	}
	h, mi, sec := t.Clock()
	ms := t.Nanosecond() / int(time.Millisecond)
	b = append(b, byte('0'+y/1000), byte('0'+y/100%10), byte('0'+y/10%10), byte('0'+y%10), '-')
	b = append(b, byte('0'+int(mo)/10), byte('0'+int(mo)%10), '-', byte('0'+d/10), byte('0'+d%10), 'T')
	b = append(b, byte('0'+h/10), byte('0'+h%10), ':', byte('0'+mi/10), byte('0'+mi%10), ':')
	b = append(b, byte('0'+sec/10), byte('0'+sec%10), '.', byte('0'+ms/100), byte('0'+ms/10%10), byte('0'+ms%10), 'Z')
	return b
}

// parseTime reads a time in exactly the form FormatTime writes; false for
// anything else (including out-of-range fields), which time.Parse then
// explains.
func parseTime(v string) (time.Time, bool) {
	sec, nsec, ok := timeFields(v)
	if !ok {
		return time.Time{}, false
	}
	return time.Unix(sec, nsec).UTC(), true
}

// timeFields reads v as parseTime does, as Unix seconds and nanoseconds,
// without time.Date: Decode reads five times per record.
func timeFields[S string | []byte](v S) (sec, nsec int64, ok bool) {
	if len(v) != len(TimeLayout) || v[4] != '-' || v[7] != '-' || v[10] != 'T' || v[13] != ':' ||
		v[16] != ':' || v[19] != '.' || v[23] != 'Z' {
		return 0, 0, false
	}
	// Every other byte is a digit: c-'0' wraps to above 9 for anything else.
	d := func(i int) int { return int(v[i] - '0') }
	for _, i := range [...]int{0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18, 20, 21, 22} {
		if v[i]-'0' > 9 {
			return 0, 0, false
		}
	}
	y, mo, dd := d(0)*1000+d(1)*100+d(2)*10+d(3), d(5)*10+d(6), d(8)*10+d(9)
	h, mi, s, ms := d(11)*10+d(12), d(14)*10+d(15), d(17)*10+d(18), d(20)*100+d(21)*10+d(22)
	if mo < 1 || mo > 12 || dd < 1 || dd > daysIn(mo, y) || h > 23 || mi > 59 || s > 59 {
		return 0, 0, false
	}
	return daysSinceEpoch(y, mo, dd)*86400 + int64(h*3600+mi*60+s), int64(ms) * int64(time.Millisecond), true
}

// daysIn is the number of days of month mo (1 to 12) of year y.
func daysIn(mo, y int) int {
	switch mo {
	case 2:
		if y%4 == 0 && (y%100 != 0 || y%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// daysSinceEpoch is the number of days from 1970-01-01 to y-mo-d of the
// proleptic Gregorian calendar, for y from 0 to 9999 (Hinnant's
// days_from_civil).
func daysSinceEpoch(y, mo, d int) int64 {
	if mo <= 2 {
		y--
	}
	era := y / 400
	if y < 0 {
		era = (y - 399) / 400
	}
	yoe := y - era*400
	m := mo + 9
	if mo > 2 {
		m = mo - 3
	}
	doy := (153*m+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return int64(era)*146097 + int64(doe) - 719468
}

// nKnown is len(known).
const nKnown = 16

// The indexes of the contract's headers in known.
const (
	iVersion = iota
	iGroup
	iAttempts
	iTier
	iDueAt
	iOriginalTopic
	iOriginalPartition
	iOriginalOffset
	iOriginalTimestamp
	iFirstFailureAt
	iLastFailureAt
	iErrorText
	iReason
	iReplays
	iInPlaceRetries
	iRoute
)

// known lists the contract's headers in the order Decode checks them.
var known = [nKnown]string{
	HeaderVersion, HeaderGroup, HeaderAttempts, HeaderTier, HeaderDueAt,
	HeaderOriginalTopic, HeaderOriginalPartition, HeaderOriginalOffset, HeaderOriginalTimestamp,
	HeaderFirstFailureAt, HeaderLastFailureAt, HeaderErrorText, HeaderReason, HeaderReplays,
	HeaderInPlaceRetries, HeaderRoute,
}

// Decode reads the kretry headers of a record strictly: a malformed value is
// never read as zero.
//
// A record without any kretry header gives (Metadata{}, false, nil). A record
// that carries kretry-replays but not kretry-group (a record replayed from
// the DLQ) is valid with Attempts 0; so is one that carries kretry-version,
// kretry-group, kretry-replays ≥ 1, no kretry-attempts and, optionally, all
// four kretry-original-* headers (a record replayed to the group that failed
// it). Otherwise, once kretry-group is present,
// kretry-version (1), kretry-attempts (≥ 1), kretry-tier, kretry-due-at,
// kretry-original-* and the failure times are required; kretry-error,
// kretry-reason (one of the Reason constants) and kretry-replays (≥ 0) are
// optional. A missing, repeated or malformed kretry header is a *HeaderError
// naming the header and its value; of several, the first in the contract's
// order is reported. Headers that start with "kretry-" but are not in the
// contract are ignored.
func Decode(hs []kgo.RecordHeader) (md Metadata, ok bool, err error) {
	for _, h := range hs {
		if strings.HasPrefix(h.Key, HeaderPrefix) {
			return decode(hs)
		}
	}
	return Metadata{}, false, nil // a first delivery: nothing to read, nothing allocated
}

func decode(hs []kgo.RecordHeader) (md Metadata, ok bool, err error) {
	var d decoder
	vals, have := &d.vals, &d.have
	var at [nKnown]int // index in hs
	found := false
	size := 0
	for j, h := range hs {
		if !strings.HasPrefix(h.Key, HeaderPrefix) {
			continue
		}
		i := indexOf(h.Key)
		if i < 0 {
			continue
		}
		if have[i] {
			return Metadata{}, false, &HeaderError{Header: h.Key, Value: string(h.Value), Err: errRepeated}
		}
		have[i], at[i], found = true, j, true
		size += len(h.Value)
	}
	// The values are copied into one string and sliced from it: one
	// allocation per record instead of one per header.
	var b strings.Builder
	b.Grow(size)
	var end [nKnown]int
	for i := range have {
		if have[i] {
			b.Write(hs[at[i]].Value)
		}
		end[i] = b.Len()
	}
	all := b.String()
	for i := range have {
		if have[i] {
			vals[i] = all[end[i]-len(hs[at[i]].Value) : end[i]]
		}
	}
	if !found {
		return Metadata{}, false, nil
	}
	if v, ok := d.get(iVersion); ok && v != strconv.Itoa(Version) {
		return Metadata{}, false, &HeaderError{HeaderVersion, v,
			fmt.Errorf("unsupported version: this kretry reads version %d", Version)}
	}
	if _, ok := d.get(iGroup); !ok {
		// Without a group, only a DLQ replay's count may be present.
		for i, name := range known {
			if have[i] && name != HeaderVersion && name != HeaderReplays {
				return Metadata{}, false, &HeaderError{HeaderGroup, "",
					fmt.Errorf("%w: the record carries %s, which needs it", ErrHeaderMissing, name)}
			}
		}
		md.Replays = int(d.int(iReplays, false, 0, MaxAttempts))
		if d.err != nil {
			return Metadata{}, false, d.err
		}
		return md, true, nil
	}

	if _, ok := d.get(iVersion); !ok {
		return Metadata{}, false, &HeaderError{Header: HeaderVersion, Err: errMissing}
	}
	if !have[iAttempts] && have[iReplays] {
		return d.replayed()
	}
	md.Group = d.text(iGroup, true)
	md.Attempts = int(d.int(iAttempts, true, 1, MaxAttempts))
	md.Tier = d.text(iTier, true)
	md.DueAt = d.time(iDueAt)
	md.OriginalTopic = d.text(iOriginalTopic, true)
	md.OriginalPartition = int32(d.int(iOriginalPartition, true, 0, 1<<31-1))
	md.OriginalOffset = int64(d.int(iOriginalOffset, true, 0, 1<<63-1))
	md.OriginalTimestamp = d.time(iOriginalTimestamp)
	md.FirstFailureAt = d.time(iFirstFailureAt)
	md.LastFailureAt = d.time(iLastFailureAt)
	if _, ok := d.get(iErrorText); ok {
		md.Error = d.text(iErrorText, false)
	}
	if v, ok := d.get(iReason); ok && d.err == nil {
		if r := Reason(v); r.Valid() {
			md.Reason = r
		} else {
			d.err = &HeaderError{HeaderReason, v, errors.New("want exhausted, permanent, panic, expired, too-large or invalid-metadata")}
		}
	}
	md.Replays = int(d.int(iReplays, false, 0, MaxAttempts))
	md.InPlaceRetries = int(d.int(iInPlaceRetries, false, 1, MaxAttempts))
	if _, ok := d.get(iRoute); ok {
		md.Route = d.text(iRoute, true)
	}
	if d.err != nil {
		return Metadata{}, false, d.err
	}
	md.TraceParent = traceParent(hs)
	return md, true, nil
}

// replayed reads a record replayed from the DLQ to the group that failed it:
// kretry-version, kretry-group, kretry-replays ≥ 1 and, when the first
// delivery is known, the four kretry-original-* headers; no attempt yet, so
// no other kretry header.
func (d *decoder) replayed() (md Metadata, ok bool, err error) {
	for i, name := range known {
		switch name {
		case HeaderTier, HeaderDueAt, HeaderFirstFailureAt, HeaderLastFailureAt, HeaderErrorText, HeaderReason, HeaderInPlaceRetries, HeaderRoute:
			if d.have[i] {
				return Metadata{}, false, &HeaderError{Header: HeaderAttempts, Err: errMissing}
			}
		}
	}
	md.Group = d.text(iGroup, true)
	md.Replays = int(d.int(iReplays, true, 1, MaxAttempts))
	for _, i := range []int{iOriginalTopic, iOriginalPartition, iOriginalOffset, iOriginalTimestamp} {
		if d.have[i] {
			md.OriginalTopic = d.text(iOriginalTopic, true)
			md.OriginalPartition = int32(d.int(iOriginalPartition, true, 0, 1<<31-1))
			md.OriginalOffset = int64(d.int(iOriginalOffset, true, 0, 1<<63-1))
			md.OriginalTimestamp = d.time(iOriginalTimestamp)
			break
		}
	}
	if d.err != nil {
		return Metadata{}, false, d.err
	}
	return md, true, nil
}

// indexOf returns the index of name in known, or -1. A switch, not a loop:
// Decode looks up every kretry header of every record.
func indexOf(name string) int {
	switch name {
	case HeaderVersion:
		return 0
	case HeaderGroup:
		return 1
	case HeaderAttempts:
		return 2
	case HeaderTier:
		return 3
	case HeaderDueAt:
		return 4
	case HeaderOriginalTopic:
		return 5
	case HeaderOriginalPartition:
		return 6
	case HeaderOriginalOffset:
		return 7
	case HeaderOriginalTimestamp:
		return 8
	case HeaderFirstFailureAt:
		return 9
	case HeaderLastFailureAt:
		return 10
	case HeaderErrorText:
		return 11
	case HeaderReason:
		return 12
	case HeaderReplays:
		return 13
	case HeaderInPlaceRetries:
		return 14
	case HeaderRoute:
		return 15
	}
	return -1
}

// decoder keeps the first error, so Decode reads as a list of fields.
type decoder struct {
	vals [nKnown]string // by index in known
	have [nKnown]bool
	err  *HeaderError
}

func (d *decoder) get(i int) (string, bool) { return d.vals[i], d.have[i] }

func (d *decoder) text(i int, nonEmpty bool) string {
	name := known[i]
	v, ok := d.get(i)
	switch {
	case d.err != nil:
	case !ok:
		d.err = &HeaderError{Header: name, Err: errMissing}
	case !utf8.ValidString(v):
		d.err = &HeaderError{name, v, errors.New("want UTF-8 text")}
	case nonEmpty && v == "":
		d.err = &HeaderError{name, v, errors.New("want a non-empty value")}
	default:
		return v
	}
	return ""
}

// int reads a canonical base-10 integer in [lo, hi]: no sign, no leading
// zeros, no spaces, so that a value reads back exactly as Encode writes it.
// An absent optional header is 0.
func (d *decoder) int(i int, required bool, lo, hi int64) int64 {
	name := known[i]
	v, ok := d.get(i)
	if d.err != nil {
		return 0
	}
	if !ok {
		if required {
			d.err = &HeaderError{Header: name, Err: errMissing}
		}
		return 0
	}
	if n, ok := canonicalIntIn(v, lo, hi); ok {
		return n // as kretry writes it: nothing to explain
	}
	n, err := strconv.ParseInt(v, 10, 64)
	tooBig := errors.Is(err, strconv.ErrRange) && v[0] != '-' || err == nil && n > hi
	switch {
	case tooBig && v[0] != '+' && v[0] != '0':
		d.err = &HeaderError{name, v, fmt.Errorf("want a base-10 integer from %d to %d", lo, hi)}
		return 0
	case err != nil || !canonicalInt(v) || n < lo || n > hi:
		d.err = &HeaderError{name, v, fmt.Errorf("want a base-10 integer ≥ %d", lo)}
		return 0
	}
	return n
}

// canonicalInt reports whether v, which ParseInt read, is written as
// strconv.FormatInt writes a non-negative number: digits only, no leading
// zero. (FormatInt itself would allocate on every header of every record.)
func canonicalInt(v string) bool {
	if v == "" || v[0] == '0' && len(v) > 1 {
		return false
	}
	for i := 0; i < len(v); i++ {
		if v[i] < '0' || v[i] > '9' {
			return false
		}
	}
	return true
}

func (d *decoder) time(i int) time.Time {
	name := known[i]
	v, ok := d.get(i)
	if d.err != nil {
		return time.Time{}
	}
	if !ok {
		d.err = &HeaderError{Header: name, Err: errMissing}
		return time.Time{}
	}
	if t, ok := parseTime(v); ok {
		return t
	}
	t, err := time.Parse(TimeLayout, v)
	if err != nil || FormatTime(t) != v {
		d.err = &HeaderError{name, v, errors.New("want an RFC 3339 UTC time with milliseconds, like 2026-11-25T10:00:05.123Z")}
		return time.Time{}
	}
	return t.UTC()
}
