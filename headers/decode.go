package headers

import (
	"errors"
	"fmt"
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
// kretry-original-topic, kretry-error, kretry-reason, kretry-route): a value
// equal to the last one of its header is returned as the same string, not
// copied again, so that the records of one group, tier and error decode
// without allocating. The zero Decoder is ready to use; a Decoder is not
// safe for concurrent use.
type Decoder struct {
	last [nKnown]string // by index in known; text headers only
}

// Decode is Decode, reusing the text values of d's last call.
func (d *Decoder) Decode(hs []kgo.RecordHeader) (md Metadata, ok bool, err error) {
	return decode(hs, &d.last)
}

func hasKretryHeader(hs []kgo.RecordHeader) bool {
	for _, h := range hs {
		if strings.HasPrefix(h.Key, HeaderPrefix) {
			return true
		}
	}
	return false
}

// isText says which headers of known Metadata holds as text (the others it
// holds as numbers and times, read from the values in place).
var isText = [nKnown]bool{iGroup: true, iTier: true, iOriginalTopic: true, iErrorText: true, iReason: true, iRoute: true}

// decode reads hs; last, when not nil, holds the text values of the last
// call, reused when equal and updated on success.
func decode(hs []kgo.RecordHeader, last *[nKnown]string) (md Metadata, ok bool, err error) {
	var d decoder
	raw, have := &d.raw, &d.have
	found := false
	for _, h := range hs {
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
		have[i], raw[i], found = true, h.Value, true
	}
	if !found {
		return Metadata{}, false, nil
	}
	// The text values not reused from last are copied into one string and
	// sliced from it: one allocation per record at most, not one per header.
	size := 0
	for i := range have {
		if have[i] && isText[i] {
			if last != nil && string(raw[i]) == last[i] {
				d.vals[i] = last[i]
			} else {
				size += len(raw[i])
			}
		}
	}
	if size > 0 {
		var b strings.Builder
		b.Grow(size)
		var end [nKnown]int
		for i := range have {
			if have[i] && isText[i] && (last == nil || string(raw[i]) != last[i]) {
				b.Write(raw[i])
			}
			end[i] = b.Len()
		}
		all := b.String()
		for i := range have {
			if have[i] && isText[i] && (last == nil || string(raw[i]) != last[i]) {
				d.vals[i] = all[end[i]-len(raw[i]) : end[i]]
			}
		}
	}
	md, ok, err = d.metadata(hs)
	if err == nil && last != nil {
		for i := range have {
			if have[i] && isText[i] {
				last[i] = d.vals[i]
			}
		}
	}
	return md, ok, err
}

// metadata reads the headers d found in hs.
func (d *decoder) metadata(hs []kgo.RecordHeader) (md Metadata, ok bool, err error) {
	have := &d.have
	if have[iVersion] && (len(d.raw[iVersion]) != 1 || d.raw[iVersion][0] != '0'+Version) {
		return Metadata{}, false, &HeaderError{HeaderVersion, string(d.raw[iVersion]),
			fmt.Errorf("unsupported version: this kretry reads version %d", Version)}
	}
	if !have[iGroup] {
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

	if !have[iVersion] {
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
	if have[iErrorText] {
		md.Error = d.text(iErrorText, false)
	}
	if v := d.vals[iReason]; have[iReason] && d.err == nil {
		if r := Reason(v); r.Valid() {
			md.Reason = r
		} else {
			d.err = &HeaderError{HeaderReason, v, errors.New("want exhausted, permanent, panic, expired, too-large or invalid-metadata")}
		}
	}
	md.Replays = int(d.int(iReplays, false, 0, MaxAttempts))
	md.InPlaceRetries = int(d.int(iInPlaceRetries, false, 1, MaxAttempts))
	if have[iRoute] {
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
	raw  [nKnown][]byte // the values as found, by index in known; read, never kept
	vals [nKnown]string // the text values (isText), copied or reused
	have [nKnown]bool
	err  *HeaderError
	day  aDay // the date of the last time read: a record's times nearly always share it
}

func (d *decoder) text(i int, nonEmpty bool) string {
	name := known[i]
	v, ok := d.vals[i], d.have[i]
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
	if d.err != nil {
		return 0
	}
	if !d.have[i] {
		if required {
			d.err = &HeaderError{Header: name, Err: errMissing}
		}
		return 0
	}
	if n, ok := canonicalIntIn(d.raw[i], lo, hi); ok {
		return n // as kretry writes it: nothing to explain
	}
	v := string(d.raw[i])
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
	if !d.have[i] {
		d.err = &HeaderError{Header: name, Err: errMissing}
		return time.Time{}
	}
	if sec, nsec, ok := timeFieldsOn(d.raw[i], &d.day); ok {
		return time.Unix(sec, nsec).UTC()
	}
	v := string(d.raw[i])
	t, err := time.Parse(TimeLayout, v)
	if err != nil || FormatTime(t) != v {
		d.err = &HeaderError{name, v, errors.New("want an RFC 3339 UTC time with milliseconds, like 2026-11-25T10:00:05.123Z")}
		return time.Time{}
	}
	return t.UTC()
}
