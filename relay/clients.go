package relay

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/internal/telemetry"
	"github.com/kretry/kretry/topics"
)

// clientOpts returns the options of the producing client, or with consume
// set of the group's consuming client: the user's first, then the relay's.
func (r *Relay) clientOpts(consume bool, hooks kgo.Opt, extra ...kgo.Opt) []kgo.Opt {
	name := "producer"
	if consume {
		name = "consumer"
	}
	var opts []kgo.Opt
	if consume {
		// Defaults the caller may override: a resumed partition needs only
		// its due records, and smaller fetches bound the memory that a burst
		// of resumed partitions (or well-compressed batches) can take.
		opts = append(opts, kgo.FetchMaxBytes(fetchMaxBytes), kgo.FetchMaxPartitionBytes(fetchMaxPartitionBytes),
			kgo.SessionTimeout(DefaultSessionTimeout), kgo.HeartbeatInterval(DefaultHeartbeatInterval),
			kgo.AutoCommitInterval(r.cfg.commitInterval))
	}
	opts = append(opts, r.cfg.clientOpts...)
	if consume {
		opts = append(opts, r.cfg.groupOpts...)
	}
	opts = append(opts, kgo.WithLogger(telemetry.Logger(r.cfg.logger.With("component", "kgo", "client", "relay-"+name))))
	if hooks != nil {
		opts = append(opts, hooks)
	}
	if !consume {
		opts = append(opts, kgo.RecordDeliveryTimeout(r.cfg.deliveryTimeout))
		opts = append(opts, r.cfg.producerOpts...)
		opts = append(opts,
			kgo.RecordPartitioner(kgo.ManualPartitioner()),
			kgo.RequiredAcks(kgo.AllISRAcks()),
			kgo.ProducerLinger(0),
		)
		return append(opts, extra...)
	}
	opts = append(opts,
		kgo.ConsumerGroup(r.cfg.group),
		kgo.ConsumeTopics(r.topics...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.BlockRebalanceOnPoll(),
		kgo.FetchMaxWait(r.cfg.fetchMaxWait),
	)
	if !r.cfg.exactlyOnce {
		return append(append(opts, kgo.AutoCommitMarks()), extra...)
	}
	// The transaction timeout is a default the producer options (the
	// config's, derived from session_timeout) may override.
	opts = append(opts, kgo.RecordDeliveryTimeout(r.cfg.deliveryTimeout), kgo.TransactionTimeout(r.transactionTimeout()))
	opts = append(opts, r.cfg.producerOpts...)
	opts = append(opts,
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(0),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.TransactionalID(r.TransactionalID()),
		// The group's description so names each member's transactional id:
		// the fencer tells a dead member's open transaction by it.
		kgo.ClientID(r.TransactionalID()),
	)
	return append(opts, extra...)
}

// targets returns the topics the relay writes to: every main topic, DLQ and
// tier (re-parks).
func (r *Relay) targets() []string {
	var out []string
	for _, l := range r.ladders {
		out = append(out, l.Topic(), l.DLQ())
		for _, st := range l.Steps() { // re-parks go back to their tier
			out = append(out, st.Topic)
		}
	}
	return out
}

// checkTopics checks that every main, tier and DLQ topic exists and returns
// the partition count of each.
func (r *Relay) checkTopics(ctx context.Context, cl *kgo.Client) (map[string]int32, error) {
	parts, err := topics.Check(ctx, kadm.NewClient(cl), r.ladders)
	if err != nil {
		return nil, fmt.Errorf("relay: %w", err)
	}
	return parts, nil
}
