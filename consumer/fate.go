package consumer

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/headers"
	"github.com/kretry/kretry/internal/metrics"
	"github.com/kretry/kretry/internal/panics"
	"github.com/kretry/kretry/internal/safetext"
)

// process takes rec to its fate (handled, skipped, discarded, or forwarded to
// a tier or the DLQ) and marks it; false: stopped first, rec stays unmarked.
func (w *worker) process(rec *kgo.Record) bool {
	s := w.s
	topic := rec.Topic
	start := w.handlerEnd // see handle
	w.handlerEnd = 0
	w.inPlaceRetries = 0
	w.failedAt = time.Time{}
	var md headers.Metadata
	var mdErr error
	if hasKretryHeader(rec.Headers) { // a first delivery has none: nothing to decode or copy
		md, _, mdErr = w.dec.Decode(rec.Headers)
	}
	ours := mdErr == nil && (md.Group == "" || md.Group == s.c.cfg.Group)
	if w.runN > 0 && (w.maxAge > 0 || w.breaker != nil || w.refused != nil || !ours) {
		// The record may not reach the handler: the run of calls before
		// it ends here, whichever way it goes. (A retry of this group's
		// goes on with the run: decoding its headers is bookkeeping
		// between calls, as handle says.)
		now := w.since()
		w.observeRun(now - start)
		start = now
	}
	if mdErr != nil {
		return w.deadLetter(rec, headers.Metadata{}, headers.ReasonInvalidMetadata,
			"unreadable kretry headers: "+mdErr.Error())
	}
	if !ours {
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
			return w.deadLetter(rec, md, headers.ReasonExpired, withLastError(
				fmt.Sprintf("record is %v old, older than max_age %v", age.Truncate(time.Millisecond), maxAge), md))
		}
	}

	arrived := *rec // what is forwarded and marked, whatever the handler sets
	if w.txn && w.refused != nil {
		// A refusal of this record's write aborted the transaction: do what it decided.
		if r, ok := w.refused[rec.Offset]; ok {
			delete(w.refused, rec.Offset)
			if r.fwd != nil {
				return w.forwardAgain(rec, r.fwd)
			}
			return w.failed(rec, md, r.outputErr)
		}
	}
	if w.s.c.opts.tracer != nil {
		w.startAttempt(w.hctx, rec, md)
	}
	w.withInfo(rec, &md, "", time.Time{})
	var herr error
	var panicked bool
	if w.attempt != nil {
		defer func() { w.endAttempt(herr) }() // after the fate is decided
	}
	for {
		probe, admitted, ok := w.admit(rec)
		if !ok || !admitted {
			// Stopped while the breaker was open, or given back to it
			// (exactly once): delivered again.
			w.heldBack(&herr)
			return ok
		}
		herr, panicked = w.call(rec, start)
		if herr != nil && !panicked && w.inPlace != nil {
			var stopped bool
			if herr, panicked, stopped = w.retryInPlace(rec, &arrived, md, herr); stopped {
				w.breaker.release(probe)
				s.log.Info("kretry in-place retry stopped by a revoke or shutdown; the record will be delivered again",
					"topic", topic, "partition", rec.Partition, "offset", rec.Offset, "error", herr)
				return false
			}
		}
		if w.breaker == nil {
			break
		}
		if herr != nil && w.ctx.Err() != nil {
			w.breaker.release(probe) // the record is delivered again: no outcome
			break
		}
		if herr != nil && !panicked && !w.decided {
			w.decided, w.decision = true, w.classify(rec, herr)
		}
		if herr != nil && (panicked || w.decision != Retry) {
			// Discarded, dead-lettered or panicked: the record's fate, not
			// the dependency's; neither a failure nor a success.
			w.breaker.release(probe)
			break
		}
		if !w.breaker.result(time.Now(), herr != nil, probe) {
			break
		}
		// Failed while the breaker is open: not forwarded; handled again
		// once the breaker lets records through.
		*rec = arrived
		start, w.handlerEnd, w.decided = 0, 0, false
	}
	if herr == nil {
		// Marking reads these only; copying all of rec costs write barriers.
		rec.Topic, rec.Partition, rec.LeaderEpoch, rec.Offset = arrived.Topic, arrived.Partition, arrived.LeaderEpoch, arrived.Offset
		w.handledN++
		return w.mark(rec)
	}
	*rec = arrived
	switch {
	case panicked:
		return w.deadLetter(rec, md, headers.ReasonPanic, herr.Error())
	case w.ctx.Err() != nil:
		// Cancelled by us (revoke or shutdown): not the record's failure.
		s.log.Info("kretry handler stopped by cancellation; the record will be delivered again",
			"topic", topic, "partition", rec.Partition, "offset", rec.Offset, "error", herr)
		return false
	}

	return w.failed(rec, md, herr)
}

