package consumer

import (
	"context"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/config"
	"github.com/kretry/kretry/headers"
	"github.com/kretry/kretry/internal/metrics"
	"github.com/kretry/kretry/ladder"
)

// worker handles the records of one partition, in order, one at a time; see
// the implementation notes in doc.go.
type worker struct {
	s       *session
	tp      topicPartition
	ladder  *ladder.Ladder
	maxAge  time.Duration // the topic's max_age; 0: no limit
	breaker *breaker      // the topic's circuit breaker; nil: none

	mu          sync.Mutex
	queue       []*kgo.Record
	qarr        []*kgo.Record // queue's backing array from its start, len 0 (queueRecs)
	queuedBytes int
	// batches are the queue's records as enqueue got them, oldest first
	// from bhead: take counts the bytes it takes by batch, not by record.
	batches []queuedBatch
	bhead   int
	// taken are records next took off the queue, in order, not yet
	// handed out; worker goroutine only. Taking up to takeMax at a time
	// keeps w.mu off the per-record path.
	taken    []*kgo.Record
	hand     [takeMax]*kgo.Record // taken's backing array
	paused   bool                 // this worker paused the partition's fetching
	exited   bool                 // exactly once: run has returned; enqueue takes nothing more
	dropping bool                 // exactly once: records were given back (giveBack); enqueue drops until the rewind

	txn     bool                   // exactly-once mode
	undone  atomic.Int64           // records of the open transaction not yet done
	refused map[int64]refusedWrite // by offset: a refusal's decision, for after the abort

	wake    chan struct{} // cap 1: records were queued
	quit    chan struct{} // closed by stop: take no new record
	stopped atomic.Bool   // set by stop before it closes quit: next reads it per record

	ctx    context.Context // handlers' and forwards': cancelled when the grace period ends
	cancel context.CancelFunc
	hctx   context.Context // ctx with emit, what Handle is called with
	emit   emitter
	timer  *time.Timer
	done   chan struct{}

	// The forward pipeline (forward.go); worker goroutine only but acks.
	pending pendingQueue  // in offset order: decided, not yet marked
	acks    chan struct{} // cap 1: a forward's promise has run
	// free are the forwards recycled since the worker was last idle,
	// newest last: no more than it had in flight, taken without
	// sync.Pool's cost; spilled to Consumer.forwards when idle.
	free []*pendingForward

	// The marks (marks.go): the worker and the session's flusher take
	// unmarked; markMu orders them, finished stops the flusher once run
	// has returned.
	unmarked  atomic.Pointer[kgo.Record] // newest done record not yet marked
	nUnmarked int
	markMu    sync.Mutex
	finished  bool

	// Metrics, exported in bursts by flushMarks (handledN, durations) or
	// resolved once (the series); worker goroutine only.
	handledN    int
	durations   *metrics.DurationBatch
	handled     prometheus.Counter
	retried     prometheus.Counter
	forwardedTo map[string]prometheus.Counter // kretry_forwarded_total by tier

	// The handler's clock: handlerEnd is when the last call returned nil, or
	// 0 once the worker did anything else since; see handle. runN calls
	// since handlerEnd returned nil without a clock read (a run, observed
	// as one by observeRun); runMax is how many a run may take.
	clock0     time.Time
	handlerEnd time.Duration
	failedAt   time.Time // when the last call of the record in hand failed; zero: none
	runN       int
	runMax     int

	rnd *rand.Rand // jitter draws (jitterDraw); nil until the first

	// In-place retries (retryInPlace): the topic's, nil for none; the
	// classifier's decision on the last failure when it ended them.
	inPlace        *config.RetryInPlace
	inPlaceRetries int             // of the record in hand; reset per record
	inPlaceFirst   time.Time       // its first in-place failure
	dec            headers.Decoder // reads re-fed records' headers, reusing the strings they repeat
	info           Metadata        // what RecordMetadata returns for the record in hand
	infoCtx        context.Context // carries &info, for a record without a Context
	decided        bool
	decision       Decision
	attempt        *attemptTrace // the traced handler attempt (tracing.go); nil without a tracer
}

func newWorker(s *session, tp topicPartition, ladder *ladder.Ladder) *worker {
	ctx, cancel := context.WithCancel(s.base)
	w := &worker{
		s: s, tp: tp, ladder: ladder, maxAge: s.c.maxAge[tp.topic], inPlace: s.c.inPlace[tp.topic],
		breaker: s.c.breakers[tp.topic],
		wake:    make(chan struct{}, 1),
		quit:    make(chan struct{}),
		acks:    make(chan struct{}, 1),
		ctx:     ctx, cancel: cancel,
		done: make(chan struct{}),

		handled:   s.c.metrics.Records.WithLabelValues(tp.topic, metrics.OutcomeOK),
		durations: s.c.metrics.HandlerDuration.Batch(tp.topic),
		clock0:    time.Now(),
		runMax:    1,
	}
	w.hctx = context.WithValue(ctx, emitterKey{}, &w.emit)
	w.txn = s.c.cfg.ExactlyOnce // not s.txn: a callback may run before newClient sets it
	return w
}

// run takes the partition's records to their fates, in order, until stopped.
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
	defer w.spillFree()
	// At stop, forwards in flight still get the grace period to be acked.
	defer w.settle(true)
	for {
		rec, ok := w.next()
		if !ok {
			return
		}
		if !w.process(rec) || !w.settle(false) {
			// Neither it nor anything after it is marked: delivered again.
			return
		}
	}
}

// takeMax is the most records next takes off the queue under one lock. The
// queue's pause and resume thresholds count the records taken but not yet
// handed out as gone, so they are off by at most this many.
const takeMax = 256

