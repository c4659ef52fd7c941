package txnend

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Stall is how long End may run after its flush, while a rebalance callback
// waits for the poller, before the Ender allows the rebalance.
const Stall = 2 * time.Second

// Ender ends the transactions of one GroupTransactSession; see the package
// doc. Give Opt to the session's client.
type Ender struct {
	stall time.Duration
	log   *slog.Logger
	// blocked is when a rebalance callback first waited for the poller
	// since the last End returned (Unix nanoseconds; 0: none), and wake
	// tells a running End of it.
	blocked atomic.Int64
	wake    chan struct{}
}

// New returns an Ender that logs, if log is not nil, a line each time it
// allows a rebalance during End.
func New(log *slog.Logger) *Ender {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Ender{stall: Stall, log: log, wake: make(chan struct{}, 1)}
}

// Opt is the client option that tells the Ender when a rebalance callback
// waits for the poller; it sets kgo.OnPartitionsCallbackBlocked.
func (e *Ender) Opt() kgo.Opt {
	return kgo.OnPartitionsCallbackBlocked(func(context.Context, *kgo.Client) {
		e.blocked.CompareAndSwap(0, time.Now().UnixNano())
		select {
		case e.wake <- struct{}{}:
		default:
		}
	})
}

// Blocked reports whether a rebalance callback has waited for the poller
// since the last End returned.
func (e *Ender) Blocked() bool { return e.blocked.Load() != 0 }

// End is sess.End(ctx, try). With TryCommit it flushes first, and allows
// the rebalance a callback waits for when End still runs Stall after the
// flush and after that callback began to wait: the transaction then aborts
// (committed false) instead of waiting for ctx.
func (e *Ender) End(ctx context.Context, sess *kgo.GroupTransactSession, try kgo.TransactionEndTry) (committed bool, err error) {
	defer e.blocked.Store(0)
	if try == kgo.TryAbort {
		return sess.End(ctx, try) // no heartbeat to wait for
	}
	if err := sess.Client().Flush(ctx); err != nil {
		return sess.End(ctx, try) // ctx is done: End says so, as without the flush
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { e.watch(sess, time.Now(), done) })
	defer wg.Wait()
	defer close(done)
	return sess.End(ctx, try)
}

// watch allows rebalances once a callback has waited for the poller Stall
// after flushed and after it began to wait, unless done first.
func (e *Ender) watch(sess *kgo.GroupTransactSession, flushed time.Time, done <-chan struct{}) {
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		var fire <-chan time.Time
		if at := e.blocked.Load(); at != 0 {
			since := flushed
			if b := time.Unix(0, at); b.After(since) {
				since = b
			}
			wait := e.stall - time.Since(since)
			if wait <= 0 {
				e.log.Warn("kretry allowed a waiting rebalance while ending a transaction: no heartbeat answered "+
					"(the group session was lost, e.g. the brokers were unreachable); the transaction aborts and its records are handled again",
					"waited", time.Since(flushed).Round(time.Millisecond))
				sess.AllowRebalance()
				return
			}
			if timer == nil {
				timer = time.NewTimer(wait)
			} else {
				timer.Reset(wait)
			}
			fire = timer.C
		}
		select {
		case <-done:
			return
		case <-e.wake:
		case <-fire:
		}
	}
}