// call runs the handler once and produces the outputs of a successful call.
func (w *worker) call(rec *kgo.Record, start time.Duration) (herr error, panicked bool) {
	w.failedAt = time.Time{} // a failure of this call's outputs is now's
	w.emit.start()
	herr, panicked = w.handle(rec, start)
	if emitted := w.emit.finish(); len(emitted) > 0 && herr == nil {
		// The outputs of a successful call; a failed call's are dropped.
		w.endRun()
		if herr = w.produceEmitted(emitted); herr != nil && w.txn && refused(herr) {
			w.refuse(rec.Offset, refusedWrite{outputErr: herr})
		}
	}
	return herr, panicked
}

// retryInPlace calls the handler again on rec (restored to arrived) while
// herr is retried by the classifier, up to the topic's retry_in_place
// attempts, after each wait; it returns the last call's outcome. A
// RetryAfter longer than the next wait ends it (the ladder waits that long);
// stopped: a revoke or shutdown ended a wait, rec is to be left unmarked.
//
//lint:ignore ST1008 the error is the handler's, paired with panicked as call returns them, not a failure of retryInPlace
func (w *worker) retryInPlace(rec, arrived *kgo.Record, md headers.Metadata, herr error) (_ error, panicked, stopped bool) {
	r := w.inPlace
	for k := 1; k <= r.Attempts; k++ {
		failedAt := time.Now()
		if k == 1 {
			w.inPlaceFirst = failedAt
		}
		if w.ctx.Err() != nil {
			return herr, false, false // the caller's cancellation path
		}
		d := w.classify(rec, herr)
		if d != Retry {
			w.decided, w.decision = true, d
			return herr, false, false
		}
		wait := r.Wait(k)
		if after, ok := retryAfter(herr); ok && after > wait {
			return herr, false, false
		}
		if !w.sleep(wait) {
			return herr, false, true
		}
		*rec = *arrived
		w.handlerEnd = 0
		w.inPlaceRetries++
		w.withInfo(rec, &md, herr.Error(), failedAt)
		if herr, panicked = w.call(rec, 0); herr == nil || panicked {
			return herr, panicked, false
		}
	}
	return herr, false, false
}

// sleep waits d; false when the worker was stopped or cancelled first.
func (w *worker) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-w.quit:
	case <-w.ctx.Done():
	}
	return false
}

// handle runs the handler, recovering a panic into an error "panic: <value>".
// start is when the call starts on the worker's clock, or 0 to read it now: a
// call straight after a successful one starts at its end (handlerEnd); the
// bookkeeping between (a retry's header decode included) is far below 0.5
// ms, the first bucket. Calls that return nil back to back are timed in runs
// of up to runMax (observeRun): one clock read per run, not per call. A call
// that fails notes its end in failedAt, the failure's time.
func (w *worker) handle(rec *kgo.Record, start time.Duration) (err error, panicked bool) {
	if start == 0 {
		start = w.since()
	}
	defer func() {
		v := recover()
		w.runN++
		if v == nil && err == nil && w.runN < w.runMax {
			w.handlerEnd = start // the run goes on: timed when it ends
			return
		}
		var end time.Duration
		if v == nil && err == nil {
			end = w.since()
		} else {
			// One clock read for the call's end and the failure's time.
			w.failedAt = time.Now()
			end = w.failedAt.Sub(w.clock0)
		}
		w.observeRun(end - start)
		if v != nil {
			err, panicked = fmt.Errorf("panic: %v", v), true
			w.s.log.Error("kretry handler panicked", "topic", rec.Topic, "partition", rec.Partition,
				"offset", rec.Offset, "panic", fmt.Sprint(v), "stack", panics.Stack())
		} else if err == nil {
			w.handlerEnd = end
		}
	}()
	hctx := w.hctx
	if w.attempt != nil {
		hctx = w.attempt.ctx
	}
	return w.s.c.handler.Handle(hctx, rec), false
}

