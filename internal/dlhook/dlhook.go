// Package dlhook calls a dead-letter hook (consumer.WithDeadLetterHook,
// relay.WithDeadLetterHook) on a goroutine of its own, so that a slow hook
// holds up no record.
//
// A Runner queues one call per acknowledged dead letter and makes them one at
// a time, in order. A call that finds the queue full is dropped, counted
// (result "dropped") and logged. In the exactly-once mode the calls of the
// open transaction are held until it ends: queued when it committed,
// forgotten when it aborted (its records are handled again). A call's ctx
// ends after Timeout; Close gives the queued calls the grace period, then
// cancels the hook's ctx, gives the running call the grace period more and
// drops what is left. An error or a panic of the hook is logged and counted;
// it changes no record's fate.
package dlhook

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/headers"
	"github.com/kretry/kretry/internal/metrics"
	"github.com/kretry/kretry/internal/panics"
)

// Func is the signature of consumer.DeadLetterHook and relay.DeadLetterHook.
type Func = func(ctx context.Context, rec *kgo.Record, reason headers.Reason, err error) error

// Bounds of a Runner: the calls that may wait by default, and how long one
// call's ctx lives.
const (
	DefaultQueue = 1024
	Timeout      = 30 * time.Second
)

// Config is what a Runner is given by its consumer or relay.
type Config struct {
	Hook  Func
	Log   *slog.Logger
	Calls *prometheus.CounterVec // kretry_dead_letter_hook_calls_total: topic, result
	Queue int                    // the calls that may wait; 0: DefaultQueue
	Grace time.Duration          // how long Close waits for the queue, then for the running call

	// Name starts every log line ("kretry dead-letter hook"); Stopped says
	// why a call is dropped at Close ("the consumer stopped and the grace
	// period is over").
	Name, Stopped string
}

// call is one call of the hook: the record, its dead letter's reason and
// kretry-error, and the topic label of its metric.
type call struct {
	label  string
	rec    kgo.Record
	reason headers.Reason
	text   string
}

// Runner calls the hook on its own goroutine. Every method of a nil Runner
// does nothing.
type Runner struct {
	cfg   Config
	queue chan call
	ctx   context.Context
	stop  context.CancelFunc
	done  chan struct{}

	// mu is held only around the queue's send and close and the held calls,
	// never while waiting: synctest's clock does not move past a goroutine
	// blocked on a mutex.
	mu      sync.Mutex
	closed  bool
	txnHeld []call // exactly once: the open transaction's, until it ends
}

// Start starts the hook's goroutine, its calls' ctx carrying base's values;
// nil when cfg has no hook. Close stops it.
func Start(base context.Context, cfg Config) *Runner {
	if cfg.Hook == nil {
		return nil
	}
	if cfg.Queue <= 0 {
		cfg.Queue = DefaultQueue
	}
	ctx, stop := context.WithCancel(context.WithoutCancel(base))
	h := &Runner{cfg: cfg, queue: make(chan call, cfg.Queue), ctx: ctx, stop: stop, done: make(chan struct{})}
	go h.run()
	return h
}

// DeadLettered queues the hook's call for rec's acknowledged dead letter,
// md its kretry headers, label the topic of its metric; with txn it is held
// until the open transaction ends (TxnEnded). rec is copied: the caller may
// reuse it.
func (h *Runner) DeadLettered(label string, rec *kgo.Record, md *headers.Metadata, txn bool) {
	if h == nil {
		return
	}
	c := call{label: label, rec: *rec, reason: md.Reason, text: md.Error}
	c.rec.Headers = append([]kgo.RecordHeader(nil), rec.Headers...)
	if txn {
		h.mu.Lock()
		h.txnHeld = append(h.txnHeld, c)
		h.mu.Unlock()
		return
	}
	h.send(c)
}

// TxnEnded queues the calls held for the transaction that ended when it
// committed, and forgets them otherwise (its records are handled again).
func (h *Runner) TxnEnded(committed bool) {
	if h == nil {
		return
	}
	h.mu.Lock()
	held := h.txnHeld
	h.txnHeld = nil
	h.mu.Unlock()
	if committed {
		for _, c := range held {
			h.send(c)
		}
	}
}

func (h *Runner) send(c call) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.closed {
		select {
		case h.queue <- c:
			return
		default:
		}
	}
	h.dropped(c, "the hook's queue is full (a slow hook)")
}

func (h *Runner) dropped(c call, why string) {
	h.cfg.Calls.WithLabelValues(c.label, metrics.HookDropped).Inc()
	h.cfg.Log.Error(h.cfg.Name+" not called: "+why, "topic", c.rec.Topic,
		"partition", c.rec.Partition, "offset", c.rec.Offset, "reason", string(c.reason))
}

func (h *Runner) run() {
	defer close(h.done)
	for c := range h.queue {
		if h.ctx.Err() != nil {
			h.dropped(c, h.cfg.Stopped)
			continue
		}
		h.call(c)
	}
}

// call runs the hook once, recovering a panic.
func (h *Runner) call(c call) {
	result := metrics.HookOK
	defer func() {
		if v := recover(); v != nil {
			result = metrics.HookPanic
			h.cfg.Log.Error(h.cfg.Name+" panicked; the record stays dead-lettered", "topic", c.rec.Topic,
				"partition", c.rec.Partition, "offset", c.rec.Offset, "panic", fmt.Sprint(v), "stack", panics.Stack())
		}
		h.cfg.Calls.WithLabelValues(c.label, result).Inc()
	}()
	ctx, cancel := context.WithTimeout(h.ctx, Timeout)
	defer cancel()
	rec := c.rec
	if err := h.cfg.Hook(ctx, &rec, c.reason, errors.New(c.text)); err != nil {
		result = metrics.HookError
		h.cfg.Log.Error(h.cfg.Name+" failed; the record stays dead-lettered", "topic", c.rec.Topic,
			"partition", c.rec.Partition, "offset", c.rec.Offset, "error", err)
	}
}

// Close lets the queued calls run within the grace period, then cancels the
// hook's ctx and drops what is left; it waits for the running call at most
// the grace period more, and returns without a hook that ignores its ctx.
// Calls held for a transaction that did not end are forgotten.
func (h *Runner) Close() {
	if h == nil {
		return
	}
	h.mu.Lock()
	h.closed = true
	h.txnHeld = nil
	close(h.queue)
	h.mu.Unlock()
	t := time.NewTimer(h.cfg.Grace)
	defer t.Stop()
	select {
	case <-h.done:
		h.stop()
		return
	case <-t.C:
	}
	h.stop()
	t.Reset(h.cfg.Grace)
	select {
	case <-h.done:
	case <-t.C:
		h.cfg.Log.Error(fmt.Sprintf("%s did not return within the grace period (%s) after its ctx was cancelled; Run returns without it",
			h.cfg.Name, h.cfg.Grace))
		for c := range h.queue { // the calls behind it
			h.dropped(c, h.cfg.Stopped)
		}
	}
}
