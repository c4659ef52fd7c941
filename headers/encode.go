package headers

import (
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/internal/safetext"
)

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
	// n is len(out) after the last call: out[:n] beyond the user headers
	// still hold its kretry headers, which add leaves as they are when it
	// writes one again, the same name over the same bytes of buf.
	n int

	// The date of the last time written, which the next one usually shares.
	day  int64
	date [11]byte // "2006-01-02T"
	// The last time this call wrote, at buf[timeAt:] (timeAt < 0: none):
	// a record's times are often the same (its first and last failure, a
	// dead letter's due time), and copied it costs less than formatted.
	timeSec, timeMs int64
	timeAt          int
	// The last error text (errIn, at most MaxErrorLen bytes) and what it
	// is written as: a forward's error is usually the one before's.
	errIn, errOut string
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
	errText := e.errOut
	if md.Error != e.errIn {
		errText = md.Error
		if !utf8.ValidString(errText) { // ValidString reads ASCII 8 bytes at a time
			errText = strings.ToValidUTF8(errText, "\uFFFD")
		}
		errText = safetext.CutUTF8(errText, MaxErrorLen)
		if len(md.Error) <= MaxErrorLen { // keeps no long error alive
			e.errIn, e.errOut = md.Error, errText
		}
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
		e.out, e.n = make([]kgo.RecordHeader, 0, users+n), 0
	} else {
		e.out = e.out[:0]
	}
	if cap(e.buf) < size {
		e.buf = make([]byte, 0, size)
	} else {
		e.buf = e.buf[:0]
	}
	e.timeAt = -1
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
	e.n = len(e.out)
	return e.out
}

// add appends header k with the value buf holds from from on. A header the
// last call wrote at the same place, of the same name and over the same
// bytes, is left as it is: a forward's headers are mostly those of the
// forward before, and not storing them spares the writes to memory long out
// of the caches (and, while the GC marks, their write barriers).
func (e *Encoder) add(k string, from int) {
	v := e.buf[from:len(e.buf):len(e.buf)]
	if i := len(e.out); i < e.n && len(v) > 0 {
		e.out = e.out[:i+1]
		if h := &e.out[i]; len(h.Value) != len(v) || cap(h.Value) != cap(v) || &h.Value[0] != &v[0] || h.Key != k {
			*h = kgo.RecordHeader{Key: k, Value: v}
		}
		return
	}
	e.out = append(e.out, kgo.RecordHeader{Key: k, Value: v})
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
	sec, ms := t.Unix(), int64(t.Nanosecond()/int(time.Millisecond))
	if e.timeAt >= 0 && sec == e.timeSec && ms == e.timeMs {
		e.buf = append(e.buf, e.buf[e.timeAt:e.timeAt+len(TimeLayout)]...)
	} else {
		e.buf = e.appendTime(e.buf, t)
		if len(e.buf)-n == len(TimeLayout) { // not a year past 9999 or before 0
			e.timeSec, e.timeMs, e.timeAt = sec, ms, n
		}
	}
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
