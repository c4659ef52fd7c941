package consumer

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/config"
	"github.com/kretry/kretry/internal/metrics"
)

// The circuit breaker of a main topic (circuit_breaker): while too many of
// its records fail, the topic is not fetched and its records are not
// handled, so a dependency outage leaves them waiting on the main topic
// instead of draining them through the ladder into the DLQ.
//
// closed: outcomes are counted in breakerBuckets buckets over the window;
// at least min_records with a failed share ≥ failure_ratio opens it.
// open: the topic's fetching is paused (kgo.PauseFetchTopics: every
// partition, those assigned later too), and each worker waits before its
// next record; a record whose handler failed while the breaker was open (or
// the failure that opened it) is not forwarded: it waits and is handled
// again. After open_for: half-open, fetching resumes and half_open_records
// records are let through; as many successes close it, a failure opens it
// again, and the probe that failed takes the ladder like any failure, not
// held again: a record that fails whatever the dependency does (a bad
// record the classifier retries) would otherwise fail every probe, and the
// topic would never move again. A revoked partition's worker stops waiting
// at once and its records stay uncommitted for their next owner: the
// breaker holds no partition past a rebalance, and drops no record. In
// exactly-once mode a worker does not wait while the breaker is open: it
// gives its records back (giveBack).

const breakerBuckets = 10

// Circuit states, the values of kretry_circuit_state.
const (
	circuitClosed   = 0
	circuitOpen     = 1
	circuitHalfOpen = 2
)

type breaker struct {
	topic string
	cfg   config.CircuitBreaker
	log   *slog.Logger
	gauge prometheus.Gauge
	opens prometheus.Counter

	mu      sync.Mutex
	cl      *kgo.Client // set by Run; nil: nothing to pause
	state   int
	buckets [breakerBuckets]breakerBucket
	probes  int // half-open: records let through
	probeOK int // half-open: of which succeeded
	changed chan struct{}
	timer   *time.Timer
	reason  string
}

type breakerBucket struct {
	start      time.Time
	ok, failed int
}

func newBreaker(topic string, cfg config.CircuitBreaker, log *slog.Logger, m *metrics.Metrics) *breaker {
	b := &breaker{topic: topic, cfg: cfg, log: log, changed: make(chan struct{}),
		gauge: m.CircuitState.WithLabelValues(topic), opens: m.CircuitOpened.WithLabelValues(topic)}
	b.gauge.Set(circuitClosed)
	return b
}

// start gives the breaker the client whose fetching it pauses: Run's, and
// each new session's after a fenced one (see Run), whose client starts
// paused when the breaker is open.
func (b *breaker) start(cl *kgo.Client) {
	b.mu.Lock()
	b.cl = cl
	if b.state == circuitOpen {
		cl.PauseFetchTopics(b.topic)
	}
	b.mu.Unlock()
}

// stop stops its timer at the end of Run.
func (b *breaker) stop() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.timer != nil {
		b.timer.Stop()
	}
	b.cl = nil
}

// tryAdmit reports whether a record may be handled now (probe: as one of
// the half-open's); when not, ch is closed at the next state change, and
// open says whether the breaker is open (else half-open, its probes out).
func (b *breaker) tryAdmit() (probe bool, ch <-chan struct{}, pass, open bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.state == circuitClosed:
		return false, nil, true, false
	case b.state == circuitHalfOpen && b.probes < b.cfg.Probes():
		b.probes++
		return true, nil, true, false
	}
	return false, b.changed, false, b.state == circuitOpen
}

// release gives back a half-open probe whose outcome will not be counted
// (its handler was cancelled by a revoke or shutdown, or the classifier
// discarded its error), so that another record probes in its place: else
// the breaker could stay half-open with every probe gone, its records
// waiting for good.
func (b *breaker) release(probe bool) {
	if b == nil || !probe {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state == circuitHalfOpen && b.probes > 0 {
		b.probes--
		b.signal()
	}
}

// result counts a handled record's outcome; hold: the record failed while
// the breaker is (or by this failure became) open, and must wait.
func (b *breaker) result(now time.Time, failed, probe bool) (hold bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch b.state {
	case circuitOpen:
		return failed
	case circuitHalfOpen:
		switch {
		case failed:
			b.open(now, "a half-open probe failed")
			return !probe // a failed probe is not held again: see the package doc
		case probe:
			if b.probeOK++; b.probeOK >= b.cfg.Probes() {
				b.close()
			}
		}
		return false
	}
	width := max(b.cfg.Window/breakerBuckets, time.Millisecond)
	i := int(now.UnixNano()/int64(width)) % breakerBuckets
	bk := &b.buckets[i]
	if start := now.Truncate(width); !bk.start.Equal(start) {
		*bk = breakerBucket{start: start}
	}
	if failed {
		bk.failed++
	} else {
		bk.ok++
	}
	if !failed {
		return false
	}
	var ok, bad int
	for _, x := range b.buckets {
		if now.Sub(x.start) < b.cfg.Window {
			ok, bad = ok+x.ok, bad+x.failed
		}
	}
	if n := ok + bad; n >= b.cfg.MinRecords && float64(bad) >= b.cfg.FailureRatio*float64(n) {
		b.open(now, fmt.Sprintf("%d of %d records failed in the last %v (failure_ratio %v)", bad, n, b.cfg.Window, b.cfg.FailureRatio))
		return true
	}
	return false
}

// open opens the breaker: b.mu held.
func (b *breaker) open(now time.Time, why string) {
	b.state, b.reason = circuitOpen, why
	b.gauge.Set(circuitOpen)
	b.opens.Inc()
	if b.cl != nil {
		b.cl.PauseFetchTopics(b.topic)
	}
	if b.timer != nil {
		b.timer.Stop()
	}
	b.timer = time.AfterFunc(b.cfg.OpenFor, b.halfOpen)
	b.signal()
	b.log.Warn("kretry circuit breaker open: the topic is not fetched nor handled; its records wait", "topic", b.topic,
		"why", why, "open_for", b.cfg.OpenFor)
}

func (b *breaker) halfOpen() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state != circuitOpen || b.cl == nil {
		return
	}
	b.state, b.probes, b.probeOK = circuitHalfOpen, 0, 0
	b.gauge.Set(circuitHalfOpen)
	b.cl.ResumeFetchTopics(b.topic)
	b.signal()
	b.log.Info("kretry circuit breaker half-open: letting a few records through", "topic", b.topic, "probes", b.cfg.Probes())
}

