package consumer

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/headers"
	"github.com/kretry/kretry/internal/metrics"
)

// DeadLetterHook is called in-process once a record's dead letter is
// written: for alerting, an incident ticket. See WithDeadLetterHook.
type DeadLetterHook func(ctx context.Context, rec *kgo.Record, reason headers.Reason, err error) error

// Dead-letter hook bounds: the calls waiting for the hook's goroutine, and
// how long one call's ctx lives.
const (
	deadLetterHookQueue   = 1024
	deadLetterHookTimeout = 30 * time.Second
)

// WithDeadLetterHook sets a function called once for every record the
// consumer dead-letters (to the DLQ or a DLQ route), after the dead letter
// is acknowledged by the broker; in exactly-once mode after the transaction
// that wrote it committed (a dead letter of an aborted transaction is not
// there: its record is handled again, and the hook called when it is
// dead-lettered for good). rec is a copy of the record as the handler got
// it (its main topic, partition and offset), reason the dead letter's
// kretry-reason, err its kretry-error text.
//
// The hook runs on a goroutine of its own, one call at a time, in the order
// the dead letters were acknowledged, never on a partition's: a slow hook
// holds up no record. Calls wait in a queue of 1024; when it is full, a dead
// letter's call is dropped, counted (kretry_dead_letter_hook_calls_total,
// result "dropped") and logged. A call's ctx ends after 30s, and at shutdown
// once the grace period (WithGracePeriod) is over; Run waits that long for
// the calls queued, then drops the rest (counted and logged) and returns,
// without waiting for a hook that ignores its ctx. An error returned or a
// panic is logged and counted; the record's fate is not changed by anything
// the hook does. The relay that Run runs (WithRelay) calls it too for the
// dead letters it writes itself (a tier record with unreadable kretry
// headers, invalid-metadata, or too large to re-feed, too-large), with the
// tier record as rec, on its own goroutine, as relay.WithDeadLetterHook
// says; the consumer's calls and the relay's are still one at a time. A
// relay run on its own (kretry relay) does not call it. Default: none.
func WithDeadLetterHook(h DeadLetterHook) Opt {
	return optionFunc(func(o *options) { o.deadLetterHook = h })
}

// deadLetterCall is one call of the hook.
type deadLetterCall struct {
	rec    kgo.Record
	reason headers.Reason
	text   string
}

// hookRunner calls the dead-letter hook on its own goroutine.
type hookRunner struct {
	c     *Consumer
	hook  DeadLetterHook
	queue chan deadLetterCall
	ctx   context.Context
	stop  context.CancelFunc
	done  chan struct{}

	mu      sync.Mutex
	closed  bool
	txnHeld []deadLetterCall // exactly once: the open transaction's, until it commits
}

func newHookRunner(c *Consumer, base context.Context) *hookRunner {
	if c.opts.deadLetterHook == nil {
		return nil
	}
	ctx, stop := context.WithCancel(base)
	h := &hookRunner{c: c, hook: c.opts.deadLetterHook, queue: make(chan deadLetterCall, c.opts.hookQueue),
		ctx: ctx, stop: stop, done: make(chan struct{})}
	go h.run()
	return h
}

// deadLettered queues the hook's call for rec's acknowledged dead letter; in
// exactly-once mode it is held until the transaction commits (txnEnded).
func (h *hookRunner) deadLettered(rec *kgo.Record, md *headers.Metadata, txn bool) {
	if h == nil {
		return
	}
	call := deadLetterCall{rec: *rec, reason: md.Reason, text: md.Error}
	if txn {
		h.mu.Lock()
		h.txnHeld = append(h.txnHeld, call)
		h.mu.Unlock()
		return
	}
	h.send(call)
}

// txnEnded queues the calls held for the transaction that ended, when it
// committed, and forgets them otherwise (its records are handled again).
func (h *hookRunner) txnEnded(committed bool) {
	if h == nil {
		return
	}
	h.mu.Lock()
	held := h.txnHeld
	h.txnHeld = nil
	h.mu.Unlock()
	if committed {
		for _, call := range held {
			h.send(call)
		}
	}
}

func (h *hookRunner) send(call deadLetterCall) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.closed {
		select {
		case h.queue <- call:
			return
		default:
		}
	}
	h.dropped(call, "the hook's queue is full (a slow hook)")
}

func (h *hookRunner) dropped(call deadLetterCall, why string) {
	h.c.metrics.DeadLetterHook.WithLabelValues(call.rec.Topic, metrics.HookDropped).Inc()
	h.c.opts.logger.Error("kretry dead-letter hook not called: "+why, "topic", call.rec.Topic,
		"partition", call.rec.Partition, "offset", call.rec.Offset, "reason", string(call.reason))
}

func (h *hookRunner) run() {
	defer close(h.done)
	for call := range h.queue {
		if h.ctx.Err() != nil {
			h.dropped(call, "the consumer stopped and the grace period is over")
			continue
		}
		h.call(call)
	}
}

// call runs the hook once, recovering a panic.
func (h *hookRunner) call(call deadLetterCall) {
	result := metrics.HookOK
	log := h.c.opts.logger
	defer func() {
		if v := recover(); v != nil {
			result = metrics.HookPanic
			log.Error("kretry dead-letter hook panicked; the record stays dead-lettered", "topic", call.rec.Topic,
				"partition", call.rec.Partition, "offset", call.rec.Offset, "panic", fmt.Sprint(v), "stack", panicStack())
		}
		h.c.metrics.DeadLetterHook.WithLabelValues(call.rec.Topic, result).Inc()
	}()
	ctx, cancel := context.WithTimeout(h.ctx, deadLetterHookTimeout)
	defer cancel()
	rec := call.rec
	if err := h.hook(ctx, &rec, call.reason, errors.New(call.text)); err != nil {
		result = metrics.HookError
		log.Error("kretry dead-letter hook failed; the record stays dead-lettered", "topic", call.rec.Topic,
			"partition", call.rec.Partition, "offset", call.rec.Offset, "error", err)
	}
}

// close lets the queued calls run within grace, then cancels the hook's ctx
// and drops what is left; it waits for the running call at most grace more.
func (h *hookRunner) close(grace time.Duration) {
	if h == nil {
		return
	}
	h.mu.Lock()
	h.closed = true
	close(h.queue)
	h.mu.Unlock()
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-h.done:
		h.stop()
		return
	case <-t.C:
	}
	h.stop()
	t.Reset(grace)
	select {
	case <-h.done:
	case <-t.C:
		h.c.opts.logger.Error("kretry dead-letter hook did not return within the grace period after its ctx was cancelled; Run returns without it")
		for call := range h.queue { // the calls behind it
			h.dropped(call, "the consumer stopped and the grace period is over")
		}
	}
}