// next returns the partition's next record, or false once the worker is
// stopped; before waiting it settles and marks what is in flight.
func (w *worker) next() (*kgo.Record, bool) {
	for {
		if w.stopped.Load() {
			return nil, false
		}
		if len(w.taken) > 0 {
			rec := w.taken[0]
			w.taken[0] = nil
			w.taken = w.taken[1:]
			return rec, true
		}
		if w.take() {
			continue
		}
		w.flushMarks() // nothing more to do now: mark what is done
		if w.pending.len() > 0 {
			if !w.settle(true) {
				return nil, false
			}
			continue
		}
		w.spillFree()
		select {
		case <-w.quit:
			return nil, false
		case <-w.wake:
		}
	}
}

// take moves up to takeMax queued records to taken, resuming the
// partition's fetching once the queue is short again; false: the queue is
// empty.
func (w *worker) take() bool {
	o := &w.s.c.opts
	if !w.mu.TryLock() {
		w.endRun() // waiting for the lock is not the handler's time
		w.mu.Lock()
	}
	n := copy(w.hand[:], w.queue)
	if n == 0 {
		w.queue = nil
		if cap(w.qarr) > keepQueue {
			w.qarr = nil // drop a large drained backing array
		}
		w.mu.Unlock()
		return false
	}
	w.taken = w.hand[:n]
	clear(w.queue[:n])
	w.queue = w.queue[n:]
	w.dequeueBytes(n)
	if w.paused && len(w.queue) <= o.resumeAt && w.queuedBytes <= o.pauseBytes/4 {
		w.paused = false
		w.endRun() // resuming is not the handler's time
		w.s.cl.ResumeFetchPartitions(map[string][]int32{w.tp.topic: {w.tp.partition}})
	}
	w.mu.Unlock()
	return true
}

// enqueue appends fetched records, pausing the partition when the worker is
// far behind; poll goroutine. false: exactly once, the worker has returned
// and took none of them.
func (w *worker) enqueue(recs []*kgo.Record) bool {
	o := &w.s.c.opts
	w.mu.Lock()
	if w.txn {
		if w.exited {
			w.mu.Unlock()
			return false
		}
		if w.dropping {
			w.mu.Unlock()
			return true // fetched again from the rewind (applyRewinds)
		}
		w.undone.Add(int64(len(recs)))
		w.s.undone.Add(int64(len(recs)))
	}
	w.queueRecs(recs)
	w.enqueueBytes(recs)
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

// keepQueue is the largest backing array, in records, that a drained queue
// keeps for the next records.
const keepQueue = 4096

// queueRecs appends recs to the queue, reusing its backing array: a drained
// queue starts again at its front, and one that would outgrow it moves to
// its front when that leaves at least half of it free. w.mu held.
func (w *worker) queueRecs(recs []*kgo.Record) {
	full := w.qarr[:cap(w.qarr)]
	switch need := len(w.queue) + len(recs); {
	case need <= cap(w.queue):
	case len(w.queue) == 0 && need <= len(full):
		w.queue = full[:0]
	case need <= len(full)/2:
		off := len(full) - cap(w.queue) // where the queue starts
		n := copy(full, w.queue)
		clear(full[n : off+n]) // what moved, and the nils before it
		w.queue = full[:n]
	}
	c := cap(w.queue)
	w.queue = append(w.queue, recs...)
	if cap(w.queue) != c { // a new backing array
		w.qarr = w.queue[:0]
	}
}

// queuedBatch is a batch of records enqueue queued: how many are still
// queued, and their bytes (recordBytes).
type queuedBatch struct{ n, bytes int }

// enqueueBytes adds the bytes of recs, just queued, to queuedBytes. w.mu held.
func (w *worker) enqueueBytes(recs []*kgo.Record) {
	if len(recs) == 0 {
		return
	}
	b := queuedBatch{n: len(recs)}
	for _, r := range recs {
		b.bytes += recordBytes(r)
	}
	w.queuedBytes += b.bytes
	w.batches = append(w.batches, b)
}

// dequeueBytes takes the bytes of the n oldest queued records off
// queuedBytes: whole batches exactly, part of one in proportion to its
// records, so that the queue's bytes are back to 0 once it is empty and no
// record's headers are read twice. w.mu held.
func (w *worker) dequeueBytes(n int) {
	for n > 0 && w.bhead < len(w.batches) {
		b := &w.batches[w.bhead]
		if n < b.n {
			part := b.bytes * n / b.n
			b.n, b.bytes = b.n-n, b.bytes-part
			w.queuedBytes -= part
			return
		}
		n -= b.n
		w.queuedBytes -= b.bytes
		w.bhead++
	}
	if w.bhead == len(w.batches) {
		w.batches, w.bhead = w.batches[:0], 0
	} else if w.bhead >= 64 && w.bhead > len(w.batches)/2 {
		k := copy(w.batches, w.batches[w.bhead:])
		w.batches, w.bhead = w.batches[:k], 0
	}
}

// dropQueued drops every queued record. w.mu held.
func (w *worker) dropQueued() {
	clear(w.queue)
	w.queue, w.queuedBytes = nil, 0
	w.batches, w.bhead = w.batches[:0], 0
}

// recordBytes is what a queued record costs, roughly.
func recordBytes(r *kgo.Record) int {
	n := len(r.Key) + len(r.Value)
	for _, h := range r.Headers {
		n += len(h.Key) + len(h.Value)
	}
	return n
}

// stop tells the worker to take no new record and cancels its context after
// grace, or now when grace is 0.
func (w *worker) stop(grace time.Duration) {
	w.stopped.Store(true)
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

// since is the time on the worker's clock, read from the monotonic clock only.
func (w *worker) since() time.Duration { return time.Since(w.clock0) }
