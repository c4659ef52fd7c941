package relay

import (
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

// readHeaders reads the kretry headers of a record in tier t as decode
// does. Headers exactly as kretry writes them for t's group and tier, nearly
// every record, are read by headers.ReadBrief: the Metadata then holds what
// readOf reads (group, attempts, tier, due time, the first delivery but its
// timestamp, last failure, replays) and nothing else; a non-canonical
// re-feed decodes the headers again in full.
func readHeaders(t tierOf, hs []kgo.RecordHeader) (md headers.Metadata, ok, canonical bool, err error) {
	b, ok := headers.ReadBrief(hs, t.ladder.Group(), t.step.Name, t.ladder.Topic())
	if !ok {
		return decode(hs)
	}
	return headers.Metadata{Group: t.ladder.Group(), Attempts: b.Attempts, Tier: t.step.Name,
		DueAt: time.Unix(0, b.DueAt).UTC(), OriginalTopic: b.OriginalTopic, OriginalPartition: b.OriginalPartition,
		OriginalOffset: b.OriginalOffset, LastFailureAt: time.Unix(0, b.LastFailureAt).UTC(), Replays: b.Replays}, true, true, nil
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
