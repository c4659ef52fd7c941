package consumer

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/internal/metrics"
	"github.com/kretry/kretry/retrytopics"
)

// maxPending bounds the records a worker has taken to an outcome but not yet
// marked, because a forward before them is still waiting for its ack.
const maxPending = 1000

// worker handles the records of one partition, in order, one at a time.
//
// Forwards are pipelined: a failed record's forward is produced without
// waiting, and the worker goes on with the next record. Marks are not: a
// record is marked only when it and every record before it on the partition
// is done (handled, or forwarded and acknowledged), so the committed offset
// never passes a record whose outcome is not durable.
type worker struct {
	s      *session
	tp     topicPartition
	ladder *retrytopics.Ladder
	maxAge time.Duration // the topic's max_age; 0: no limit

	mu          sync.Mutex
	queue       []*kgo.Record
	queuedBytes int
	paused      bool // this worker paused the partition's fetching
	exited      bool // exactly once: run has returned; enqueue takes nothing more

	// txn is set in exactly-once mode: undone counts this worker's records
	// of the open transaction not yet done (see txnState).
	txn    bool
	undone atomic.Int64
	// refused holds, by offset, what a write refused for good decided for
	// its record, whose transaction then aborted (worker goroutine only).
	refused map[int64]refusedWrite

	wake chan struct{} // cap 1: records were queued
	quit chan struct{} // closed by stop: take no new record

	// ctx is the handlers' and forwards' context: cancelled when the grace
	// period after stop runs out.
	ctx    context.Context
	cancel context.CancelFunc
	// hctx is ctx with emit, what Handle is called with (see Emit).
	hctx  context.Context
	emit  emitter
	timer *time.Timer
	done  chan struct{}

	// pending holds, in offset order, the records done or being forwarded
	// that wait for an earlier forward's ack before they are marked. Worker
	// goroutine only.
	pending []pendingRecord
	// acks is signalled (cap 1) after each forward's promise has run, for
	// settle to look at the oldest forward again.
	acks chan struct{}

	// unmarked is the newest done record not yet marked, one of nUnmarked
	// (nUnmarked: worker goroutine only); see markLater. The session's
	// flusher takes it too, every quarter commit interval, so that a handler
	// busy for long does not hold back the marks of the records before it.
	// markMu orders the two and, with finished, keeps the flusher from
	// marking once the worker has returned: its partition may be someone
	// else's by then.
	unmarked  atomic.Pointer[kgo.Record]
	nUnmarked int
	markMu    sync.Mutex
	finished  bool
	// handledN and durations are kretry_records_total{outcome="ok"} and
	// kretry_handler_duration_seconds observations not yet exported: added
	// in bursts by flushMarks, so that eight workers do not contend for one
	// counter's cache line on every record.
	handledN  int
	durations *metrics.DurationBatch

	// The metric series of every record, resolved once, and those of every
	// forward to a retry tier, resolved on the first (worker goroutine only).
	handled     prometheus.Counter
	retried     prometheus.Counter
	forwardedTo map[string]prometheus.Counter // kretry_forwarded_total by tier

	// clock0 anchors the worker's clock, since, on which handler calls are
	// timed. handlerEnd is when the last handler call returned nil, or 0 when
	// the worker has waited or worked since (flushed, settled, forwarded,
	// read a record's kretry headers, or found its queue empty or locked):
	// a call that follows straight on starts there, one clock read per
	// record instead of two. The worker's own bookkeeping it then counts as
	// the handler's is a fraction of a microsecond, far below the first
	// bucket's 0.5 ms. Worker goroutine only.
	clock0     time.Time
	handlerEnd time.Duration
}

// pendingRecord is a record whose outcome is decided but not yet marked.
type pendingRecord struct {
	rec *kgo.Record
	fwd *pendingForward // nil: the record is done
}

// pendingForward is a record's forward to a retry tier or the DLQ, produced
// and not yet settled.
type pendingForward struct {
	out kgo.Record
	// md is out's kretry metadata, which the forward's metrics and log line
	// come from once it is acknowledged.
	md retrytopics.Metadata
	// done is set by out's promise, after err.
	done atomic.Bool
	err  error
}

func newWorker(s *session, tp topicPartition, ladder *retrytopics.Ladder) *worker {
	ctx, cancel := context.WithCancel(s.base)
	w := &worker{
		s: s, tp: tp, ladder: ladder, maxAge: s.c.maxAge[tp.topic],
		wake: make(chan struct{}, 1),
		quit: make(chan struct{}),
		acks: make(chan struct{}, 1),
		ctx:  ctx, cancel: cancel,
		done: make(chan struct{}),

		handled:   s.c.metrics.Records.WithLabelValues(tp.topic, metrics.OutcomeOK),
		durations: s.c.metrics.HandlerDuration.Batch(tp.topic),
		clock0:    time.Now(),
	}
	w.hctx = context.WithValue(ctx, emitterKey{}, &w.emit)
	w.txn = s.txn != nil
	return w
}

