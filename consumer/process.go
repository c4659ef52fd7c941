package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/internal/metrics"
	"github.com/kretry/kretry/retrytopics"
)

// Backoff of a forward that the broker refused: it is retried in place, so
// the handler does not run again, and nothing after it on the partition is
// marked before it is acknowledged.
const (
	forwardBackoffMin = 100 * time.Millisecond
	forwardBackoffMax = 10 * time.Second
)

// process takes one record to its outcome: handled, skipped, discarded, or
// forwarded to a retry tier or the DLQ and acknowledged; then it marks the
// record's offset for commit. It returns false, with the record unmarked,
// when the worker was stopped before the outcome was durable.
func (w *worker) process(rec *kgo.Record) bool {
	s := w.s
	topic := rec.Topic
	// The handler call starts where the previous one ended, when nothing
	// came between them but the worker's own bookkeeping (see handlerEnd).
	start := w.handlerEnd
	w.handlerEnd = 0
	md, hasMD, err := retrytopics.Decode(rec.Headers)
	if hasMD {
		start = 0 // decoding kretry headers is not the handler's time
	}
	if err != nil {
		return w.deadLetter(rec, retrytopics.Metadata{}, retrytopics.ReasonInvalidMetadata,
			"unreadable kretry headers: "+err.Error())
	}
	if hasMD && md.Group != "" && md.Group != s.c.cfg.Group {
		// Another group's retry, re-fed to the topic we share with it.
		s.c.metrics.Records.WithLabelValues(topic, metrics.OutcomeSkipped).Inc()
		return w.mark(rec)
	}
	if maxAge := w.maxAge; maxAge > 0 {
		start = 0
		born := rec.Timestamp
		if md.Group != "" && md.Attempts > 0 {
			// A retry: as old as its first delivery. A record replayed
			// from the DLQ (no attempt yet) starts a new life.
			born = md.OriginalTimestamp
		}
		if age := time.Since(born); age > maxAge {
			return w.deadLetter(rec, md, retrytopics.ReasonExpired, withLastError(
				fmt.Sprintf("record is %v old, older than max_age %v", age.Truncate(time.Millisecond), maxAge), md))
		}
	}

	// What is forwarded and marked is what arrived, whatever fields of rec
	// the handler set (a copy on the stack: this runs for every record).
	arrived := *rec
	if w.txn && w.refused != nil {
		// Exactly once: a transaction aborted because a write of this
		// record was refused for good; do now what the refusal decided,
		// without handling the record again, rather than abort for ever.
		if r, ok := w.refused[rec.Offset]; ok {
			delete(w.refused, rec.Offset)
			if r.fwd != nil {
				return w.forwardAgain(rec, r.fwd)
			}
			return w.failed(rec, md, r.outputErr)
		}
	}
	w.emit.start()
	herr, panicked := w.handle(rec, start)
	if emitted := w.emit.finish(); len(emitted) > 0 && herr == nil {
		// The outputs of a successful call; a failed call's are dropped.
		w.handlerEnd = 0
		if herr = w.produceEmitted(emitted); herr != nil && w.txn && refused(herr) {
			w.refuse(rec.Offset, refusedWrite{outputErr: herr})
		}
	}
	if herr == nil {
		// Marking reads these fields only. Copying all of rec back would
		// cost a write barrier per pointer while the GC runs.
		rec.Topic, rec.Partition, rec.LeaderEpoch, rec.Offset = arrived.Topic, arrived.Partition, arrived.LeaderEpoch, arrived.Offset
		w.handledN++
		return w.mark(rec)
	}
	*rec = arrived
	switch {
	case panicked:
		return w.deadLetter(rec, md, retrytopics.ReasonPanic, herr.Error())
	case w.ctx.Err() != nil:
		// Cancelled by us (revoke or shutdown): not the record's failure.
		s.log.Info("kretry handler stopped by cancellation; the record will be delivered again",
			"topic", topic, "partition", rec.Partition, "offset", rec.Offset, "error", herr)
		return false
	}

	return w.failed(rec, md, herr)
}