// close closes the breaker: b.mu held.
func (b *breaker) close() {
	b.state, b.reason = circuitClosed, ""
	b.buckets = [breakerBuckets]breakerBucket{}
	b.gauge.Set(circuitClosed)
	b.signal()
	b.log.Info("kretry circuit breaker closed", "topic", b.topic)
}

func (b *breaker) signal() {
	close(b.changed)
	b.changed = make(chan struct{})
}

// openReason is why the breaker is not closed, or "".
func (b *breaker) openReason() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch b.state {
	case circuitOpen:
		return "topic " + b.topic + ": " + b.reason
	case circuitHalfOpen:
		return "topic " + b.topic + ": half-open after " + b.reason
	}
	return ""
}

// admit waits until the worker may handle rec, the partition's first
// record not done; ok false: stopped. It settles and marks what is done
// before it waits. In exactly-once mode it does not wait: admitted false,
// rec and the records queued after it were given back (giveBack).
func (w *worker) admit(rec *kgo.Record) (probe, admitted, ok bool) {
	b := w.breaker
	if b == nil {
		return false, true, true
	}
	for {
		probe, ch, pass, open := b.tryAdmit()
		if pass {
			return probe, true, true
		}
		if !w.settle(true) {
			return false, false, false
		}
		w.handlerEnd = 0
		// Half-open, the probes are handler calls in flight: a transaction
		// may wait for them as for any handler.
		if w.txn && open {
			w.giveBack(rec)
			return false, false, true
		}
		w.spillFree() // idle until the breaker lets records through
		select {
		case <-ch:
		case <-w.quit:
			return false, false, false
		}
	}
}

// errHeldBack is the error of a traced attempt the breaker kept from its
// handler.
var errHeldBack = errors.New("the circuit breaker is open: the record is delivered again later")

// heldBack marks the traced attempt of a record the breaker kept from its
// handler (stopped or given back while it was open) as cancelled, with herr
// or errHeldBack: not handled, delivered again.
func (w *worker) heldBack(herr *error) {
	if w.attempt == nil {
		return
	}
	w.attempt.outcome = OutcomeCancelled
	if *herr == nil {
		*herr = errHeldBack
	}
}

// giveBack is exactly-once mode's wait for an open breaker: a transaction
// cannot wait open_for for a record, so rec (every record before it is done
// in the open transaction) and the records queued after it leave the
// transaction undone, and the poll goroutine rewinds the partition to rec
// (applyRewinds) before the transaction ends: its committed offset is rec's,
// and the records are fetched again once the breaker lets them through.
// Until the rewind, records handed to the worker are dropped: they are
// fetched again after it.
func (w *worker) giveBack(rec *kgo.Record) {
	w.mu.Lock()
	n := int64(1 + len(w.taken) + len(w.queue))
	clear(w.taken)
	w.taken = nil
	w.dropQueued()
	if w.paused {
		w.paused = false
		w.s.cl.ResumeFetchPartitions(map[string][]int32{w.tp.topic: {w.tp.partition}})
	}
	// Before the rewind is registered: applyRewinds clears it after.
	w.dropping = true
	w.undone.Add(-n)
	w.mu.Unlock()
	w.s.mu.Lock()
	if w.s.rewinds == nil {
		w.s.rewinds = map[*worker]kgo.EpochOffset{}
	}
	w.s.rewinds[w] = kgo.EpochOffset{Epoch: rec.LeaderEpoch, Offset: rec.Offset}
	w.s.mu.Unlock()
	w.s.recordsDone(n) // after the rewind is registered: the transaction may end now
}

// applyRewinds rewinds the partitions whose records were given back
// (giveBack) to the first of them; the poll goroutine, while no revoke can
// run, before the transaction ends. Fetching (when the breaker lets it)
// goes on from there, and the transaction commits that offset. An abort
// after it rewinds to the committed offsets, before these.
func (s *session) applyRewinds() {
	s.mu.Lock()
	rw := s.rewinds
	s.rewinds = nil
	s.mu.Unlock()
	if len(rw) == 0 {
		return
	}
	set := map[string]map[int32]kgo.EpochOffset{}
	for w, at := range rw {
		if set[w.tp.topic] == nil {
			set[w.tp.topic] = map[int32]kgo.EpochOffset{}
		}
		set[w.tp.topic][w.tp.partition] = at
	}
	s.cl.SetOffsets(set)
	for w := range rw {
		w.mu.Lock()
		w.dropping = false
		w.mu.Unlock()
	}
}
