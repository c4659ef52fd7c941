package relay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/headers"
	"github.com/kretry/kretry/internal/metrics"
)

// DeadLetterHook is called in-process once a dead letter the relay wrote
// is acknowledged (committed, in the exactly-once mode): see
// WithDeadLetterHook. Its signature is consumer.DeadLetterHook's.
type DeadLetterHook func(ctx context.Context, rec *kgo.Record, reason headers.Reason, err error) error

// Dead-letter hook bounds: the calls waiting for the hook's goroutine, how
// long one call's ctx lives, and how long Run waits for the queued calls
// when it stops.
const (
	deadLetterHookQueue   = 1024
	deadLetterHookTimeout = 30 * time.Second
	deadLetterHookDrain   = 5 * time.Second
)

// WithDeadLetterHook sets a function called once for every record the
// relay itself dead-letters: a tier record whose kretry headers cannot be
// read (invalid-metadata) or too large to re-feed (too-large). It is called
// after the dead letter is acknowledged by the broker; in the exactly-once
// mode after the transaction that wrote it committed (a dead letter of an
// aborted transaction is not there: its record is read again and
// dead-lettered again, and the hook called then). rec is a copy of the
// tier record as the relay found it (its tier topic, partition and
// offset), reason the dead letter's kretry-reason, err its kretry-error
// text.
//
// The hook runs on a goroutine of its own, one call at a time, never on the
// relay's poll loop. Calls wait in a queue of 1024; when it is full, a
// call is dropped, logged and counted (kretry_dead_letter_hook_calls_total,
// result "dropped"). A call's ctx ends after 30s; when Run stops it waits
// up to 5s more for the calls queued, then cancels the running call's ctx,
// drops the rest (counted and logged) and returns without waiting for a
// hook that ignores its ctx. An error returned or a panic is logged and
// counted; the record's fate is not changed by anything the hook does.
// consumer.WithDeadLetterHook passes the consumer's hook to the relay that
// consumer.Run runs. Default: none.
func WithDeadLetterHook(h DeadLetterHook) Opt {
	return opt(func(c *cfg) { c.deadLetterHook = h })
}

// deadLetterCall is one call of the hook: the tier record and its dead
// letter's reason and kretry-error, by main topic (the metric's label).
type deadLetterCall struct {
	main   string
	rec    kgo.Record
	reason headers.Reason
	text   string
}

// hookRunner calls the dead-letter hook on its own goroutine during one Run.
type hookRunner struct {
	hook  DeadLetterHook
	log   *slog.Logger
	m     *metrics.Metrics
	queue chan deadLetterCall
	ctx   context.Context
	stop  context.CancelFunc
	done  chan struct{}

	mu      sync.Mutex
	closed  bool
	txnHeld []deadLetterCall // exactly once: the open transaction's, until it commits
}

// startHooks starts the hook's goroutine; nil when there is no hook (every
// method of a nil hookRunner does nothing).
func (r *Relay) startHooks(base context.Context) *hookRunner {
	if r.cfg.deadLetterHook == nil {
		return nil
	}
	ctx, stop := context.WithCancel(base)
	h := &hookRunner{hook: r.cfg.deadLetterHook, log: r.cfg.logger, m: r.metrics,
		queue: make(chan deadLetterCall, deadLetterHookQueue), ctx: ctx, stop: stop, done: make(chan struct{})}
	go h.run()
	return h
}

// deadLettered queues the hook's call for the acknowledged dead letter of
// rec, a record of main's ladder; with txn it is held until the open
// transaction commits (txnEnded).
func (h *hookRunner) deadLettered(main string, rec *kgo.Record, md headers.Metadata, txn bool) {
	if h == nil {
		return
	}
	call := deadLetterCall{main: main, rec: *rec, reason: md.Reason, text: md.Error}
	call.rec.Headers = append([]kgo.RecordHeader(nil), rec.Headers...)
	if txn {
		h.mu.Lock()
		h.txnHeld = append(h.txnHeld, call)
		h.mu.Unlock()
		return
	}
	h.send(call)
}

// txnEnded queues the calls held for the transaction that ended when it
// committed, and forgets them otherwise (their records are read again).
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
	h.m.DeadLetterHook.WithLabelValues(call.main, metrics.HookDropped).Inc()
	h.log.Error("kretry relay's dead-letter hook not called: "+why, "topic", call.rec.Topic,
		"partition", call.rec.Partition, "offset", call.rec.Offset, "reason", string(call.reason))
}

func (h *hookRunner) run() {
	defer close(h.done)
	for call := range h.queue {
		if h.ctx.Err() != nil {
			h.dropped(call, "the relay stopped")
			continue
		}
		h.call(call)
	}
}

// call runs the hook once, recovering a panic.
func (h *hookRunner) call(call deadLetterCall) {
	result := metrics.HookOK
	defer func() {
		if v := recover(); v != nil {
			result = metrics.HookPanic
			st := debug.Stack()
			if len(st) > 4<<10 {
				st = st[:4<<10]
			}
			h.log.Error("kretry relay's dead-letter hook panicked; the record stays dead-lettered", "topic", call.rec.Topic,
				"partition", call.rec.Partition, "offset", call.rec.Offset, "panic", fmt.Sprint(v), "stack", string(st))
		}
		h.m.DeadLetterHook.WithLabelValues(call.main, result).Inc()
	}()
	ctx, cancel := context.WithTimeout(h.ctx, deadLetterHookTimeout)
	defer cancel()
	rec := call.rec
	if err := h.hook(ctx, &rec, call.reason, errors.New(call.text)); err != nil {
		result = metrics.HookError
		h.log.Error("kretry relay's dead-letter hook failed; the record stays dead-lettered", "topic", call.rec.Topic,
			"partition", call.rec.Partition, "offset", call.rec.Offset, "error", err)
	}
}

// close lets the queued calls run for deadLetterHookDrain, then cancels the
// hook's ctx and drops what is left; it waits for the running call at most
// deadLetterHookDrain more. Calls held for a transaction that did not
// commit are forgotten.
func (h *hookRunner) close() {
	if h == nil {
		return
	}
	h.mu.Lock()
	h.closed = true
	h.txnHeld = nil
	close(h.queue)
	h.mu.Unlock()
	t := time.NewTimer(deadLetterHookDrain)
	defer t.Stop()
	select {
	case <-h.done:
		h.stop()
		return
	case <-t.C:
	}
	h.stop()
	t.Reset(deadLetterHookDrain)
	select {
	case <-h.done:
	case <-t.C:
		h.log.Error("kretry relay's dead-letter hook did not return within 5s after its ctx was cancelled; Run returns without it")
	}
}
