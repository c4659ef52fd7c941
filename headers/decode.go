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
