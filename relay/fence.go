package relay

import (
	"context"
	"sync"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/internal/txnfence"
)

// Exactly-once mode: a relay killed in the middle of a transaction leaves it
// open, and its re-feeds hold the last stable offset of the main-topic
// partitions they went to, so every read_committed consumer of those
// partitions stalls until the brokers abort it after the transaction
// timeout. Whenever this relay is assigned tier partitions (a dead member's
// partitions move then), its fencer looks for the open transactions of the
// group's relays that are no member any more and fences them, which aborts
// them at once (txnfence). The relay's group client reports its
// transactional id as its client id, so that the group's description tells
// which transactions are live members'.

// newFencer returns the relay's fencer.
func (r *Relay) newFencer() *txnfence.Fencer {
	return txnfence.New(r.cfg.group, txnfence.Relay, r.TransactionalID(), r.cfg.logger,
		r.metrics.FencedTransactions.WithLabelValues("relay", r.cfg.group))
}

// onAssigned is the exactly-once relay's assignment callback: the health
// tracker's, then a sweep of fence.
func (r *Relay) onAssigned(fence *txnfence.Fencer) func(context.Context, *kgo.Client, map[string][]int32) {
	return func(ctx context.Context, cl *kgo.Client, assigned map[string][]int32) {
		r.health.Assigned(ctx, cl, assigned)
		fence.Trigger()
	}
}

// runFencer runs fence with cl until ctx is done or the returned stop is
// called, which waits for it.
func runFencer(ctx context.Context, fence *txnfence.Fencer, cl *kgo.Client) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { fence.Run(ctx, cl) })
	return func() {
		cancel()
		wg.Wait()
	}
}
