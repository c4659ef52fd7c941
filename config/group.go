package config

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
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
// by default): SetGroupSessionTimeout sets the former where the brokers
// allow it.
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
// retried for ever, which bounds shutdown when the brokers are unreachable;
// and, for the transactional ones (exactly_once), TransactionTimeout.
func (c *Config) ProducerOpts() []kgo.Opt {
	return []kgo.Opt{kgo.RecordDeliveryTimeout(c.deliveryTimeout()), kgo.TransactionTimeout(c.TransactionTimeout())}
}

// MinTransactionMargin is how much longer than the commit interval a
// transaction may stay open at least (TransactionTimeout).
const MinTransactionMargin = 10 * time.Second

// TransactionTimeout is the transaction timeout of kretry's transactional
// producers (exactly_once): three times the session timeout, and at least
// the commit interval plus MinTransactionMargin: 30s with the defaults,
// where franz-go's default is 40s (and the relay's own 41s).
//
// It is how long the open transaction of a killed instance (without
// instance_id, nothing else ends it) holds what it wrote: the brokers abort
// it after this plus up to their transaction.abort.timed.out.transaction.cleanup.interval.ms
// (10s by default). Until then read_committed readers do not get past its
// records (the relay's re-feeds on the main topic, the consumer's forwards
// in the tiers), and offsets it was committing are not handed out (KIP-447).
//
// A transaction open longer than this is aborted by the brokers, which
// fences its producer: the consumer or relay stops with an error (nothing
// is lost; its records are handled again after a restart). A transaction
// spans a commit interval, then waits for the records handed out in it to
// be handled and for its writes to be acknowledged, which takes as long as
// a broker restart when one happens: three times the session timeout leaves
// that a margin. (In the fault suite, the recovery after a broker restart
// in exactly_once mode varied from about 5s to 34s with 20s, 30s and 40s
// alike, on a loaded 2-core machine: no effect of the timeout could be told
// from the noise.)
func (c *Config) TransactionTimeout() time.Duration {
	return max(3*c.sessionTimeout(), c.commitInterval()+MinTransactionMargin)
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

// GroupConfigSessionTimeout is the group config (KIP-848) that holds a
// consumer-protocol group's session timeout on the brokers.
const GroupConfigSessionTimeout = "consumer.session.timeout.ms"

// SetGroupSessionTimeout makes the session timeout (session_timeout, default
// 10s) the brokers' session timeout of group when GroupProtocol is
// "consumer": with KIP-848 the brokers, not the members, own it, so it is
// the group config consumer.session.timeout.ms, set with
// IncrementalAlterConfigs (Kafka 4.0+; the ALTER_CONFIGS permission on the
// group). It does nothing with the classic protocol, where the members send
// it when they join.
//
// The brokers accept a value between their group.consumer.min.session.timeout.ms
// and group.consumer.max.session.timeout.ms only, 45s and 60s by default: with
// those defaults 10s is refused, and the error says so and what to change;
// the group then keeps the brokers' group.consumer.session.timeout.ms (45s
// by default), so a killed member's partitions move after that long. The
// caller logs the error and goes on.
func (c *Config) SetGroupSessionTimeout(ctx context.Context, cl *kgo.Client, group string) error {
	if c.GroupProtocol != GroupProtocolConsumer {
		return nil
	}
	st := c.sessionTimeout()
	req := kmsg.NewPtrIncrementalAlterConfigsRequest()
	res := kmsg.NewIncrementalAlterConfigsRequestResource()
	res.ResourceType = kmsg.ConfigResourceTypeGroupConfig
	res.ResourceName = group
	cfg := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
	cfg.Name = GroupConfigSessionTimeout
	cfg.Op = kmsg.IncrementalAlterConfigOpSet
	cfg.Value = kmsg.StringPtr(strconv.FormatInt(st.Milliseconds(), 10))
	res.Configs = append(res.Configs, cfg)
	req.Resources = append(req.Resources, res)
	resp, err := req.RequestWith(ctx, cl)
	if err == nil && len(resp.Resources) == 1 {
		r := resp.Resources[0]
		if err = kerr.ErrorForCode(r.ErrorCode); err != nil && r.ErrorMessage != nil {
			err = fmt.Errorf("%w: %s", err, *r.ErrorMessage)
		}
	} else if err == nil {
		err = fmt.Errorf("the brokers answered for %d resources, want 1", len(resp.Resources))
	}
	if err != nil {
		return fmt.Errorf("group_protocol: consumer: session_timeout %v could not be set as group %s's %s: %w; "+
			"a killed member's partitions move after the brokers' group.consumer.session.timeout.ms (45s by default) instead: "+
			"the brokers accept values between group.consumer.min.session.timeout.ms and group.consumer.max.session.timeout.ms (45s and 60s by default), "+
			"so lower that minimum on the brokers, or set session_timeout within it (an ALTER_CONFIGS permission on the group is needed too)",
			st, group, GroupConfigSessionTimeout, err)
	}
	return nil
}