// since is the time on the worker's clock: time.Since of a time that holds a
// monotonic reading reads the monotonic clock only, where time.Now reads the
// wall clock as well.
func (w *worker) since() time.Duration { return time.Since(w.clock0) }

// recordBytes is what a queued record costs, roughly.
func recordBytes(r *kgo.Record) int {
	n := len(r.Key) + len(r.Value)
	for _, h := range r.Headers {
		n += len(h.Key) + len(h.Value)
	}
	return n
}

// enqueue appends records fetched for the partition, pausing its fetching
// when the worker is far behind. It runs on the poll goroutine.
//
// In exactly-once mode the records count as the open transaction's until
// done; false means the worker has returned and took none of them.
func (w *worker) enqueue(recs []*kgo.Record) bool {
	o := &w.s.c.opts
	w.mu.Lock()
	if w.txn {
		if w.exited {
			w.mu.Unlock()
			return false
		}
		w.undone.Add(int64(len(recs)))
		w.s.undone.Add(int64(len(recs)))
	}
	w.queue = append(w.queue, recs...)
	for _, r := range recs {
		w.queuedBytes += recordBytes(r)
	}
	if !w.paused && (len(w.queue) >= o.pauseAt || w.queuedBytes >= o.pauseBytes) {
		w.paused = true
		w.s.cl.PauseFetchPartitions(map[string][]int32{w.tp.topic: {w.tp.partition}})
	}
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
	return true
}

// next returns the partition's next record, or false once the worker is
// stopped. Before it waits for more records it settles the forwards in
// flight, so that an idle partition's marks do not wait.
func (w *worker) next() (*kgo.Record, bool) {
	o := &w.s.c.opts
	for {
		select {
		case <-w.quit:
			return nil, false
		default:
		}
		if !w.mu.TryLock() {
			w.handlerEnd = 0 // waiting for the lock is not the handler's time
			w.mu.Lock()
		}
		if len(w.queue) > 0 {
			rec := w.queue[0]
			w.queue[0] = nil
			w.queue = w.queue[1:]
			w.queuedBytes -= recordBytes(rec)
			if w.paused && len(w.queue) <= o.resumeAt && w.queuedBytes <= o.pauseBytes/4 {
				w.paused = false
				w.s.cl.ResumeFetchPartitions(map[string][]int32{w.tp.topic: {w.tp.partition}})
				w.handlerEnd = 0
			}
			w.mu.Unlock()
			return rec, true
		}
		w.queue = nil // drop the drained backing array
		w.mu.Unlock()
		w.handlerEnd = 0
		w.flushMarks() // nothing more to do now: mark what is done
		if len(w.pending) > 0 {
			if !w.settle(true) {
				return nil, false
			}
			continue
		}
		select {
		case <-w.quit:
			return nil, false
		case <-w.wake:
		}
	}
}

func (w *worker) run() {
	defer close(w.done)
	defer func() {
		w.markMu.Lock()
		w.finished = true
		w.markMu.Unlock()
		if w.txn {
			// Records of the transaction left undone: it must abort.
			w.mu.Lock()
			w.exited = true
			left := w.undone.Swap(0)
			w.mu.Unlock()
			if left > 0 {
				w.s.broken.Store(true)
				w.s.recordsDone(left)
			}
		}
	}()
	// At stop, forwards in flight still get the grace period to be acked.
	defer w.settle(true)
	for {
		rec, ok := w.next()
		if !ok {
			return
		}
		if !w.process(rec) || !w.settle(false) {
			// The record is not done and is not marked, nor is anything
			// after it; the partition's next owner, or this consumer after
			// a restart, gets it again.
			return
		}
	}
}

// stop tells the worker to take no new record and cancels its context after
// grace, or now when grace is 0.
func (w *worker) stop(grace time.Duration) {
	close(w.quit)
	if grace <= 0 {
		w.cancel()
		return
	}
	w.timer = time.AfterFunc(grace, w.cancel)
}

// wait waits for a stopped worker to return.
func (w *worker) wait() {
	<-w.done
	if w.timer != nil {
		w.timer.Stop()
	}
	w.cancel()
}

// mark marks rec for commit once every record before it is done. false
// means the worker was stopped while settling earlier forwards: nothing more
// may be marked.
func (w *worker) mark(rec *kgo.Record) bool {
	if len(w.pending) == 0 {
		w.markLater(rec)
		return true
	}
	return w.hold(pendingRecord{rec: rec})
}

// hold appends p to the pending records, and settles them, waiting for the
// forwards in flight, once there are maxPending: a forward that is slow to
// be acknowledged holds up its partition rather than piling records up.
func (w *worker) hold(p pendingRecord) bool {
	w.pending = append(w.pending, p)
	if len(w.pending) >= maxPending {
		return w.settle(true)
	}
	return true
}

