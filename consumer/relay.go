package consumer

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/headers"
	"github.com/kretry/kretry/ladder"
	"github.com/kretry/kretry/relay"
)

// newRelay builds the relay that Run runs next to the consumer, for the same
// ladders, with the same client options, logger and registerer, and the
// consumer's dead-letter hook for its own dead letters. The hook is then
// called from the consumer's goroutine and the relay's: c.opts.deadLetterHook
// becomes a version of it that takes one call at a time.
func newRelay(c *Consumer, ladders []*ladder.Ladder) (relayRunner, error) {
	opts := append(c.cfg.RelayOpts(),
		relay.WithLogger(c.opts.logger.With("component", "relay")),
		relay.WithClientOpts(c.clientOpts...),
		relay.WithRegisterer(c.opts.registerer))
	if h := c.opts.deadLetterHook; h != nil {
		turn := make(chan struct{}, 1) // a channel, not a mutex: its waits are ctx's and synctest's
		one := func(ctx context.Context, rec *kgo.Record, reason headers.Reason, err error) error {
			select {
			case turn <- struct{}{}:
			case <-ctx.Done():
				return fmt.Errorf("waiting for the hook's call before it: %w", ctx.Err())
			}
			defer func() { <-turn }()
			return h(ctx, rec, reason, err)
		}
		c.opts.deadLetterHook = one
		opts = append(opts, relay.WithDeadLetterHook(one))
	}
	return relay.New(ladders, opts...)
}