// Runs of handler calls (handle): a run grows, doubling up to maxRun calls,
// while it takes at most runBudget, and is back to one call as soon as one
// takes longer; so a run over the first bucket (0.5 ms), which observeRun
// cannot split exactly, takes a handler at least 16 times slower than the
// run before it.
const (
	maxRun    = 64
	runBudget = 500 * time.Microsecond / 16
)

// observeRun observes the runN calls of the run that took total.
func (w *worker) observeRun(total time.Duration) {
	n := w.runN
	w.runN = 0
	w.durations.ObserveRun(n, total)
	switch {
	case total > runBudget:
		w.runMax = 1
	case n >= w.runMax:
		w.runMax = min(2*w.runMax, maxRun)
	}
}

// endRun ends the handler's clock chain (handle) between records: the open
// run, if any, is observed as ending now.
func (w *worker) endRun() {
	if w.runN > 0 {
		w.observeRun(w.since() - w.handlerEnd)
	}
	w.handlerEnd = 0
}

// failed takes rec, whose handling failed with herr, to its next tier or the
// DLQ as the classifier decides.
func (w *worker) failed(rec *kgo.Record, md headers.Metadata, herr error) bool {
	s, topic := w.s, rec.Topic
	var expiry time.Time // when rec passes max_age; zero: no max_age
	if w.maxAge > 0 {
		born := rec.Timestamp
		if md.Group != "" && md.Attempts > 0 {
			born = md.OriginalTimestamp
		}
		expiry = born.Add(w.maxAge)
	}
	dec := w.decision
	if !w.decided {
		dec = w.classify(rec, herr)
	}
	w.decided = false
	switch dec {
	case Discard:
		s.c.metrics.Records.WithLabelValues(topic, metrics.OutcomeDiscarded).Inc()
		s.log.Info("kretry record discarded", "topic", topic, "partition", rec.Partition, "offset", rec.Offset,
			"error", herr)
		return w.mark(rec)
	case DeadLetter:
		return w.deadLetter(rec, md, headers.ReasonPermanent, herr.Error())
	}
	if route, ok := dec.Route(); ok {
		return w.deadLetterTo(rec, md, route, herr)
	}
	failure := 1
	if md.Group != "" {
		failure = md.Attempts + 1
	}
	step, ok := w.ladder.For(failure)
	if !ok {
		return w.deadLetter(rec, md, headers.ReasonExhausted, herr.Error())
	}
	wait, attempts := step.Delay, 0
	ra, after := retryAfter(herr)
	if !after && step.Jitter > 0 {
		wait = step.Wait(w.jitterDraw())
	}
	if after {
		// The first tier that waits d, unless the record is past it already.
		// A d longer than the tier's delay is kept: the relay re-parks the
		// record in its tier until it is due (up to the ladder's
		// retry_after_max, which it trusts).
		if to := w.ladder.AtLeast(ra); to.Index > step.Index {
			step = to
			attempts, _ = w.ladder.FirstFailure(to)
		}
		wait = ra
		if limit := w.ladder.RetryAfterMax(); ra > limit {
			wait = limit
			s.log.Warn("kretry RetryAfter asks for a wait longer than retry_after_max; the record waits retry_after_max",
				"topic", topic, "partition", rec.Partition, "offset", rec.Offset, "retry_after", ra, "retry_after_max", limit)
		}
	}
	now := w.failureTime()
	if due := now.Add(wait); !expiry.IsZero() && due.After(expiry) {
		// Waiting a tier would only end in the DLQ as expired.
		return w.deadLetter(rec, md, headers.ReasonExpired, fmt.Sprintf(
			"the next attempt, due at %s after %s, would be past max_age %v; last error: %s",
			headers.FormatTime(due), step.Name, w.maxAge, herr.Error()))
	}
	f := w.newForward()
	f.md = md.Failed(s.c.cfg.Group, rec, now, herr.Error()).InTier(step.Name, now.Add(wait))
	w.withInPlace(&md, &f.md)
	if attempts > 0 {
		f.md.Attempts = attempts // an attempt of the tier RetryAfter chose
	}
	return w.forward(rec, step.Topic, f)
}

