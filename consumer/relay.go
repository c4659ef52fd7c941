package consumer

import (
	"github.com/kretry/kretry/ladder"
	"github.com/kretry/kretry/relay"
)

// newRelay builds the relay that Run runs next to the consumer, for the same
// ladders, with the same client options, logger and registerer.
func newRelay(c *Consumer, ladders []*ladder.Ladder) (relayRunner, error) {
	opts := []relay.Opt{
		relay.WithLogger(c.opts.logger.With("component", "relay")),
		relay.WithClientOpts(c.clientOpts...),
		relay.WithRegisterer(c.opts.registerer),
		relay.WithGroupOpts(c.cfg.GroupOpts()...),
		relay.WithProducerOpts(c.cfg.ProducerOpts()...),
	}
	if c.cfg.CommitInterval > 0 {
		opts = append(opts, relay.WithCommitInterval(c.cfg.CommitInterval))
	}
	if c.cfg.DeliveryTimeout > 0 {
		opts = append(opts, relay.WithDeliveryTimeout(c.cfg.DeliveryTimeout))
	}
	if c.cfg.ExactlyOnce {
		opts = append(opts, relay.WithExactlyOnce(true))
		if c.cfg.InstanceID != "" {
			opts = append(opts, relay.WithInstanceID(c.cfg.InstanceID))
		}
	}
	if c.cfg.Relay.Group != "" {
		opts = append(opts, relay.WithGroup(c.cfg.Relay.Group))
	}
	if c.cfg.Relay.FetchMaxWait > 0 {
		opts = append(opts, relay.WithFetchMaxWait(c.cfg.Relay.FetchMaxWait))
	}
	if n := c.cfg.Relay.HoldBytes; n != nil {
		opts = append(opts, relay.WithHoldBytes(*n))
	}
	return relay.New(ladders, opts...)
}