// failed takes rec, whose handling failed with herr, to its next tier or the
// DLQ as the classifier decides.
func (w *worker) failed(rec *kgo.Record, md retrytopics.Metadata, herr error) bool {
	s, topic := w.s, rec.Topic
	var expiry time.Time // when the record passes max_age (see process); zero: no max_age
	if w.maxAge > 0 {
		born := rec.Timestamp
		if md.Group != "" && md.Attempts > 0 {
			born = md.OriginalTimestamp
		}
		expiry = born.Add(w.maxAge)
	}
	switch d := w.classify(rec, herr); d {
	case Discard:
		s.c.metrics.Records.WithLabelValues(topic, metrics.OutcomeDiscarded).Inc()
		s.log.Info("kretry record discarded", "topic", topic, "partition", rec.Partition, "offset", rec.Offset,
			"error", herr)
		return w.mark(rec)
	case DeadLetter:
		return w.deadLetter(rec, md, retrytopics.ReasonPermanent, herr.Error())
	}
	failure := 1
	if md.Group != "" {
		failure = md.Attempts + 1
	}
	step, ok := w.ladder.For(failure)
	if !ok {
		return w.deadLetter(rec, md, retrytopics.ReasonExhausted, herr.Error())
	}
	now := time.Now()
	if due := now.Add(step.Delay); !expiry.IsZero() && due.After(expiry) {
		// Waiting a tier would only end in the DLQ as expired.
		return w.deadLetter(rec, md, retrytopics.ReasonExpired, fmt.Sprintf(
			"the next attempt, due at %s after %s, would be past max_age %v; last error: %s",
			retrytopics.FormatTime(due), step.Name, w.maxAge, herr.Error()))
	}
	next := w.nextMetadata(rec, md, now, herr.Error())
	next.Tier = step.Name
	next.DueAt = now.Add(step.Delay)
	return w.forward(rec, step.Topic, next)
}

// handle runs the handler, recovering a panic into an error whose text is
// "panic: " and the panic's value. start is when the call starts on the
// worker's clock (w.since), or 0 to read the clock now.
func (w *worker) handle(rec *kgo.Record, start time.Duration) (err error, panicked bool) {
	if start == 0 {
		start = w.since()
	}
	defer func() {
		end := w.since()
		w.durations.Observe(end - start)
		if v := recover(); v != nil {
			err, panicked = fmt.Errorf("panic: %v", v), true
			w.s.log.Error("kretry handler panicked", "topic", rec.Topic, "partition", rec.Partition,
				"offset", rec.Offset, "panic", fmt.Sprint(v), "stack", panicStack())
		} else if err == nil {
			w.handlerEnd = end
		}
	}()
	return w.s.c.handler.Handle(w.hctx, rec), false
}

// panicStack is the recovering goroutine's stack, cut to 4 KiB: where the
// panic happened is at its top.
func panicStack() string {
	st := debug.Stack()
	if len(st) > 4<<10 {
		st = append(st[:4<<10:4<<10], "..."...)
	}
	return string(st)
}

// classify runs the classifier; a panic or an unknown Decision is Retry.
func (w *worker) classify(rec *kgo.Record, herr error) (d Decision) {
	defer func() {
		if v := recover(); v != nil {
			w.s.log.Error("kretry classifier panicked; retrying the record", "topic", rec.Topic,
				"partition", rec.Partition, "offset", rec.Offset, "panic", fmt.Sprint(v))
			d = Retry
		}
	}()
	d = w.s.c.opts.classifier(herr)
	if d != Retry && d != DeadLetter && d != Discard {
		w.s.log.Error("kretry classifier returned an unknown decision; retrying the record", "decision", d,
			"topic", rec.Topic, "partition", rec.Partition, "offset", rec.Offset)
		d = Retry
	}
	return d
}

// deadLetter forwards rec to its ladder's DLQ with the reason and marks it.
func (w *worker) deadLetter(rec *kgo.Record, md retrytopics.Metadata, reason retrytopics.Reason, errText string) bool {
	now := time.Now()
	next := w.nextMetadata(rec, md, now, errText)
	next.Reason = reason
	next.DueAt = now
	// The tier the record came from, when it is one of the ladder's: a
	// record that never went through the ladder, or whose kretry-tier names
	// no tier kretry knows (forged, or from a ladder since changed), is in
	// the DLQ only.
	next.Tier = metrics.TierDLQ
	if _, known := w.ladder.StepByName(md.Tier); known {
		next.Tier = md.Tier
	}
	return w.forward(rec, w.ladder.DLQ(), next)
}

