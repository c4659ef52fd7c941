//go:build integration

package relay_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/headers"
	"github.com/kretry/kretry/internal/kafkatest"
	"github.com/kretry/kretry/ladder"
	"github.com/kretry/kretry/relay"
)

// bigFetches counts the fetch responses of at least min bytes a client read.
type bigFetches struct {
	min int
	n   atomic.Int64
}

func (h *bigFetches) OnBrokerRead(_ kgo.BrokerMetadata, key int16, bytesRead int, _, _ time.Duration, err error) {
	const fetchKey = 1
	if key == fetchKey && err == nil && bytesRead >= h.min {
		h.n.Add(1)
	}
}

// TestRelayFetchesEveryPartitionsBatchAtOnceRealBroker parks one batch of
// 600 KB in each of four tier partitions, as a consumer's producer writes
// them in a burst (batches up to max.message.bytes), and checks that the
// relay fetches them together. A broker returns a batch larger than the
// fetch's per-partition limit only for the first partition of a response:
// with a limit under the batch size every fetch brought one partition's
// batch, and a burst was fetched after it fell due.
func TestRelayFetchesEveryPartitionsBatchAtOnceRealBroker(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	const (
		parts      = 4
		perPart    = 600
		valueBytes = 1000
	)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	rl := newRealLadder(t, ctx, brokers, time.Second, parts, parts)
	l, tier, adm, main, group := rl.l, rl.tier, rl.adm, rl.l.Topic(), rl.l.Group()
	w, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerBatchCompression(kgo.NoCompression()), kgo.ProducerLinger(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	now := time.Now()
	var recs []*kgo.Record
	for p := range int32(parts) {
		for i := range perPart {
			md := headers.Metadata{
				Group: group, Attempts: 1, Tier: tier.Name, DueAt: now,
				OriginalTopic: main, OriginalPartition: p, OriginalOffset: int64(i),
				OriginalTimestamp: now, FirstFailureAt: now, LastFailureAt: now, Error: "boom",
			}
			recs = append(recs, &kgo.Record{Topic: tier.Topic, Partition: p, Key: fmt.Appendf(nil, "key-%d-%d", p, i),
				Value: bytes.Repeat([]byte{'v'}, valueBytes), Headers: headers.Encode(nil, md)})
		}
	}
	if err := w.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}

	fetches := &bigFetches{min: perPart * valueBytes}
	r, err := relay.New([]*ladder.Ladder{l}, relay.WithClientOpts(kgo.SeedBrokers(brokers...), kgo.WithHooks(fetches)),
		relay.WithLogger(testLogger(t, slog.LevelInfo)))
	if err != nil {
		t.Fatal(err)
	}
	stop := runRelay(t, ctx, r)
	defer stop()
	kafkatest.WaitFor(t, "every record re-fed", 20*time.Millisecond, time.Minute, func() bool {
		ends, err := adm.ListEndOffsets(ctx, main)
		if err != nil {
			t.Fatal(err)
		}
		var n int64
		ends.Each(func(o kadm.ListedOffset) { n += o.Offset })
		return n >= parts*perPart
	})
	stop()
	if n := fetches.n.Load(); n >= parts {
		t.Errorf("the relay read the %d partitions' batches of %d KB in %d fetch responses: want them together, in fewer than %d",
			parts, perPart*valueBytes/1000, n, parts)
	}
}
