//go:build integration

package consumer_test

import (
	"bytes"
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/consumer"
	"github.com/kretry/kretry/internal/kafkatest"
)

// An exactly-once consumer handles a backlog that takes dozens of fetches,
// each answered 80 ms late. Between two fetches its polls bring nothing
// while every record handed out is done; it does not take that for idle: it
// ends its transaction once it has fetched the topic to its end, not after
// every fetch (each end stops handing out records for the end's round
// trips). Every record is handled once and committed.
func TestExactlyOnceBacklogEndsOnceOnRealBroker(t *testing.T) {
	const (
		records    = 2000
		valueBytes = 1000
	)
	b := newRealBroker(t, 2)
	b.cfg.ExactlyOnce = true
	b.cfg.CommitInterval = time.Minute
	// In batches of 16 KiB, so that a fetch brings about 60 records: more
	// than 30 fetches.
	w, err := kgo.NewClient(kgo.SeedBrokers(b.seeds...), kgo.ProducerBatchCompression(kgo.NoCompression()),
		kgo.ProducerBatchMaxBytes(16<<10), kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	recs := make([]*kgo.Record, 0, records)
	for i := range records {
		recs = append(recs, &kgo.Record{Topic: b.ladder.Topic(), Key: fmt.Appendf(nil, "k%04d", i), Value: bytes.Repeat([]byte{'v'}, valueBytes)})
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := w.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	var handled atomic.Int64
	hook := &kafkatest.SlowFetches{Delay: 80 * time.Millisecond}
	stop := b.run(consumer.HandlerFunc(func(context.Context, *kgo.Record) error {
		handled.Add(1)
		return nil
	}), consumer.WithRelay(false), consumer.WithClientOpts(kgo.FetchMaxBytes(64<<10), kgo.FetchMaxPartitionBytes(32<<10), kgo.WithHooks(hook)))
	kafkatest.WaitFor(t, "every record committed", 100*time.Millisecond, time.Minute, func() bool {
		return b.committedSum(b.cfg.Group, b.ladder.Topic()) >= records
	})
	ends := hook.EndTxns.Load()
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if n := handled.Load(); n != records {
		t.Errorf("handled %d records; want %d, each once", n, records)
	}
	if ends > 2 {
		t.Errorf("the consumer ended %d transactions to handle a backlog of about %d fetches; want at most 2 (one once the topic is fetched to its end)", ends, records*valueBytes/(64<<10))
	}
	t.Logf("%d transactions ended (commit interval 1m)", ends)
}
