//go:build integration

package relay_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/headers"
	"github.com/kretry/kretry/internal/kafkatest"
	"github.com/kretry/kretry/ladder"
	"github.com/kretry/kretry/relay"
)

// TestRelayExactlyOnceBacklogEndsOnceRealBroker: an exactly-once relay
// drains a backlog of due records that takes dozens of fetches, each
// answered 80 ms late. Between two fetches its polls bring nothing; it does
// not take that for idle: it ends its transaction once it has fetched the
// tier to its end, not after every fetch (a transaction per 100–150 ms,
// each stopping the relay for its flush and its end). Every record is
// re-fed once.
func TestRelayExactlyOnceBacklogEndsOnceRealBroker(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	const (
		parts      = 2
		records    = 2000
		valueBytes = 1000
	)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	rl := newRealLadder(t, ctx, brokers, time.Second, parts, parts)
	l, tier, main := rl.l, rl.tier, rl.l.Topic()
	now := time.Now()
	recs := make([]*kgo.Record, 0, records)
	for i := range records {
		p := int32(i % parts)
		md := headers.Metadata{Group: l.Group(), Attempts: 1, Tier: tier.Name, DueAt: now, OriginalTopic: main, OriginalPartition: p,
			OriginalOffset: int64(i), OriginalTimestamp: now, FirstFailureAt: now, LastFailureAt: now}
		recs = append(recs, &kgo.Record{Topic: tier.Topic, Partition: p, Key: fmt.Appendf(nil, "k%04d", i),
			Value: bytes.Repeat([]byte{'v'}, valueBytes), Headers: headers.Encode(nil, md)})
	}
	// In batches of 16 KiB, so that a fetch brings about 60 records: more
	// than 30 fetches.
	w, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerBatchCompression(kgo.NoCompression()), kgo.ProducerBatchMaxBytes(16<<10))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	hook := &kafkatest.SlowFetches{Delay: 80 * time.Millisecond}
	r, err := relay.New([]*ladder.Ladder{l}, relay.WithExactlyOnce(true), relay.WithCommitInterval(time.Minute),
		relay.WithClientOpts(kgo.SeedBrokers(brokers...), kgo.FetchMaxBytes(64<<10), kgo.FetchMaxPartitionBytes(32<<10), kgo.WithHooks(hook)),
		relay.WithLogger(testLogger(t, slog.LevelInfo)))
	if err != nil {
		t.Fatal(err)
	}
	stop := runRelay(t, ctx, r)
	defer stop()
	var seen map[string]int
	kafkatest.WaitFor(t, "every re-feed visible to read_committed", 200*time.Millisecond, time.Minute, func() bool {
		seen = readCommitted(t, ctx, brokers, main)
		return len(seen) >= records
	})
	ends := hook.EndTxns.Load()
	stop()
	for k, n := range seen {
		if n != 1 {
			t.Errorf("a read_committed reader sees %s %d times; want once", k, n)
		}
	}
	if len(seen) != records {
		t.Errorf("a read_committed reader sees %d records; want %d", len(seen), records)
	}
	// The first transaction may end before the first fetch came back.
	if ends > 2 {
		t.Errorf("the relay ended %d transactions to re-feed a backlog of about %d fetches; want at most 2 (one once the tier is fetched to its end)", ends, records*valueBytes/(64<<10))
	}
	t.Logf("%d transactions ended (commit interval 1m)", ends)
}