// forwarded counts p's forward, acknowledged, and logs it: a dead letter
// when its metadata has a reason, a forward to a retry tier otherwise.
func (w *worker) forwarded(p *pendingRecord) {
	rec, md, m := p.rec, &p.fwd.md, w.s.c.metrics
	if md.Reason != "" {
		m.Forwarded.WithLabelValues(rec.Topic, metrics.TierDLQ).Inc()
		m.DeadLettered.WithLabelValues(rec.Topic, string(md.Reason)).Inc()
		if md.Reason == retrytopics.ReasonTooLarge {
			m.TooLarge.WithLabelValues(rec.Topic).Inc()
		}
		m.Records.WithLabelValues(rec.Topic, metrics.OutcomeDeadLettered).Inc()
		w.s.log.Info("kretry record dead-lettered",
			"topic", rec.Topic, "partition", rec.Partition, "offset", rec.Offset,
			"tier", md.Tier, "dlq", w.ladder.DLQ(), "reason", string(md.Reason), "attempt", md.Attempts, "error", logText(md.Error))
		return
	}
	fwd := w.forwardedTo[md.Tier]
	if fwd == nil {
		if w.forwardedTo == nil {
			w.forwardedTo = make(map[string]prometheus.Counter)
			w.retried = m.Records.WithLabelValues(rec.Topic, metrics.OutcomeRetried)
		}
		fwd = m.Forwarded.WithLabelValues(rec.Topic, md.Tier)
		w.forwardedTo[md.Tier] = fwd
	}
	fwd.Inc()
	w.retried.Inc()
	// Every record retried passes here: box the log line's values only
	// when the logger wants it.
	if w.s.log.Enabled(context.Background(), slog.LevelInfo) {
		w.s.log.Info("kretry record forwarded to a retry tier",
			"topic", rec.Topic, "partition", rec.Partition, "offset", rec.Offset,
			"tier", md.Tier, "attempt", md.Attempts, "due_at", md.DueAt, "error", md.Error)
	}
}

// nextMetadata is the kretry metadata of rec after a failure at now: the
// failure is counted, the first delivery and the first failure are kept from
// md when rec came through the ladder, and taken from rec otherwise.
func (w *worker) nextMetadata(rec *kgo.Record, md retrytopics.Metadata, now time.Time, errText string) retrytopics.Metadata {
	next := retrytopics.Metadata{
		Group:         w.s.c.cfg.Group,
		LastFailureAt: now,
		Error:         errText,
		Replays:       md.Replays,
	}
	// md.Attempts is 0 without kretry headers and on a record replayed from
	// the DLQ; at its largest (2^31-1, what the header contract allows) it
	// stays there rather than pass what kretry's own readers accept.
	next.Attempts = min(md.Attempts, retrytopics.MaxAttempts-1) + 1
	// A record replayed from the DLQ to this group (kretry-group, no
	// attempt yet) keeps its first delivery across replays; its failures
	// start again.
	if md.Group != "" && md.OriginalTopic != "" {
		next.OriginalTopic = md.OriginalTopic
		next.OriginalPartition = md.OriginalPartition
		next.OriginalOffset = md.OriginalOffset
		next.OriginalTimestamp = md.OriginalTimestamp
	} else {
		next.OriginalTopic = rec.Topic
		next.OriginalPartition = rec.Partition
		next.OriginalOffset = rec.Offset
		next.OriginalTimestamp = rec.Timestamp
	}
	next.FirstFailureAt = now
	if md.Attempts > 0 {
		next.FirstFailureAt = md.FirstFailureAt
	}
	return next
}

// logTextLen bounds the text of a record's header in a log line.
const logTextLen = 256

// logText is s, which may hold text from a record's kretry headers (the
// last error of an earlier attempt), as a log line shows it: cut at
// logTextLen bytes, with every control character and invalid byte escaped
// as Go quotes them (\x1b, \r), so that no record can forge log lines or
// drive a terminal whatever the slog handler; the handler adds the quotes.
func logText(s string) string {
	if len(s) > logTextLen {
		s = strings.ToValidUTF8(s[:logTextLen], "") + "..."
	}
	q := strconv.Quote(s)
	return q[1 : len(q)-1]
}

