package consumer

import (
	"github.com/kretry/kretry/retrytopics"
)

// newRelay builds the relay that Run runs next to the consumer, for the same
// ladders, with the same client options, logger and registerer.
func newRelay(c *Consumer, ladders []*retrytopics.Ladder) (relayRunner, error) {
	opts := []retrytopics.RelayOpt{
		retrytopics.WithRelayLogger(c.opts.logger.With("component", "relay")),
		retrytopics.WithRelayClientOpts(c.clientOpts...),
		retrytopics.WithRelayRegisterer(c.opts.registerer),
		retrytopics.WithRelayGroupOpts(c.cfg.GroupOpts()...),
		retrytopics.WithRelayProducerOpts(c.cfg.ProducerOpts()...),
	}
	if c.cfg.CommitInterval > 0 {
		opts = append(opts, retrytopics.WithRelayCommitInterval(c.cfg.CommitInterval))
	}
	if c.cfg.DeliveryTimeout > 0 {
		opts = append(opts, retrytopics.WithRelayDeliveryTimeout(c.cfg.DeliveryTimeout))
	}
	if c.cfg.ExactlyOnce {
		opts = append(opts, retrytopics.WithRelayExactlyOnce(true))
		if c.cfg.InstanceID != "" {
			opts = append(opts, retrytopics.WithRelayInstanceID(c.cfg.InstanceID))
		}
	}
	if c.cfg.Relay.Group != "" {
		opts = append(opts, retrytopics.WithRelayGroup(c.cfg.Relay.Group))
	}
	if c.cfg.Relay.FetchMaxWait > 0 {
		opts = append(opts, retrytopics.WithRelayFetchMaxWait(c.cfg.Relay.FetchMaxWait))
	}
	if n := c.cfg.Relay.HoldBytes; n != nil {
		opts = append(opts, retrytopics.WithRelayHoldBytes(*n))
	}
	return retrytopics.NewRelay(ladders, opts...)
}
