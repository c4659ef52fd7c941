package retrytopics

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/internal/telemetry"
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
		opts = append(opts, kgo.FetchMaxBytes(relayFetchMaxBytes), kgo.FetchMaxPartitionBytes(relayFetchMaxPartitionBytes),
			kgo.SessionTimeout(DefaultRelaySessionTimeout), kgo.HeartbeatInterval(DefaultRelayHeartbeatInterval),
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
	opts = append(opts, kgo.RecordDeliveryTimeout(r.cfg.deliveryTimeout))
	opts = append(opts, r.cfg.producerOpts...)
	opts = append(opts,
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(0),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.TransactionalID(r.TransactionalID()),
		kgo.TransactionTimeout(r.transactionTimeout()),
	)
	return append(opts, extra...)
}

// targets returns the topics the relay writes to: every main topic and DLQ.
func (r *Relay) targets() []string {
	var out []string
	for _, l := range r.ladders {
		out = append(out, l.Topic(), l.DLQ())
	}
	return out
}

// batchLimits is the producer's batch limit per topic: the topic's
// max.message.bytes, so that a record the topic accepts is not refused by
// the client's default limit (1,000,012 bytes) first.
type batchLimits struct {
	mu sync.Mutex
	m  map[string]int32
}

// The bounds kgo takes for a batch limit, and its default.
const (
	minBatchBytes     = 512
	maxBatchBytes     = 1 << 30
	defaultBatchBytes = 1000012
)

// of is the kgo.ProducerBatchMaxBytesFn: kgo asks once per partition, when it
// first produces to it, after read.
func (b *batchLimits) of(topic string) int32 {
	b.mu.Lock()
	defer b.mu.Unlock()
	if n, ok := b.m[topic]; ok {
		return n
	}
	return defaultBatchBytes
}

// read reads the max.message.bytes of topics. Without the right to describe
// configs the relay keeps kgo's default and says so.
func (b *batchLimits) read(ctx context.Context, adm *kadm.Client, topics []string, log *slog.Logger) {
	configs, err := describeConfigs(ctx, adm, topics)
	if err != nil {
		log.Warn("kretry relay could not read the max.message.bytes of its target topics; it produces batches of at most 1,000,012 bytes",
			"topics", strings.Join(topics, ","), "error", err)
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.m = map[string]int32{}
	for t, c := range configs {
		b.m[t] = min(max(c.maxMessageBytes, minBatchBytes), maxBatchBytes)
	}
}

// checkTopics checks that every main, tier and DLQ topic exists and returns
// the partition count of each.
func (r *Relay) checkTopics(ctx context.Context, cl *kgo.Client) (map[string]int32, error) {
	parts, err := CheckTopics(ctx, kadm.NewClient(cl), r.ladders)
	if err != nil {
		return nil, fmt.Errorf("relay: %w", err)
	}
	return parts, nil
}
