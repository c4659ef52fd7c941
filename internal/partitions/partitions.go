// Package partitions keeps the partition counts of the topics the consumer
// and the relay write to, refreshed when a record needs a partition past
// them.
package partitions

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Counts are the partition counts of the topics a Run writes to. A
// record keeps its partition number on every hop, modulo the target's count;
// a topic may gain partitions while Run runs (an operator raises the main
// topic, then "kretry topics apply" raises its tiers and DLQ). So a record
// whose partition number is not below the count known refreshes that count
// from the broker before it is written, at most once every
// RefreshEvery per topic: a record of a partition that the target
// really lacks does not cost a metadata request each. A refresh that fails
// is logged and the old count used.
type Counts struct {
	cl     *kgo.Client // the client that writes to the topics
	log    *slog.Logger
	topics map[string]*partitionCount // fixed by New: read without a lock
}

// partitionCount is one topic's count, read on every write, so atomic; mu
// makes its refreshes one at a time.
type partitionCount struct {
	n    atomic.Int32
	mu   sync.Mutex
	next time.Time // no refresh before then; under mu
}

const (
	// RefreshEvery is how often a topic's count may be refreshed.
	RefreshEvery = 5 * time.Second

	// refreshTimeout bounds a refresh, the longest it holds up
	// the record that needs it.
	refreshTimeout = 2 * time.Second
)

// New returns counts, each a topic's partition count as read
// when Run started, to be refreshed through cl, the client that writes to
// them.
func New(cl *kgo.Client, log *slog.Logger, counts map[string]int32) *Counts {
	c := &Counts{cl: cl, log: log, topics: make(map[string]*partitionCount, len(counts))}
	for topic, n := range counts {
		t := &partitionCount{}
		t.n.Store(n)
		c.topics[topic] = t
	}
	return c
}

// Partition returns the partition of topic that a record of partition p
// goes to: p modulo topic's partition count, refreshed first when p is not
// below it. It runs on every write: one atomic load and a comparison when p
// is below the count.
func (c *Counts) Partition(ctx context.Context, topic string, p int32) int32 {
	t := c.topics[topic]
	if p < t.n.Load() {
		return p
	}
	return p % c.refresh(ctx, topic, t, p)
}

// refresh returns topic's partition count, read again from the broker unless
// another write did so for p meanwhile or one did within the last
// RefreshEvery.
func (c *Counts) refresh(ctx context.Context, topic string, t *partitionCount, p int32) int32 {
	t.mu.Lock()
	defer t.mu.Unlock()
	old := t.n.Load()
	if p < old || time.Now().Before(t.next) {
		return old
	}
	rctx, cancel := context.WithTimeout(ctx, refreshTimeout)
	n, err := c.fetch(rctx, topic, old)
	cancel()
	t.next = time.Now().Add(RefreshEvery)
	switch {
	case err != nil:
		if ctx.Err() == nil { // not shutting down
			c.log.Warn("kretry could not refresh the partition count of a topic; records go to their partition modulo the count it had",
				"topic", topic, "partitions", old, "error", err)
		}
		return old
	case n != old:
		c.log.Info("kretry topic has a new partition count", "topic", topic, "partitions", n, "was", old)
		t.n.Store(n)
	}
	return n
}

// fetch asks the broker for topic's partition count. When it is above known,
// fetch has the client learn of the new partitions before it returns: kgo
// fails a record written to a partition it does not know, and learns of new
// partitions by itself only every MetadataMaxAge (5 minutes by default).
func (c *Counts) fetch(ctx context.Context, topic string, known int32) (int32, error) {
	req := kmsg.NewPtrMetadataRequest()
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr(topic)
	req.Topics = append(req.Topics, rt)
	req.AllowAutoTopicCreation = false
	resp, err := req.RequestWith(ctx, c.cl)
	if err != nil {
		return 0, err
	}
	if len(resp.Topics) != 1 {
		return 0, fmt.Errorf("the broker answered for %d topics, not 1", len(resp.Topics))
	}
	if err := kerr.ErrorForCode(resp.Topics[0].ErrorCode); err != nil {
		return 0, err
	}
	n := int32(len(resp.Topics[0].Partitions))
	if n == 0 {
		return 0, fmt.Errorf("the broker lists no partitions of topic %s", topic)
	}
	if n > known {
		if err := c.learn(ctx, topic, n); err != nil {
			return 0, err
		}
	}
	return n, nil
}

// learn has the client update its metadata and waits until it knows
// partition n-1 of topic. A client that has not written to topic yet has
// not loaded it: its first write loads it whole.
func (c *Counts) learn(ctx context.Context, topic string, n int32) error {
	if leader, _, _ := c.cl.PartitionLeader(topic, 0); leader < 0 {
		return nil
	}
	// kgo offers no wait for its metadata: look every 10ms, and ask again
	// every 200ms, as a broker may not know the new partitions yet.
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for i := 0; ; i++ {
		if i%20 == 0 {
			c.cl.ForceMetadataRefresh()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the client has not learned of partition %d of topic %s: %w", n-1, topic, ctx.Err())
		case <-tick.C:
		}
		if leader, _, _ := c.cl.PartitionLeader(topic, n-1); leader >= 0 {
			return nil
		}
	}
}
