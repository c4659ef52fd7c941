package consumer

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/internal/telemetry"
	"github.com/kretry/kretry/retrytopics"
)

// newClient builds the client of one Run: the config's and the user's options
// first, then the ones kretry's guarantees rest on, which override them.
func (s *session) newClient() (*kgo.Client, *telemetry.ClientMetrics, error) {
	c := s.c
	topics := make([]string, 0, len(c.ladders))
	for _, t := range c.cfg.Topics {
		topics = append(topics, t.Name)
	}
	// The group's session timeout, heartbeat, static membership, protocol
	// and commit interval from the config come first, so that the user's
	// options may override them.
	opts := slices.Concat(c.cfg.GroupOpts(), c.clientOpts)
	opts = append(opts,
		kgo.WithLogger(telemetry.Logger(c.opts.logger.With("component", "kgo", "client", "consumer"))),
		kgo.ConsumerGroup(c.cfg.Group),
		kgo.ConsumeTopics(topics...),
		kgo.BlockRebalanceOnPoll(),
		kgo.OnPartitionsAssigned(s.assigned),
		kgo.OnPartitionsRevoked(s.revoked),
		kgo.OnPartitionsLost(s.lost),
		kgo.RecordPartitioner(newPartitioner()),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		// Batches as large as each target topic takes (its
		// max.message.bytes), not kgo's 1,000,012-byte default.
		kgo.ProducerBatchMaxBytesFn(s.limits.of),
	)
	hook, cm := telemetry.NewClientMetrics(c.opts.registerer, c.opts.logger,
		prometheus.Labels{"component": "consumer", "group": c.cfg.Group})
	if hook != nil {
		opts = append(opts, hook)
	}
	if !c.cfg.ExactlyOnce {
		cl, err := kgo.NewClient(append(opts, kgo.AutoCommitMarks())...)
		if err != nil {
			return nil, nil, fmt.Errorf("consumer: building the Kafka client: %w", err)
		}
		return cl, cm, nil
	}
	id, err := s.transactionalID()
	if err != nil {
		return nil, nil, err
	}
	// Exactly once: forwards, outputs and offsets commit together in
	// transactions; reads see committed records only, and offsets a
	// pending transaction may still change are not handed out (KIP-447).
	sess, err := kgo.NewGroupTransactSession(append(opts,
		kgo.TransactionalID(id),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.RequireStableFetchOffsets(),
	)...)
	if err != nil {
		return nil, nil, fmt.Errorf("consumer: building the transactional Kafka client: %w", err)
	}
	s.txn = sess
	return sess.Client(), cm, nil
}

// provision creates the missing tier and DLQ topics (WithProvisioning).
func (s *session) provision(ctx context.Context) error {
	provs, err := s.c.cfg.Provisions()
	if err != nil {
		return fmt.Errorf("consumer: %w", err)
	}
	applied, err := retrytopics.EnsureTopics(ctx, kadm.NewClient(s.cl), provs)
	if err != nil {
		return fmt.Errorf("consumer: provisioning the retry and DLQ topics: %w", err)
	}
	for _, a := range applied {
		s.log.Info("kretry topic provisioned", "topic", a.Topic, "action", string(a.Action),
			"partitions", a.WantPartitions, "retention", a.WantRetention.String(), "already_existed", a.AlreadyExisted)
	}
	return nil
}

// checkTopics checks that every main, tier and DLQ topic exists and returns
// the partition count of each, which forwards use.
func (s *session) checkTopics(ctx context.Context) (map[string]int32, error) {
	ladders := make([]*retrytopics.Ladder, 0, len(s.c.cfg.Topics))
	for _, t := range s.c.cfg.Topics {
		ladders = append(ladders, s.c.ladders[t.Name])
	}
	parts, err := retrytopics.CheckTopics(ctx, kadm.NewClient(s.cl), ladders)
	if err != nil {
		return nil, fmt.Errorf("consumer: %w", err)
	}
	return parts, nil
}

// batchLimits holds the max.message.bytes of the topics the consumer
// forwards to, for kgo.ProducerBatchMaxBytesFn: kgo asks once per
// partition, when it first produces to it, which is after read.
type batchLimits struct {
	mu sync.Mutex
	m  map[string]int32
}

// The bounds kgo takes for a batch limit, and its default.
const (
	minBatchBytes     = 512
	maxBatchBytes     = 1 << 30
	defaultBatchBytes = 1_000_012
)

func (b *batchLimits) of(topic string) int32 {
	b.mu.Lock()
	defer b.mu.Unlock()
	if n, ok := b.m[topic]; ok {
		return n
	}
	return defaultBatchBytes
}

// read reads the max.message.bytes of topics. Without the right to describe
// their configs the consumer keeps kgo's default and says so: a forward
// larger than that goes to the DLQ without its value (reason too-large).
func (b *batchLimits) read(ctx context.Context, adm *kadm.Client, topics []string, log *slog.Logger) {
	m := make(map[string]int32, len(topics))
	rcs, err := adm.DescribeTopicConfigs(ctx, topics...)
	for _, rc := range rcs {
		if err == nil && rc.Err != nil {
			err = fmt.Errorf("topic %s: %w", rc.Name, rc.Err)
		}
		for _, c := range rc.Configs {
			if c.Key != "max.message.bytes" || c.Value == nil {
				continue
			}
			if n, perr := strconv.ParseInt(*c.Value, 10, 64); perr == nil {
				m[rc.Name] = int32(min(max(n, minBatchBytes), maxBatchBytes))
			}
		}
	}
	if err != nil {
		log.Warn("kretry consumer could not read the max.message.bytes of its tier and DLQ topics; "+
			"it forwards batches of at most 1,000,012 bytes to those it could not read",
			"topics", strings.Join(topics, ","), "error", err)
	}
	b.mu.Lock()
	b.m = m
	b.mu.Unlock()
}
