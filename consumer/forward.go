package consumer

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/headers"
	"github.com/kretry/kretry/internal/metrics"
)

// maxPending bounds the records decided but held behind an unacknowledged forward.
const maxPending = 1000

// pendingRecord is a record whose outcome is decided but not yet marked.
type pendingRecord struct {
	rec *kgo.Record
	fwd *pendingForward // nil: the record is done
}

// pendingQueue holds the pending records, oldest first, in a ring made
// once, of maxPending (hold settles them all once it is full): its records
// stay where they are until settled, and no record costs an allocation.
type pendingQueue struct {
	ring    []pendingRecord
	head, n int
}

func (q *pendingQueue) len() int { return q.n }

// at returns the i-th oldest pending record, i < q.len().
func (q *pendingQueue) at(i int) *pendingRecord {
	i += q.head
	if i >= len(q.ring) {
		i -= len(q.ring)
	}
	return &q.ring[i]
}

// push appends p as the newest.
func (q *pendingQueue) push(p pendingRecord) {
	if q.n == len(q.ring) { // the first push, or a ring hold did not settle
		ring := make([]pendingRecord, max(maxPending, 2*q.n))
		for i := range q.n {
			ring[i] = *q.at(i)
		}
		q.ring, q.head = ring, 0
	}
	*q.at(q.n) = p
	q.n++
}

// pop drops the oldest.
func (q *pendingQueue) pop() {
	*q.at(0) = pendingRecord{}
	q.head++
	if q.head == len(q.ring) {
		q.head = 0
	}
	q.n--
}

// clear drops them all.
func (q *pendingQueue) clear() {
	clear(q.ring)
	q.head, q.n = 0, 0
}

// pendingForward is a record's forward to a retry tier or the DLQ, produced
// and not yet settled. One acknowledged without error is recycled
// (worker.free, Consumer.forwards): kgo does not touch a record once its
// promise has run.
type pendingForward struct {
	out  kgo.Record
	md   headers.Metadata // out's, for the metrics and log line once acked
	done atomic.Bool      // set by out's promise, after err
	err  error

	acks    chan struct{}            // the worker's: signalled by promise
	promise func(*kgo.Record, error) // f.ack, made once
	enc     headers.Encoder          // out.Headers' storage, when forward wrote them
}

// newForward returns a pendingForward for w, recycled when one is free: the
// worker's newest, else one of the consumer's.
func (w *worker) newForward() *pendingForward {
	var f *pendingForward
	if n := len(w.free); n > 0 {
		f = w.free[n-1]
		w.free[n-1] = nil
		w.free = w.free[:n-1]
	} else if f, _ = w.s.c.forwards.Get().(*pendingForward); f == nil {
		f = &pendingForward{}
		f.promise = f.ack
	}
	f.acks = w.acks
	return f
}

// spillFree gives the worker's free forwards to the consumer's pool, which
// the GC trims: an idle worker keeps none.
func (w *worker) spillFree() {
	for i, f := range w.free {
		w.s.c.forwards.Put(f)
		w.free[i] = nil
	}
	w.free = w.free[:0]
}

// recycle gives f back once its forward is settled, acknowledged without
// error (a failed one may still be produced again), dropping its references
// into the record it forwarded (the fetched batch); what it keeps is
// overwritten by its next forward.
func (w *worker) recycle(f *pendingForward) {
	if f.err != nil || !f.done.Load() {
		return
	}
	f.out.Key, f.out.Value, f.out.Headers, f.out.Context = nil, nil, nil, nil
	f.md.Error, f.acks = "", nil // any length; the worker
	f.enc.Reset()
	f.done.Store(false)
	w.free = append(w.free, f)
}

// ack is f's produce promise.
func (f *pendingForward) ack(_ *kgo.Record, err error) {
	f.err = err
	acks := f.acks // read before done: once done is set, f may be recycled
	f.done.Store(true)
	select {
	case acks <- struct{}{}:
	default: // a signal is already waiting
	}
}

// forward starts producing rec's key, value and user headers with f.md, the
// next hop's metadata (f from newForward), to topic, at rec's partition
// modulo topic's count, and holds rec until the forward is acknowledged;
// false: stopped while settling, mark nothing more.
func (w *worker) forward(rec *kgo.Record, topic string, f *pendingForward) bool {
	if w.attempt != nil {
		w.traceForward(&f.md)
	}
	f.out = kgo.Record{
		Topic:     topic,
		Partition: w.s.partitions.Partition(w.ctx, topic, rec.Partition),
		Key:       rec.Key,
		Value:     rec.Value,
		Headers:   f.enc.Encode(rec.Headers, f.md),
		Timestamp: f.md.LastFailureAt,
	}
	return w.send(rec, f)
}

