package relay

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/headers"
	"github.com/kretry/kretry/internal/metrics"
	"github.com/kretry/kretry/internal/safetext"
)

// isTooLarge reports whether a produce error says the record is larger than
// its topic, or the client's batch limit, takes.
func isTooLarge(err error) bool {
	return errors.Is(err, kerr.MessageTooLarge) || errors.Is(err, kerr.RecordListTooLarge)
}

// deadLetterTooLarge forwards f's tier record, too large to re-feed to its
// main topic, to the DLQ of its ladder with reason too-large and without its
// value: its kretry-original-* headers say where the value still is (the
// main topic, while its retention keeps it), which is where kretry dlq
// replay reads it from.
func (s *session) deadLetterTooLarge(t tierOf, f *refeed) bool {
	rec, dlq, main := f.rec, t.ladder.DLQ(), t.ladder.Topic()
	md, _, _ := headers.Decode(rec.Headers) // read once already
	md = md.DeadLettered(headers.ReasonTooLarge, t.step.Name, time.Now())
	verb := "re-feed to"
	if f.parked {
		verb = "re-park in"
	}
	md.Error = fmt.Sprintf("value of %d bytes omitted, too large to %s %s (%v); it is in %s partition %d offset %d; last error: %s",
		len(rec.Value), verb, f.out.Topic, f.err, md.OriginalTopic, md.OriginalPartition, md.OriginalOffset, md.Error)
	out := &kgo.Record{
		Topic:     dlq,
		Partition: s.parts.Partition(context.Background(), dlq, rec.Partition),
		Key:       rec.Key,
		Headers:   headers.Encode(rec.Headers, md),
	}
	s.dirty.Store(true)
	if err := s.produce(out); err != nil {
		s.failed.Store(s.txn != nil)
		s.log.Error("kretry relay could not dead-letter a record too large to re-feed; it stays in its tier and is retried",
			"topic", rec.Topic, "partition", rec.Partition, "offset", rec.Offset, "dlq", dlq, "error", err)
		return false
	}
	s.r.metrics.Forwarded.WithLabelValues(main, metrics.TierDLQ).Inc()
	s.r.metrics.DeadLettered.WithLabelValues(main, string(headers.ReasonTooLarge), metrics.TierDLQ).Inc()
	s.r.metrics.TooLarge.WithLabelValues(main).Inc()
	s.hooks.DeadLettered(main, rec, &md, s.txn != nil)
	s.log.Error("kretry relay dead-lettered a record too large to re-feed, without its value, which stays in the main topic",
		"topic", rec.Topic, "partition", rec.Partition, "offset", rec.Offset, "to", main, "dlq", dlq, "value_bytes", len(rec.Value),
		"original_topic", safetext.Quoted(md.OriginalTopic), "original_partition", md.OriginalPartition, "original_offset", md.OriginalOffset,
		"error", f.err)
	return true
}

// deadLetter forwards rec, whose kretry headers cannot be read, to the DLQ
// of its ladder with reason invalid-metadata, at rec's partition (modulo the
// DLQ's partition count, as refeed), and waits for the acknowledgement.
func (s *session) deadLetter(ctx context.Context, t tierOf, rec *kgo.Record, decodeErr error) bool {
	dlq := t.ladder.DLQ()
	now := time.Now()
	// Where kretry found the record, its tier topic, is its first delivery.
	md := headers.Metadata{}.Failed(t.ladder.Group(), rec, now, "unreadable kretry headers: "+decodeErr.Error()).
		DeadLettered(headers.ReasonInvalidMetadata, t.step.Name, now)
	out := &kgo.Record{
		Topic:     dlq,
		Partition: s.parts.Partition(ctx, dlq, rec.Partition),
		Key:       rec.Key,
		Value:     rec.Value,
		Headers:   headers.Encode(rec.Headers, md),
	}
	s.dirty.Store(true)
	if err := s.produce(out); err != nil {
		s.failed.Store(s.txn != nil)
		s.log.Error("kretry relay could not dead-letter a record with unreadable kretry headers; it stays in its tier and is retried",
			"topic", rec.Topic, "partition", rec.Partition, "offset", rec.Offset, "dlq", dlq, "error", err)
		return false
	}
	s.r.metrics.Forwarded.WithLabelValues(t.ladder.Topic(), metrics.TierDLQ).Inc()
	s.r.metrics.DeadLettered.WithLabelValues(t.ladder.Topic(), string(headers.ReasonInvalidMetadata), metrics.TierDLQ).Inc()
	s.hooks.DeadLettered(t.ladder.Topic(), rec, &md, s.txn != nil)
	s.log.Warn("kretry relay dead-lettered a record with unreadable kretry headers",
		"topic", rec.Topic, "partition", rec.Partition, "offset", rec.Offset, "dlq", dlq, "error", decodeErr)
	return true
}

// produce writes rec and waits for its acknowledgement, bounded by the
// delivery timeout; shutdown does not cut it short, so that an acknowledged
// re-feed is also marked.
func (s *session) produce(rec *kgo.Record) error {
	ctx, cancel := context.WithTimeout(s.hard, s.r.cfg.deliveryTimeout)
	defer cancel()
	return s.prod.ProduceSync(ctx, rec).FirstErr()
}
