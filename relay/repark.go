package relay

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/headers"
)

// repark starts writing rec, a record of tier t that its tier's delay did
// not bring to its due time (a RetryAfter longer than the delay), again to
// t's topic: at its original partition modulo the tier's partition count,
// as the consumer forwards it, with its key, value and headers and a
// kretry-parked-at of now, from which its next hold counts (see readOf).
// Like a re-feed it is settled in turn: rec is marked only once the copy is
// acknowledged (in the exactly-once mode, the copy commits with rec's
// offset), so a re-park is never lost, and a re-park written twice (a crash
// before the mark) is skipped as a copy once the first is re-fed.
func (s *session) repark(ctx context.Context, t tierOf, rec *kgo.Record, r read) *refeed {
	f := &refeed{rec: rec, due: time.Unix(0, r.due), attempts: int32(r.id.attempts), produced: true, parked: true, ackc: s.ackc}
	f.dueAt = time.Unix(0, r.after)
	tier := rec.Topic
	f.out = kgo.Record{
		Topic:     tier,
		Partition: s.parts.Partition(ctx, tier, r.id.partition),
		Key:       rec.Key,
		Value:     rec.Value,
		Headers:   withParkedAt(rec.Headers, time.Now()),
	}
	if size, limit := batchSize(&f.out), s.limits.Of(tier); size > int(limit) {
		// Not produced: settle dead-letters it (too-large), as for a re-feed.
		f.produced, f.at = false, time.Now()
		f.err = fmt.Errorf("%w: with kretry-parked-at the re-park takes about %d bytes, and %s takes batches of at most %d (max.message.bytes)",
			kerr.MessageTooLarge, size, tier, limit)
		f.acked.Store(true)
		return f
	}
	s.dirty.Store(true)
	s.prod.Produce(context.Background(), &f.out, f.ack)
	return f
}

// withParkedAt returns hs without any kretry-parked-at, followed by one of
// at, in a new slice.
func withParkedAt(hs []kgo.RecordHeader, at time.Time) []kgo.RecordHeader {
	out := make([]kgo.RecordHeader, 0, len(hs)+1)
	for _, h := range hs {
		if h.Key != headers.HeaderParkedAt {
			out = append(out, h)
		}
	}
	return append(out, kgo.RecordHeader{Key: headers.HeaderParkedAt, Value: []byte(headers.FormatTime(at))})
}

// reparked counts and logs a re-park the broker acknowledged.
func (s *session) reparked(t tierOf, f *refeed) {
	t.reparked.Inc()
	if s.log.Enabled(context.Background(), slog.LevelDebug) {
		s.log.Debug("kretry relay re-parked a record in its tier: held its tier's delay, it is not yet due",
			"topic", f.rec.Topic, "partition", f.rec.Partition, "offset", f.rec.Offset, "to_partition", f.out.Partition,
			"to_offset", f.out.Offset, "due_at", headers.FormatTime(f.dueAt), "tier_delay", t.step.Delay)
	}
}