// send produces f, rec's forward, and holds rec until f is acknowledged.
func (w *worker) send(rec *kgo.Record, f *pendingForward) bool {
	w.s.cl.Produce(w.ctx, &f.out, f.promise)
	return w.hold(pendingRecord{rec: rec, fwd: f})
}

// hold appends p to the pending records, settling them all once there are
// maxPending: a slow ack holds up its partition rather than pile records up.
func (w *worker) hold(p pendingRecord) bool {
	w.pending.push(p)
	if w.pending.len() >= maxPending {
		return w.settle(true)
	}
	return true
}

// settle marks the pending records from the oldest on while each is done;
// with block it waits for every forward in flight, without it stops at the
// first unacknowledged one. A failed forward is produced again (reforward);
// false: stopped first, that record and those after it stay unmarked.
func (w *worker) settle(block bool) bool {
	if w.pending.len() > 0 {
		w.endRun()
	}
	for w.pending.len() > 0 {
		p := w.pending.at(0)
		if f := p.fwd; f != nil {
			if !f.done.Load() && !block {
				return true
			}
			acked := w.waitAck(f)
			if !acked {
				w.s.log.Error("kretry forward not acknowledged within the grace period; the record is not committed and will be handled again",
					"topic", p.rec.Topic, "partition", p.rec.Partition, "offset", p.rec.Offset, "to", f.out.Topic)
			}
			if f.err != nil {
				w.s.c.health.Wrote(w.tp.topic, w.tp.partition, f.err)
			}
			if !acked || f.err != nil && !w.reforward(p, f.err) {
				w.flushMarks()
				// The later forwards get what is left of the grace period.
				for i := 1; i < w.pending.len(); i++ {
					if q := w.pending.at(i); q.fwd != nil && !w.waitAck(q.fwd) {
						break
					}
				}
				w.pending.clear()
				return false
			}
			w.s.c.health.Wrote(w.tp.topic, w.tp.partition, nil)
			w.forwarded(p)
			w.recycle(f)
		}
		w.markLater(p.rec)
		w.pending.pop()
	}
	if block {
		w.flushMarks()
	}
	return true
}

// waitAck waits for f's promise; false: the grace period ran out first.
func (w *worker) waitAck(f *pendingForward) bool {
	for !f.done.Load() {
		select {
		case <-w.acks:
		case <-w.ctx.Done():
			return f.done.Load()
		}
	}
	return true
}

// forwarded counts and logs p's acknowledged forward: a dead letter when it
// has a reason, a retry otherwise.
func (w *worker) forwarded(p *pendingRecord) {
	rec, md, m := p.rec, &p.fwd.md, w.s.c.metrics
	if md.Reason != "" {
		m.Forwarded.WithLabelValues(rec.Topic, metrics.TierDLQ).Inc()
		dlqLabel := metrics.TierDLQ
		if md.Route != "" {
			dlqLabel = md.Route // a name from the config: bounded
		}
		m.DeadLettered.WithLabelValues(rec.Topic, string(md.Reason), dlqLabel).Inc()
		if md.Reason == headers.ReasonTooLarge {
			m.TooLarge.WithLabelValues(rec.Topic).Inc()
		}
		m.Records.WithLabelValues(rec.Topic, metrics.OutcomeDeadLettered).Inc()
		w.s.log.Info("kretry record dead-lettered",
			"topic", rec.Topic, "partition", rec.Partition, "offset", rec.Offset,
			"tier", md.Tier, "dlq", p.fwd.out.Topic, "route", md.Route, "reason", string(md.Reason), "attempt", md.Attempts, "error", logText(md.Error))
		w.s.hooks.DeadLettered(rec.Topic, rec, md, w.txn)
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
	// Hot path: box the values only when the line is wanted.
	if w.s.log.Enabled(context.Background(), slog.LevelInfo) {
		w.s.log.Info("kretry record forwarded to a retry tier",
			"topic", rec.Topic, "partition", rec.Partition, "offset", rec.Offset,
			"tier", md.Tier, "attempt", md.Attempts, "due_at", md.DueAt, "error", md.Error)
	}
}

// logTextLen bounds the text of a record's header in a log line.
const logTextLen = 256

// logText is header text s for a log line: cut at logTextLen bytes, control
// characters and invalid bytes escaped as Go quotes them, so that no record
// forges log lines or drives a terminal; the slog handler adds the quotes.
func logText(s string) string {
	if len(s) > logTextLen {
		s = strings.ToValidUTF8(s[:logTextLen], "") + "..."
	}
	q := strconv.Quote(s)
	return q[1 : len(q)-1]
}
