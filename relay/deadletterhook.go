package relay

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/headers"
	"github.com/kretry/kretry/internal/dlhook"
)

// DeadLetterHook is called in-process once a dead letter the relay wrote
// is acknowledged (committed, in the exactly-once mode): see
// WithDeadLetterHook. Its signature is consumer.DeadLetterHook's.
type DeadLetterHook func(ctx context.Context, rec *kgo.Record, reason headers.Reason, err error) error

// deadLetterHookDrain is how long Run waits for the queued calls of the
// dead-letter hook when it stops, then for the running call.
const deadLetterHookDrain = 5 * time.Second

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

// startHooks starts the dead-letter hook's goroutine for one Run; nil when
// there is no hook.
func (r *Relay) startHooks(base context.Context) *dlhook.Runner {
	return dlhook.Start(base, dlhook.Config{Hook: r.cfg.deadLetterHook, Log: r.cfg.logger, Calls: r.metrics.DeadLetterHook,
		Grace: deadLetterHookDrain, Name: "kretry relay's dead-letter hook", Stopped: "the relay stopped"})
}
