package headers

import (
	"errors"
	"fmt"
	"math/bits"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/twmb/franz-go/pkg/kgo"
)

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
	if !hasKretryHeader(hs) {
		return Metadata{}, false, nil // a first delivery: nothing to read, nothing allocated
	}
	return decode(hs, nil)
}

// A Decoder reads headers as Decode does, keeping the text values of its
// last call that read without error (kretry-group, kretry-tier,
// kretry-original-topic, kretry-error, kretry-reason, kretry-route,
// kretry-traceparent): a value equal to the last one of its header is
// returned as the same string, not copied or checked again, so that the
// records of one group, tier and error decode without allocating. The zero
// Decoder is ready to use; a Decoder is not safe for concurrent use.
type Decoder struct {
	last  [nKnown]string // by index in known; text headers only
	trace string         // the last valid kretry-traceparent
	day   aDay           // the date of the last time read: the next record's times nearly always share it
}

// Decode is Decode, reusing the text values of d's last call.
func (d *Decoder) Decode(hs []kgo.RecordHeader) (md Metadata, ok bool, err error) {
	return decode(hs, d)
}

func hasKretryHeader(hs []kgo.RecordHeader) bool {
	for _, h := range hs {
		if strings.HasPrefix(h.Key, HeaderPrefix) {
			return true
		}
	}
	return false
}

// textHeaders has the bit (1<<i) of each header of known that Metadata
// holds as text; it holds the others as numbers and times, read from the
// values in place.
const textHeaders = 1<<iGroup | 1<<iTier | 1<<iOriginalTopic | 1<<iErrorText | 1<<iReason | 1<<iRoute

// decode reads hs; reuse, when not nil, holds the text values of the last
// call, reused when equal and updated on success.
func decode(hs []kgo.RecordHeader, reuse *Decoder) (md Metadata, ok bool, err error) {
	var d decoder
	d.hs, d.reuse = hs, reuse
	if reuse != nil {
		d.day = reuse.day
	}
	trace := -1 // the index in hs of the only kretry-traceparent; -2: more than one
	for j := range hs {
		k := hs[j].Key
		if len(k) < len(HeaderPrefix) || k[:len(HeaderPrefix)] != HeaderPrefix {
			continue
		}
		i := indexOf(k)
		if i < 0 {
			if k == HeaderTraceParent {
				if trace == -1 {
					trace = j
				} else {
					trace = -2
				}
			}
			continue
		}
		if d.has(i) {
			return Metadata{}, false, &HeaderError{Header: k, Value: string(hs[j].Value), Err: errRepeated}
		}
		d.have |= 1 << i
		d.at[i] = int32(j)
	}
	if d.have == 0 {
		return Metadata{}, false, nil
	}
	// The text values not reused from the last call are copied into one
	// string and sliced from it: one allocation per record at most, not
	// one per header.
	var fresh uint32
	size := 0
	for m := d.have & textHeaders; m != 0; m &= m - 1 {
		i := bits.TrailingZeros32(m)
		v := d.raw(i)
		// A non-empty last value was checked when it was read: its
		// header's rule is the same on every path.
		if reuse != nil && len(v) > 0 && string(v) == reuse.last[i] {
			d.vals[i] = reuse.last[i]
			d.checked |= 1 << i
			continue
		}
		fresh |= 1 << i
		size += len(v)
	}
	if size > 0 {
		var b strings.Builder
		b.Grow(size)
		var from [nKnown]int32
		for m := fresh; m != 0; m &= m - 1 {
			i := bits.TrailingZeros32(m)
			from[i] = int32(b.Len())
			b.Write(d.raw(i))
		}
		all := b.String()
		for m := fresh; m != 0; m &= m - 1 {
			i := bits.TrailingZeros32(m)
			d.vals[i] = all[from[i] : int(from[i])+len(d.raw(i))]
		}
	}
	d.trace = trace
	md, ok, err = d.metadata()
	if reuse != nil {
		reuse.day = d.day
	}
	if err != nil {
		return md, ok, err
	}
	if reuse != nil {
		for m := fresh; m != 0; m &= m - 1 {
			i := bits.TrailingZeros32(m)
			reuse.last[i] = d.vals[i]
		}
	}
	return md, ok, nil
}

// traceParentOf is v as a valid kretry-traceparent, "" when it is not one;
// reuse's last one when it is that one again.
func traceParentOf(v []byte, reuse *Decoder) string {
	if reuse != nil && reuse.trace != "" && string(v) == reuse.trace {
		return reuse.trace
	}
	if !validTraceParent(v) {
		return ""
	}
	s := string(v)
	if reuse != nil {
		reuse.trace = s
	}
	return s
}

