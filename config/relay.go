package config

import "github.com/kretry/kretry/relay"

// RelayOpts returns the options of relay.New that c configures: the relay's
// group (relay.group), fetch max wait, hold bytes, commit interval and
// delivery timeout, exactly_once with instance_id, and the group members'
// and producers' franz-go options (GroupOpts, ProducerOpts). Settings left
// at zero keep the relay's defaults. The caller adds the connection
// (relay.WithClientOpts with ClientOpts), a logger and a registerer. The
// consumer builds its in-process relay, and `kretry relay` its own, from
// these.
func (c *Config) RelayOpts() []relay.Opt {
	opts := []relay.Opt{
		relay.WithGroupOpts(c.GroupOpts()...),
		relay.WithProducerOpts(c.ProducerOpts()...),
	}
	if c.Relay.Group != "" {
		opts = append(opts, relay.WithGroup(c.Relay.Group))
	}
	if c.Relay.FetchMaxWait > 0 {
		opts = append(opts, relay.WithFetchMaxWait(c.Relay.FetchMaxWait))
	}
	if n := c.Relay.HoldBytes; n != nil {
		opts = append(opts, relay.WithHoldBytes(*n))
	}
	if c.CommitInterval > 0 {
		opts = append(opts, relay.WithCommitInterval(c.CommitInterval))
	}
	if c.DeliveryTimeout > 0 {
		opts = append(opts, relay.WithDeliveryTimeout(c.DeliveryTimeout))
	}
	if c.ExactlyOnce {
		opts = append(opts, relay.WithExactlyOnce(true))
		if c.InstanceID != "" {
			opts = append(opts, relay.WithInstanceID(c.InstanceID))
		}
	}
	return opts
}
