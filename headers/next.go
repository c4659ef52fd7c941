package headers

import (
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// The hops of a record through kretry, each from the metadata the record
// carries (md) to the metadata of the record kretry writes next. Fields a hop
// does not name are kept.

// Failed is md after group's handler failed rec at at with errText: the
// failure is counted (saturating at MaxAttempts) and is the last one; the
// first delivery and the first failure are kept when rec came through the
// ladder (md.Group and md.OriginalTopic set, as after a replay to this group),
// and are rec and at otherwise. Replays is kept; Tier, DueAt and Reason are
// cleared: InTier or DeadLettered sets them. TraceParent is kept (the
// first attempt's span; the consumer sets it on the first failure).
func (md Metadata) Failed(group string, rec *kgo.Record, at time.Time, errText string) Metadata {
	next := Metadata{
		Group:         group,
		Attempts:      min(md.Attempts, MaxAttempts-1) + 1, // 0 without kretry headers or after a replay
		LastFailureAt: at,
		Error:         errText,
		Replays:       md.Replays,
		TraceParent:   md.TraceParent,

		InPlaceRetries: md.InPlaceRetries,
	}
	if md.Group != "" && md.OriginalTopic != "" {
		next.OriginalTopic, next.OriginalPartition = md.OriginalTopic, md.OriginalPartition
		next.OriginalOffset, next.OriginalTimestamp = md.OriginalOffset, md.OriginalTimestamp
	} else {
		next.OriginalTopic, next.OriginalPartition = rec.Topic, rec.Partition
		next.OriginalOffset, next.OriginalTimestamp = rec.Offset, rec.Timestamp
	}
	next.FirstFailureAt = at
	if md.Attempts > 0 {
		next.FirstFailureAt = md.FirstFailureAt
	}
	return next
}

// InTier is md of a record in tier, or re-fed from it, due at due.
func (md Metadata) InTier(tier string, due time.Time) Metadata {
	md.Tier, md.DueAt = tier, due
	return md
}

// DeadLettered is md of a record dead-lettered at at for reason, from tier
// ("dlq" for a record that never went through a tier kretry knows).
func (md Metadata) DeadLettered(reason Reason, tier string, at time.Time) Metadata {
	md.Reason, md.Tier, md.DueAt = reason, tier, at
	return md
}

// Replayed is the metadata of a DLQ record with md replayed: the replay is
// counted. Replayed home (to md.OriginalTopic) it stays md.Group's, with its
// first delivery when md knows it (OriginalTimestamp set), and its failures
// start again; replayed elsewhere, it is a first delivery.
func (md Metadata) Replayed(home bool) Metadata {
	next := Metadata{Replays: md.Replays + 1}
	if home && md.Group != "" && md.OriginalTopic != "" {
		next.Group = md.Group
		if !md.OriginalTimestamp.IsZero() {
			next.OriginalTopic, next.OriginalPartition = md.OriginalTopic, md.OriginalPartition
			next.OriginalOffset, next.OriginalTimestamp = md.OriginalOffset, md.OriginalTimestamp
		}
	}
	return next
}
