package consumer

import (
	"github.com/kretry/kretry/ladder"
	"github.com/kretry/kretry/relay"
)

// newRelay builds the relay that Run runs next to the consumer, for the same
// ladders, with the same client options, logger and registerer.
func newRelay(c *Consumer, ladders []*ladder.Ladder) (relayRunner, error) {
	opts := append(c.cfg.RelayOpts(),
		relay.WithLogger(c.opts.logger.With("component", "relay")),
		relay.WithClientOpts(c.clientOpts...),
		relay.WithRegisterer(c.opts.registerer))
	return relay.New(ladders, opts...)
}