// withLastError is errText followed by the last error md carries, if any:
// a record expired on its way through the ladder keeps the cause of its
// failures.
func withLastError(errText string, md retrytopics.Metadata) string {
	if md.Error == "" {
		return errText
	}
	return errText + "; last error: " + md.Error
}

// reforward produces p's forward again after it failed with err, waiting
// for each ack, with backoff, until it is acknowledged; false means the worker
// was stopped first. A forward the broker or the client can never accept (too
// large, not authorized) goes to the DLQ instead; when the DLQ refuses it too,
// Run stops with an error that names the record, which stays uncommitted.
func (w *worker) reforward(p *pendingRecord, err error) bool {
	rec := p.rec
	if w.txn {
		return w.reforwardInTxn(p, err)
	}
	backoff := forwardBackoffMin
	for try := 1; ; try++ {
		topic := p.fwd.out.Topic
		if w.ctx.Err() != nil || errors.Is(err, kgo.ErrClientClosed) {
			w.s.log.Error("kretry forward abandoned at stop; the record is not committed and will be handled again",
				"topic", rec.Topic, "partition", rec.Partition, "offset", rec.Offset, "to", topic, "error", err)
			return false
		}
		if refused(err) {
			// A record too large for its forward goes to the DLQ without
			// its value, which stays in the main topic.
			tooLarge := isTooLarge(err) && p.fwd.md.Reason != retrytopics.ReasonTooLarge
			if topic == w.ladder.DLQ() && !tooLarge {
				w.s.fail(fmt.Errorf("consumer: record %s/%d@%d cannot be written to the DLQ %s: %w: "+
					"grant the write (or raise the topic's max.message.bytes); "+
					"the record stays uncommitted", rec.Topic, rec.Partition, rec.Offset, topic, err))
				return false
			}
			w.redirectToDLQ(p, err, tooLarge)
			try, backoff = 0, forwardBackoffMin
			if err = w.s.cl.ProduceSync(w.ctx, &p.fwd.out).FirstErr(); err == nil {
				return true
			}
			continue
		}
		w.s.log.Error("kretry forward failed; the record is not committed and the forward is retried",
			"topic", rec.Topic, "partition", rec.Partition, "offset", rec.Offset, "to", topic,
			"try", try, "retry_in", backoff, "error", err)
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-w.ctx.Done():
			t.Stop()
			err = w.ctx.Err()
			continue
		}
		backoff = min(2*backoff, forwardBackoffMax)
		f := &p.fwd.out
		// A new timestamp: kgo counts the delivery timeout from it.
		again := &kgo.Record{Topic: f.Topic, Partition: f.Partition, Key: f.Key, Value: f.Value, Headers: f.Headers, Timestamp: time.Now()}
		if err = w.s.cl.ProduceSync(w.ctx, again).FirstErr(); err == nil {
			return true
		}
	}
}

// reforwardInTxn is reforward in exactly-once mode, where a failed produce
// dooms the open transaction: a forward refused for good is redirected to
// the DLQ (a record too large for its forward, without its value) as in
// at-least-once mode; any other failure, or a failed redirect, breaks the
// transaction, which aborts at its end, and the records are handled again.
// The record counts as done for the transaction; false means the worker was
// stopped first.
func (w *worker) reforwardInTxn(p *pendingRecord, err error) bool {
	rec, topic := p.rec, p.fwd.out.Topic
	if w.ctx.Err() != nil || errors.Is(err, kgo.ErrClientClosed) {
		return false
	}
	if refused(err) {
		tooLarge := isTooLarge(err) && p.fwd.md.Reason != retrytopics.ReasonTooLarge
		if topic == w.ladder.DLQ() && !tooLarge {
			w.s.fail(fmt.Errorf("consumer: record %s/%d@%d cannot be written to the DLQ %s: %w: "+
				"grant the write (or raise the topic's max.message.bytes); "+
				"the record stays uncommitted", rec.Topic, rec.Partition, rec.Offset, topic, err))
			return false
		}
		// The refusal may have doomed the transaction: the redirect to the
		// DLQ is made in the next one, without handling the record again.
		w.redirectToDLQ(p, err, tooLarge)
		w.refuse(rec.Offset, refusedWrite{fwd: p.fwd})
	}
	w.s.log.Error("kretry forward failed in a transaction; the transaction aborts and its records will be handled again",
		"topic", rec.Topic, "partition", rec.Partition, "offset", rec.Offset, "to", topic, "error", err)
	w.s.broken.Store(true)
	return w.ctx.Err() == nil
}

