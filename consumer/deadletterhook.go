package consumer

import (
	"context"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/headers"
	"github.com/kretry/kretry/internal/dlhook"
)

// DeadLetterHook is called in-process once a record's dead letter is
// written: for alerting, an incident ticket. See WithDeadLetterHook.
type DeadLetterHook func(ctx context.Context, rec *kgo.Record, reason headers.Reason, err error) error

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

// startHooks starts the dead-letter hook's goroutine for one Run; nil when
// there is no hook.
func (s *session) startHooks() *dlhook.Runner {
	o := s.c.opts
	return dlhook.Start(s.base, dlhook.Config{Hook: o.deadLetterHook, Log: o.logger, Calls: s.c.metrics.DeadLetterHook,
		Queue: o.hookQueue, Grace: o.grace, Name: "kretry dead-letter hook", Stopped: "the consumer stopped and the grace period is over"})
}
