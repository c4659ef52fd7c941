package config

import (
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// GroupOpts returns the franz-go options of a consumer group member built
// from c: the session timeout and the heartbeat interval that follows it, the
// static instance id when one is set, KIP-848's server-side assignment when
// GroupProtocol is "consumer", and the auto-commit interval of the marked
// offsets. Zero fields of a Config built by hand get their defaults. The
// caller adds kgo.ConsumerGroup, its topics and its commit mode.
//
// With the consumer protocol the broker, not the client, owns the session
// timeout and the heartbeat interval (the group configs
// consumer.session.timeout.ms and consumer.heartbeat.interval.ms, 45s and 5s
// by default): SessionTimeout then only matters if the broker falls back to
// the classic protocol.
func (c *Config) GroupOpts() []kgo.Opt {
	opts := []kgo.Opt{
		kgo.SessionTimeout(c.sessionTimeout()),
		kgo.HeartbeatInterval(c.HeartbeatInterval()),
		kgo.AutoCommitInterval(c.commitInterval()),
	}
	if c.InstanceID != "" {
		opts = append(opts, kgo.InstanceID(c.InstanceID))
	}
	if p, _ := groupProtocol(c.GroupProtocol); p == GroupProtocolConsumer {
		// franz-go speaks KIP-848 only with the sticky or the range balancer
		// first (sticky asks the broker for its "uniform" assignor); with
		// any other it silently keeps the classic protocol. A broker older
		// than 4.0 makes it fall back to classic, where sticky is eager.
		opts = append(opts, kgo.Balancers(kgo.StickyBalancer()), kgo.ServerSideBalancer())
	}
	return opts
}

// ProducerOpts returns the franz-go options that every producer kretry owns
// takes from c: the delivery timeout, so that a record the brokers do not
// acknowledge fails after DeliveryTimeout (default 30s) instead of being
// retried for ever, which bounds shutdown when the brokers are unreachable.
func (c *Config) ProducerOpts() []kgo.Opt {
	return []kgo.Opt{kgo.RecordDeliveryTimeout(c.deliveryTimeout())}
}

// HeartbeatInterval is the group heartbeat interval that follows the
// session timeout: a tenth of it, at most MaxHeartbeatInterval (3s), so
// that a surviving member learns of a rebalance within about a second with
// the default 10s session timeout.
func (c *Config) HeartbeatInterval() time.Duration {
	return min(c.sessionTimeout()/10, MaxHeartbeatInterval)
}

func (c *Config) sessionTimeout() time.Duration {
	return cmpOr(c.SessionTimeout, DefaultSessionTimeout)
}

func (c *Config) commitInterval() time.Duration {
	return cmpOr(c.CommitInterval, DefaultCommitInterval)
}

func (c *Config) deliveryTimeout() time.Duration {
	return cmpOr(c.DeliveryTimeout, DefaultDeliveryTimeout)
}

// cmpOr is cmp.Or for a duration whose zero or negative value means unset.
func cmpOr(v, def time.Duration) time.Duration {
	if v <= 0 {
		return def
	}
	return v
}
