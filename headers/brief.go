package headers

import (
	"unicode/utf8"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Brief is what a relay needs of the kretry headers of a record in a tier
// to re-feed it; ReadBrief reads it without building a Metadata.
type Brief struct {
	Attempts          int
	Replays           int
	OriginalTopic     string
	OriginalPartition int32
	OriginalOffset    int64
	DueAt             int64 // kretry-due-at, Unix nanoseconds
	LastFailureAt     int64 // kretry-last-failure-at, Unix nanoseconds
}

// ReadBrief reads the kretry headers of hs when they are exactly what Encode
// writes for a record of group in tier: each header of the contract once,
// kretry-group and kretry-tier equal to group and tier, no kretry-reason,
// kretry-route or kretry-in-place-retries, no kretry-replays of 0, a
// non-empty kretry-error of at most MaxErrorLen bytes, a valid
// kretry-traceparent, no other kretry-* header, and kretry-due-at and
// kretry-last-failure-at from the year 1700 to 2200. Decode then reads the
// same values without error, and Encode writes these headers back as they
// are, up to their order. OriginalTopic is topic itself when it is equal to
// it. false: anything else, for Decode to read or refuse; the headers of a
// record replayed from the DLQ, which a tier never holds, are among them.
// The values of hs are read, never kept.
func ReadBrief(hs []kgo.RecordHeader, group, tier, topic string) (Brief, bool) {
	var b Brief
	var seen uint32 // by index in known, and 1<<nKnown for kretry-traceparent
	var day aDay    // the times of a record nearly always share their date
	const traceBit = 1 << nKnown
	if group == "" || tier == "" {
		return b, false
	}
	for i := range hs {
		k, v := hs[i].Key, hs[i].Value
		if len(k) < len(HeaderPrefix) || k[:len(HeaderPrefix)] != HeaderPrefix {
			continue
		}
		idx := indexOf(k)
		bit := uint32(traceBit)
		if idx >= 0 {
			bit = 1 << idx
		} else if k != HeaderTraceParent {
			return b, false // dropped by Encode
		}
		if seen&bit != 0 {
			return b, false // repeated
		}
		seen |= bit
		ok := true
		switch idx {
		case -1: // kretry-traceparent
			ok = validTraceParent(v)
		case 0: // kretry-version
			ok = len(v) == 1 && v[0] == '0'+Version
		case 1: // kretry-group
			ok = string(v) == group
		case 2: // kretry-attempts
			var n int64
			n, ok = canonicalIntIn(v, 1, MaxAttempts)
			b.Attempts = int(n)
		case 3: // kretry-tier
			ok = string(v) == tier
		case 4: // kretry-due-at
			b.DueAt, ok = briefTime(v, &day)
		case 5: // kretry-original-topic
			switch {
			case string(v) == topic && topic != "":
				b.OriginalTopic = topic
			case len(v) > 0 && utf8.Valid(v):
				b.OriginalTopic = string(v)
			default:
				ok = false
			}
		case 6: // kretry-original-partition
			var n int64
			n, ok = canonicalIntIn(v, 0, 1<<31-1)
			b.OriginalPartition = int32(n)
		case 7: // kretry-original-offset
			b.OriginalOffset, ok = canonicalIntIn(v, 0, 1<<63-1)
		case 8, 9: // kretry-original-timestamp, kretry-first-failure-at
			_, _, ok = timeFieldsOn(v, &day)
		case 10: // kretry-last-failure-at
			b.LastFailureAt, ok = briefTime(v, &day)
		case 11: // kretry-error
			ok = len(v) > 0 && len(v) <= MaxErrorLen && utf8.Valid(v)
		case 13: // kretry-replays
			var n int64
			n, ok = canonicalIntIn(v, 1, MaxAttempts)
			b.Replays = int(n)
		default: // kretry-reason, kretry-in-place-retries, kretry-route
			ok = false
		}
		if !ok {
			return b, false
		}
	}
	const required = 1<<0 | 1<<1 | 1<<2 | 1<<3 | 1<<4 | 1<<5 | 1<<6 | 1<<7 | 1<<8 | 1<<9 | 1<<10
	return b, seen&required == required
}

// canonicalIntIn reads v as Decode reads a canonical integer in [lo, hi]:
// digits only, no leading zero; false for anything else.
func canonicalIntIn[S string | []byte](v S, lo, hi int64) (int64, bool) {
	if len(v) == 0 || len(v) > 19 || v[0] == '0' && len(v) > 1 {
		return 0, false
	}
	var n uint64
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0') // 19 digits fit in a uint64
	}
	if n < uint64(lo) || n > uint64(hi) {
		return 0, false
	}
	return int64(n), true
}

// briefTime reads v as Decode reads a time, in Unix nanoseconds, for the
// years 1700 to 2200, which they hold; day as in timeFieldsOn.
func briefTime(v []byte, day *aDay) (int64, bool) {
	sec, nsec, ok := timeFieldsOn(v, day)
	const from, to = -8520336000, 7289654400 // 1700-01-01, 2201-01-01
	if !ok || sec < from || sec >= to {
		return 0, false
	}
	return sec*1e9 + nsec, true
}
