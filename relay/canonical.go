package relay

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/headers"
)

// decode reads a record's kretry headers as headers.Decode does, and
// reports whether they are canonical: as headers.Encode(hs, md) would write
// them, up to their order. Canonical headers are re-fed as they are.
func decode(hs []kgo.RecordHeader) (md headers.Metadata, ok, canonical bool, err error) {
	md, ok, err = headers.Decode(hs)
	if err != nil {
		return md, ok, false, err
	}
	return md, ok, isCanonical(hs, md), nil
}

// readTier reads the kretry headers hs of a record in tier t at now, as
// readOf reads what decode reads of them. Headers exactly as kretry writes
// them for t's group and tier, nearly every record, are read by
// headers.ReadBrief, without building a Metadata. A record of another group
// has no read; group is its kretry-group. err: the headers cannot be read,
// or carry no kretry-group.
func readTier(t tierOf, hs []kgo.RecordHeader, now time.Time) (r read, group string, err error) {
	if b, ok := headers.ReadBrief(hs, t.ladder.Group(), t.step.Name, t.ladder.Topic()); ok {
		return readBrief(t, b), t.ladder.Group(), nil
	}
	md, ok, canonical, err := decode(hs)
	if err == nil && (!ok || md.Group == "") {
		err = fmt.Errorf("kretry header %s: %w: a record in a retry tier must carry the kretry headers", headers.HeaderGroup, headers.ErrHeaderMissing)
	}
	if err != nil || md.Group != t.ladder.Group() {
		return read{}, md.Group, err
	}
	return readOf(t, md, canonical, hs, now), md.Group, nil
}

// readBrief is readOf of canonical headers of t's group and tier, read as
// b, in integer nanoseconds: the times b holds (years 1700 to 2200) and a
// tier's delay or a ladder's RetryAfterMax add without overflow (addNanos
// saturates for longer ones).
func readBrief(t tierOf, b headers.Brief) read {
	r := read{due: b.DueAt, canonical: true, ok: true,
		id: copyID{topic: b.OriginalTopic, offset: b.OriginalOffset, partition: b.OriginalPartition, attempts: b.Attempts, replays: b.Replays}}
	bound := addNanos(b.LastFailureAt, t.step.Delay)
	if trusted := addNanos(b.LastFailureAt, max(t.step.Delay, t.ladder.RetryAfterMax())); b.DueAt > addNanos(trusted, dueSlack) {
		r.due, r.untrusted, r.canonical = bound, true, false
		return r
	}
	if b.DueAt > addNanos(bound, dueSlack) {
		r.after, r.due, r.repark = r.due, bound, true
	}
	return r
}

// addNanos returns t+d, Unix nanoseconds, saturated at the largest int64.
func addNanos(t int64, d time.Duration) int64 {
	if d > 0 && t > math.MaxInt64-int64(d) {
		return math.MaxInt64
	}
	return t + int64(d)
}

// isCanonical reports whether hs, whose kretry headers read as md, carry no
// kretry header outside the contract (Encode drops it), no empty kretry-error
// and no kretry-replays of 0 (Encode leaves them out), and a kretry-error
// within MaxErrorLen (Encode cuts it).
func isCanonical(hs []kgo.RecordHeader, md headers.Metadata) bool {
	if len(md.Error) > headers.MaxErrorLen {
		return false
	}
	for _, h := range hs {
		if !strings.HasPrefix(h.Key, headers.HeaderPrefix) {
			continue
		}
		switch h.Key {
		case headers.HeaderErrorText:
			if len(h.Value) == 0 {
				return false
			}
		case headers.HeaderReplays:
			if md.Replays == 0 {
				return false
			}
		case headers.HeaderTraceParent:
			if md.TraceParent == "" {
				return false // malformed or repeated: Encode drops it
			}
		case headers.HeaderVersion, headers.HeaderGroup, headers.HeaderAttempts, headers.HeaderTier, headers.HeaderDueAt,
			headers.HeaderOriginalTopic, headers.HeaderOriginalPartition, headers.HeaderOriginalOffset,
			headers.HeaderOriginalTimestamp, headers.HeaderFirstFailureAt, headers.HeaderLastFailureAt, headers.HeaderReason:
		default:
			return false
		}
	}
	return true
}

// internKey returns the headers package's constant for a kretry header key
// of the contract, k itself for any other key.
func internKey(k string) string {
	switch k {
	case headers.HeaderVersion:
		return headers.HeaderVersion
	case headers.HeaderGroup:
		return headers.HeaderGroup
	case headers.HeaderAttempts:
		return headers.HeaderAttempts
	case headers.HeaderTier:
		return headers.HeaderTier
	case headers.HeaderDueAt:
		return headers.HeaderDueAt
	case headers.HeaderOriginalTopic:
		return headers.HeaderOriginalTopic
	case headers.HeaderOriginalPartition:
		return headers.HeaderOriginalPartition
	case headers.HeaderOriginalOffset:
		return headers.HeaderOriginalOffset
	case headers.HeaderOriginalTimestamp:
		return headers.HeaderOriginalTimestamp
	case headers.HeaderFirstFailureAt:
		return headers.HeaderFirstFailureAt
	case headers.HeaderLastFailureAt:
		return headers.HeaderLastFailureAt
	case headers.HeaderErrorText:
		return headers.HeaderErrorText
	case headers.HeaderReason:
		return headers.HeaderReason
	case headers.HeaderReplays:
		return headers.HeaderReplays
	}
	return k
}
