package config

import (
	"context"
	"fmt"
	"log/slog"
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
// by default): SetGroupSessionTimeout and SetGroupHeartbeatInterval
// set them where the brokers allow it.
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

// The group configs (KIP-848) that hold a consumer-protocol group's session
// timeout and heartbeat interval on the brokers.
const (
	GroupConfigSessionTimeout    = "consumer.session.timeout.ms"
	GroupConfigHeartbeatInterval = "consumer.heartbeat.interval.ms"
)

// SetGroupSessionTimeout makes session_timeout (default 10s) the brokers'
// session timeout of group when GroupProtocol is "consumer": with KIP-848
// the brokers, not the members, own it, as the group config
// consumer.session.timeout.ms, set with IncrementalAlterConfigs (Kafka 4.0+;
// the ALTER_CONFIGS permission on the group). It does nothing with the
// classic protocol, where the members send it when they join.
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
	if err := setGroupConfig(ctx, cl, group, GroupConfigSessionTimeout, st); err != nil {
		return fmt.Errorf("group_protocol: consumer: session_timeout %v could not be set as group %s's %s: %w; "+
			"a killed member's partitions move after the brokers' group.consumer.session.timeout.ms (45s by default) instead: "+
			"the brokers accept values between group.consumer.min.session.timeout.ms and group.consumer.max.session.timeout.ms (45s and 60s by default), "+
			"so lower that minimum on the brokers, or set session_timeout within it (an ALTER_CONFIGS permission on the group is needed too)",
			st, group, GroupConfigSessionTimeout, err)
	}
	return nil
}

// SetGroupHeartbeatInterval makes the heartbeat interval that follows
// session_timeout (HeartbeatInterval, 1s by default) the brokers' heartbeat
// interval of group when GroupProtocol is "consumer", as the group config
// consumer.heartbeat.interval.ms; call it after SetGroupSessionTimeout (the
// brokers want it below the session timeout). A killed member's partitions
// move when its session expires and each survivor learns of it at its next
// heartbeat: up to the session timeout plus a heartbeat interval after the
// kill, 11s with the defaults.
//
// The brokers accept a value between their group.consumer.min.heartbeat.interval.ms
// and group.consumer.max.heartbeat.interval.ms only, 5s and 15s by default:
// with those defaults 1s is refused, the error says so, and the members
// heartbeat every 5s (the brokers' group.consumer.heartbeat.interval.ms), so
// partitions move up to 4s later. The caller logs the error and goes on.
func (c *Config) SetGroupHeartbeatInterval(ctx context.Context, cl *kgo.Client, group string) error {
	if c.GroupProtocol != GroupProtocolConsumer {
		return nil
	}
	hb := c.HeartbeatInterval()
	if err := setGroupConfig(ctx, cl, group, GroupConfigHeartbeatInterval, hb); err != nil {
		return fmt.Errorf("group_protocol: consumer: the heartbeat interval %v (a tenth of session_timeout %v, at most %v) could not be set as group %s's %s: %w; "+
			"members heartbeat at the brokers' group.consumer.heartbeat.interval.ms (5s by default) instead, so a killed member's partitions move up to that long "+
			"after its session expired: the brokers accept values between group.consumer.min.heartbeat.interval.ms and group.consumer.max.heartbeat.interval.ms "+
			"(5s and 15s by default), so lower that minimum on the brokers",
			hb, c.sessionTimeout(), MaxHeartbeatInterval, group, GroupConfigHeartbeatInterval, err)
	}
	return nil
}

// SetGroupTimeouts runs SetGroupSessionTimeout, then SetGroupHeartbeatInterval
// if the first succeeded, and logs a refusal: of the session timeout as a
// warning, of the heartbeat interval (which costs a few seconds at most) as
// information. It does nothing with the classic protocol.
func (c *Config) SetGroupTimeouts(ctx context.Context, cl *kgo.Client, group string, log *slog.Logger) {
	if err := c.SetGroupSessionTimeout(ctx, cl, group); err != nil {
		if ctx.Err() == nil {
			log.Warn("kretry could not set its group's session timeout", "group", group, "error", err)
		}
		return
	}
	if err := c.SetGroupHeartbeatInterval(ctx, cl, group); err != nil && ctx.Err() == nil {
		log.Info("kretry could not set its group's heartbeat interval", "group", group, "error", err)
	}
}

// setGroupConfig sets group's config name to d in milliseconds.
func setGroupConfig(ctx context.Context, cl *kgo.Client, group, name string, d time.Duration) error {
	req := kmsg.NewPtrIncrementalAlterConfigsRequest()
	res := kmsg.NewIncrementalAlterConfigsRequestResource()
	res.ResourceType = kmsg.ConfigResourceTypeGroupConfig
	res.ResourceName = group
	cfg := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
	cfg.Name = name
	cfg.Op = kmsg.IncrementalAlterConfigOpSet
	cfg.Value = kmsg.StringPtr(strconv.FormatInt(d.Milliseconds(), 10))
	res.Configs = append(res.Configs, cfg)
	req.Resources = append(req.Resources, res)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return err
	}
	if len(resp.Resources) != 1 {
		return fmt.Errorf("the brokers answered for %d resources, want 1", len(resp.Resources))
	}
	r := resp.Resources[0]
	if err = kerr.ErrorForCode(r.ErrorCode); err != nil && r.ErrorMessage != nil {
		err = fmt.Errorf("%w: %s", err, *r.ErrorMessage)
	}
	return err
}