// metadata reads the headers d found.
func (d *decoder) metadata() (md Metadata, ok bool, err error) {
	if d.has(iVersion) {
		if v := d.raw(iVersion); len(v) != 1 || v[0] != '0'+Version {
			return Metadata{}, false, &HeaderError{HeaderVersion, string(v),
				fmt.Errorf("unsupported version: this kretry reads version %d", Version)}
		}
	}
	if !d.has(iGroup) {
		// Without a group, only a DLQ replay's count may be present.
		if other := d.have &^ (1<<iVersion | 1<<iReplays); other != 0 {
			return Metadata{}, false, &HeaderError{HeaderGroup, "",
				fmt.Errorf("%w: the record carries %s, which needs it", ErrHeaderMissing, known[bits.TrailingZeros32(other)])}
		}
		md.Replays = int(d.int(iReplays, false, 0, MaxAttempts))
		if d.err != nil {
			return Metadata{}, false, d.err
		}
		return md, true, nil
	}

	if !d.has(iVersion) {
		return Metadata{}, false, &HeaderError{Header: HeaderVersion, Err: errMissing}
	}
	if !d.has(iAttempts) && d.has(iReplays) {
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
	if d.has(iErrorText) {
		md.Error = d.text(iErrorText, false)
	}
	if v := d.vals[iReason]; d.has(iReason) && d.err == nil {
		if r := Reason(v); r.Valid() {
			md.Reason = r
		} else {
			d.err = &HeaderError{HeaderReason, v, errors.New("want exhausted, permanent, panic, expired, too-large or invalid-metadata")}
		}
	}
	md.Replays = int(d.int(iReplays, false, 0, MaxAttempts))
	md.InPlaceRetries = int(d.int(iInPlaceRetries, false, 1, MaxAttempts))
	if d.has(iRoute) {
		md.Route = d.text(iRoute, true)
	}
	if d.err != nil {
		return Metadata{}, false, d.err
	}
	if d.trace >= 0 {
		md.TraceParent = traceParentOf(d.hs[d.trace].Value, d.reuse)
	}
	return md, true, nil
}

// replayed reads a record replayed from the DLQ to the group that failed it:
// kretry-version, kretry-group, kretry-replays ≥ 1 and, when the first
// delivery is known, the four kretry-original-* headers; no attempt yet, so
// no other kretry header.
func (d *decoder) replayed() (md Metadata, ok bool, err error) {
	const attemptOnly = 1<<iTier | 1<<iDueAt | 1<<iFirstFailureAt | 1<<iLastFailureAt | 1<<iErrorText | 1<<iReason | 1<<iInPlaceRetries | 1<<iRoute
	if d.have&attemptOnly != 0 {
		return Metadata{}, false, &HeaderError{Header: HeaderAttempts, Err: errMissing}
	}
	md.Group = d.text(iGroup, true)
	md.Replays = int(d.int(iReplays, true, 1, MaxAttempts))
	const original = 1<<iOriginalTopic | 1<<iOriginalPartition | 1<<iOriginalOffset | 1<<iOriginalTimestamp
	if d.have&original != 0 {
		md.OriginalTopic = d.text(iOriginalTopic, true)
		md.OriginalPartition = int32(d.int(iOriginalPartition, true, 0, 1<<31-1))
		md.OriginalOffset = int64(d.int(iOriginalOffset, true, 0, 1<<63-1))
		md.OriginalTimestamp = d.time(iOriginalTimestamp)
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
	hs      []kgo.RecordHeader
	at      [nKnown]int32  // the index in hs of each header of known it has
	vals    [nKnown]string // the text values (textHeaders), copied or reused
	have    uint32         // the bit (1<<i) of each header of known hs has
	checked uint32         // the bits of the text values reused: read without error before
	trace   int            // the index in hs of the only kretry-traceparent, or < 0
	err     *HeaderError
	day     aDay     // the date of the last time read: a record's times nearly always share it
	reuse   *Decoder // nil: Decode
}

// has reports whether hs has header i of known.
func (d *decoder) has(i int) bool { return d.have&(1<<i) != 0 }

// raw is the value of header i of known, which hs has; read, never kept.
func (d *decoder) raw(i int) []byte { return d.hs[d.at[i]].Value }

func (d *decoder) text(i int, nonEmpty bool) string {
	name := known[i]
	v, ok := d.vals[i], d.has(i)
	switch {
	case d.err != nil:
	case !ok:
		d.err = &HeaderError{Header: name, Err: errMissing}
	case d.checked&(1<<i) != 0:
		return v
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
	if d.err != nil {
		return 0
	}
	if !d.has(i) {
		if required {
			d.err = &HeaderError{Header: name, Err: errMissing}
		}
		return 0
	}
	if n, ok := canonicalIntIn(d.raw(i), lo, hi); ok {
		return n // as kretry writes it: nothing to explain
	}
	v := string(d.raw(i))
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
	if d.err != nil {
		return time.Time{}
	}
	if !d.has(i) {
		d.err = &HeaderError{Header: name, Err: errMissing}
		return time.Time{}
	}
	if sec, nsec, ok := timeFieldsOn(d.raw(i), &d.day); ok {
		return time.Unix(sec, nsec).UTC()
	}
	v := string(d.raw(i))
	t, err := time.Parse(TimeLayout, v)
	if err != nil || FormatTime(t) != v {
		d.err = &HeaderError{name, v, errors.New("want an RFC 3339 UTC time with milliseconds, like 2026-11-25T10:00:05.123Z")}
		return time.Time{}
	}
	return t.UTC()
}