// forward starts producing rec's key, value and user headers, with md as its
// kretry headers, to topic at rec's partition (mod the topic's partition
// count, read again first when rec's partition is not below it: see
// partitions.Counts), with acks=all on the idempotent producer. rec is marked
// once the broker acknowledged the forward and every earlier record of the
// partition is done; the forward is counted and logged (see forwarded) when
// it is acknowledged. false means the worker was stopped while settling
// earlier forwards: nothing more may be marked.
func (w *worker) forward(rec *kgo.Record, topic string, md retrytopics.Metadata) bool {
	f := &pendingForward{
		out: kgo.Record{
			Topic:     topic,
			Partition: w.s.partitions.Partition(w.ctx, topic, rec.Partition),
			Key:       rec.Key,
			Value:     rec.Value,
			Headers:   retrytopics.Encode(rec.Headers, md),
			Timestamp: md.LastFailureAt,
		},
		md: md,
	}
	return w.send(rec, f)
}

// send produces f, rec's forward, and holds rec until f is acknowledged.
func (w *worker) send(rec *kgo.Record, f *pendingForward) bool {
	w.s.cl.Produce(w.ctx, &f.out, func(_ *kgo.Record, err error) {
		f.err = err
		f.done.Store(true)
		select {
		case w.acks <- struct{}{}:
		default: // a signal is already waiting
		}
	})
	return w.hold(pendingRecord{rec: rec, fwd: f})
}

// settle marks the pending records from the oldest on, as long as each is
// done: with block, it waits for every forward in flight; without, it stops
// at the first forward not yet acknowledged. A refused forward is produced
// again in place, with backoff, until it is acknowledged; false means the
// worker was stopped first, and the records from that one on stay unmarked.
func (w *worker) settle(block bool) bool {
	if len(w.pending) > 0 {
		w.handlerEnd = 0
	}
	for len(w.pending) > 0 {
		p := &w.pending[0]
		if f := p.fwd; f != nil {
			if !f.done.Load() && !block {
				return true
			}
			acked := w.waitAck(f)
			if !acked {
				w.s.log.Error("kretry forward not acknowledged within the grace period; the record is not committed and will be handled again",
					"topic", p.rec.Topic, "partition", p.rec.Partition, "offset", p.rec.Offset, "to", f.out.Topic)
			}
			if !acked || f.err != nil && !w.reforward(p, f.err) {
				w.flushMarks()
				// The later forwards' promises get the rest of the grace
				// period; a forward the broker has not acknowledged by
				// then is abandoned with its record uncommitted (a copy
				// acknowledged after all is a duplicate, never a loss),
				// so that a broker that does not answer cannot hold up a
				// revoke or a shutdown for longer than the grace period.
				for _, q := range w.pending[1:] {
					if q.fwd != nil && !w.waitAck(q.fwd) {
						break
					}
				}
				w.pending = nil
				return false
			}
			w.forwarded(p)
		}
		w.markLater(p.rec)
		w.pending[0] = pendingRecord{}
		w.pending = w.pending[1:]
	}
	w.pending = w.pending[:0] // what is left of the backing array, for the next ones
	if block {
		w.flushMarks()
	}
	return true
}

// waitAck waits for f's promise to have run; false means the worker's
// context ended first (the grace period after a stop ran out).
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

// markEvery bounds how many done records a worker leaves unmarked.
const markEvery = 256

// markLater notes rec, done, as the partition's newest record to mark. kgo
// keeps only the highest mark of a partition, so marking the newest of a
// run of done records marks them all, for one MarkCommitRecords (a sort and
// the group's lock) instead of one per record. The worker marks after
// markEvery records and whenever its queue is empty; the session's flusher
// marks on time (see flushOnTime).
func (w *worker) markLater(rec *kgo.Record) {
	if w.txn {
		w.undone.Add(-1)
		w.s.recordsDone(1)
	}
	w.unmarked.Store(rec)
	w.nUnmarked++
	if w.nUnmarked >= markEvery {
		w.flushMarks()
	}
}

// flushMarks marks the newest done record, if any is unmarked.
func (w *worker) flushMarks() {
	w.handlerEnd = 0
	if w.handledN > 0 {
		w.handled.Add(float64(w.handledN))
		w.handledN = 0
	}
	w.durations.Flush()
	w.nUnmarked = 0
	w.markUnmarked()
}

// markUnmarked marks the newest done record, if any is unmarked and the
// worker has not returned. It runs on the worker's goroutine and on the
// session's flusher.
func (w *worker) markUnmarked() {
	if w.unmarked.Load() == nil {
		return
	}
	w.markMu.Lock()
	defer w.markMu.Unlock()
	if rec := w.unmarked.Swap(nil); rec != nil && !w.finished {
		w.s.cl.MarkCommitRecords(rec)
	}
}