// failureTime is when the record in hand failed: when its last handler call
// returned (failedAt), or now when it failed without one.
func (w *worker) failureTime() time.Time {
	if w.failedAt.IsZero() {
		return time.Now()
	}
	return w.failedAt
}

// jitterDraw returns u uniform in [0, 1) for a tier's jitter, from the
// worker's own source: seeded at random, or from WithJitterSeed in tests.
func (w *worker) jitterDraw() float64 {
	if w.rnd == nil {
		seed := rand.Uint64()
		if s := w.s.c.opts.jitterSeed; s != nil {
			seed = *s
		}
		w.rnd = rand.New(rand.NewPCG(seed, uint64(w.tp.partition)))
	}
	return w.rnd.Float64()
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
	if d == "" {
		return Retry
	}
	if _, route := d.Route(); d != Retry && d != DeadLetter && d != Discard && !route {
		w.s.log.Error("kretry classifier returned an unknown decision; retrying the record", "decision", d,
			"topic", rec.Topic, "partition", rec.Partition, "offset", rec.Offset)
		d = Retry
	}
	return d
}

// deadLetter forwards rec to its ladder's DLQ with the reason and marks it.
func (w *worker) deadLetter(rec *kgo.Record, md headers.Metadata, reason headers.Reason, errText string) bool {
	// The tier it came from, if the ladder has it (not forged or since removed).
	tier := metrics.TierDLQ
	if _, known := w.ladder.StepByName(md.Tier); known {
		tier = md.Tier
	}
	now := w.failureTime()
	f := w.newForward()
	f.md = md.Failed(w.s.c.cfg.Group, rec, now, errText).DeadLettered(reason, tier, now)
	w.withInPlace(&md, &f.md)
	return w.forward(rec, w.ladder.DLQ(), f)
}

// withInPlace adds to next the in-place retries of this delivery: counted
// after md's (if rec came through this group's ladder), saturating, and the
// first of them as the first failure of a record that had none.
func (w *worker) withInPlace(md, next *headers.Metadata) {
	if w.inPlaceRetries == 0 {
		return
	}
	n := 0
	if md.Group == w.s.c.cfg.Group && md.Attempts > 0 {
		n = md.InPlaceRetries
	} else {
		next.FirstFailureAt = w.inPlaceFirst
	}
	next.InPlaceRetries = min(n, headers.MaxAttempts-w.inPlaceRetries) + w.inPlaceRetries
}

// deadLetterTo forwards rec to the topic of its ladder's DLQ route, or to
// the DLQ, logged, when the ladder has no route of that name.
func (w *worker) deadLetterTo(rec *kgo.Record, md headers.Metadata, route string, herr error) bool {
	topic, ok := w.ladder.Route(route)
	if !ok {
		w.s.log.Error("kretry handler named a DLQ route its topic does not have; dead-lettering the record to the DLQ",
			"topic", rec.Topic, "partition", rec.Partition, "offset", rec.Offset, "route", logText(route),
			"routes", strings.Join(w.ladder.RouteNames(), ","), "dlq", w.ladder.DLQ())
		return w.deadLetter(rec, md, headers.ReasonPermanent, fmt.Sprintf("unknown DLQ route %q (not in dlq_routes of %s): %s",
			safetext.CutUTF8(route, 64), rec.Topic, herr.Error()))
	}
	tier := metrics.TierDLQ
	if _, known := w.ladder.StepByName(md.Tier); known {
		tier = md.Tier
	}
	now := w.failureTime()
	f := w.newForward()
	f.md = md.Failed(w.s.c.cfg.Group, rec, now, herr.Error()).DeadLettered(headers.ReasonPermanent, tier, now)
	f.md.Route = route
	w.withInPlace(&md, &f.md)
	return w.forward(rec, topic, f)
}

// hasKretryHeader says whether hs holds a header of kretry's contract, one
// that headers.Decode reads.
func hasKretryHeader(hs []kgo.RecordHeader) bool {
	for _, h := range hs {
		if strings.HasPrefix(h.Key, headers.HeaderPrefix) {
			return true
		}
	}
	return false
}

// withLastError appends md's last error, if any, to errText.
func withLastError(errText string, md headers.Metadata) string {
	if md.Error == "" {
		return errText
	}
	return errText + "; last error: " + md.Error
}