// refusedWrite is what a write refused for good in a transaction decided for
// its record, done in the next transaction: a forward to the DLQ (fwd), or
// the handling's failure because an output was refused (outputErr).
type refusedWrite struct {
	fwd       *pendingForward
	outputErr error
}

// refuse notes r for the record at offset, whose transaction aborts.
func (w *worker) refuse(offset int64, r refusedWrite) {
	if w.refused == nil {
		w.refused = make(map[int64]refusedWrite)
	}
	w.refused[offset] = r
}

// forwardAgain produces f's record (a redirect to the DLQ) again for rec.
func (w *worker) forwardAgain(rec *kgo.Record, f *pendingForward) bool {
	g := &pendingForward{out: f.out, md: f.md}
	g.out.Timestamp = time.Now() // kgo counts the delivery timeout from it
	return w.send(rec, g)
}

// refused reports whether a produce error is one that no retry can mend: the
// broker's (or the client's) non-retriable answers, such as a record larger
// than the topic or the client accepts, or a write the ACLs deny.
func refused(err error) bool {
	var ke *kerr.Error
	return errors.As(err, &ke) && !ke.Retriable
}

// isTooLarge reports whether a produce error says the record is larger than
// the topic (the broker) or the client's batch limit accepts.
func isTooLarge(err error) bool {
	return errors.Is(err, kerr.MessageTooLarge) || errors.Is(err, kerr.RecordListTooLarge)
}

// refusedErrorLen bounds the error text of a record redirected to the DLQ, so
// that a record refused for its size has the best chance to fit there.
const refusedErrorLen = 256

// redirectToDLQ turns p's refused forward into a dead letter with the
// refusal as its error: with reason permanent, or, when the record is too
// large for its forward (tooLarge), with reason too-large and without its
// value, which the record's kretry-original-topic, -partition and -offset
// point to in the main topic (dlq replay reads it from there).
func (w *worker) redirectToDLQ(p *pendingRecord, refusal error, tooLarge bool) {
	rec, to, md := p.rec, p.fwd.out.Topic, p.fwd.md
	f := p.fwd.out // the refused forward's promise has run: its record is ours again
	errText := fmt.Sprintf("forward to %s refused: %v; last error: %s", to, refusal, md.Error)
	md.Reason, md.DueAt = retrytopics.ReasonPermanent, md.LastFailureAt
	value := f.Value
	if tooLarge {
		md.Reason, value = retrytopics.ReasonTooLarge, nil
		errText = fmt.Sprintf("value of %d bytes omitted, too large for %s; it is in %s partition %d offset %d: %s",
			len(f.Value), to, md.OriginalTopic, md.OriginalPartition, md.OriginalOffset, errText)
	}
	if len(errText) > refusedErrorLen {
		errText = strings.ToValidUTF8(errText[:refusedErrorLen], "")
	}
	md.Error = errText
	p.fwd.out = kgo.Record{Topic: w.ladder.DLQ(), Partition: w.s.partitions.Partition(w.ctx, w.ladder.DLQ(), rec.Partition),
		Key: f.Key, Value: value, Headers: retrytopics.Encode(f.Headers, md), Timestamp: time.Now()}
	if tooLarge {
		w.s.log.Error("kretry record too large for its forward; dead-lettering it without its value, which stays in the main topic",
			"topic", rec.Topic, "partition", rec.Partition, "offset", rec.Offset, "to", to, "value_bytes", len(f.Value),
			"original_topic", logText(md.OriginalTopic), "original_partition", md.OriginalPartition, "original_offset", md.OriginalOffset,
			"error", refusal)
	} else {
		w.s.log.Error("kretry forward refused for good; dead-lettering the record instead",
			"topic", rec.Topic, "partition", rec.Partition, "offset", rec.Offset, "to", to, "error", refusal)
	}
	p.fwd.md = md
}
