//go:build integration

package relay_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/headers"
	"github.com/kretry/kretry/internal/kafkatest"
	"github.com/kretry/kretry/ladder"
	"github.com/kretry/kretry/relay"
)

// TestRelayFollowsRaisedMainTopicRealBroker raises the main topic from 3 to
// 6 partitions while the relay runs: a record of original partition 5 is
// re-fed to partition 2 (5 mod 3) before, and to partition 5 after, without
// a restart.
func TestRelayFollowsRaisedMainTopicRealBroker(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	rl := newRealLadder(t, ctx, brokers, time.Second, 3, 6)
	l, tier, cl, adm, main, group := rl.l, rl.tier, rl.cl, rl.adm, rl.l.Topic(), rl.l.Group()

	r, err := relay.New([]*ladder.Ladder{l}, relay.WithClientOpts(kgo.SeedBrokers(brokers...)),
		relay.WithLogger(testLogger(t, slog.LevelInfo)))
	if err != nil {
		t.Fatal(err)
	}
	defer runRelay(t, ctx, r)()

	// refeed writes a record of original partition 5, due now, to tier
	// partition 5, and waits until the main topic holds one more record.
	// It returns the main partition that got it.
	refeed := func(key string) int32 {
		t.Helper()
		before := kafkatest.EndOffsets(t, ctx, adm, main)
		now := time.Now()
		md := headers.Metadata{
			Group: group, Attempts: 1, Tier: tier.Name, DueAt: now,
			OriginalTopic: main, OriginalPartition: 5, OriginalOffset: now.UnixNano(), // one attempt per call: the relay skips copies of one
			OriginalTimestamp: now, FirstFailureAt: now, LastFailureAt: now,
		}
		rec := &kgo.Record{Topic: tier.Topic, Partition: 5, Key: []byte(key), Headers: headers.Encode(nil, md)}
		if err := cl.ProduceSync(ctx, rec).FirstErr(); err != nil {
			t.Fatal(err)
		}
		for {
			after := kafkatest.EndOffsets(t, ctx, adm, main)
			for p, end := range after {
				if end > before[p] {
					t.Logf("%s re-fed to %s[%d] %v after it was due", key, main, p, time.Since(now).Round(time.Millisecond))
					return p
				}
			}
			if ctx.Err() != nil {
				t.Fatalf("%s was not re-fed", key)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	if p := refeed("before"); p != 2 {
		t.Errorf("before the raise, re-fed to partition %d, want 5 mod 3 = 2", p)
	}
	resp, err := adm.UpdatePartitions(ctx, 6, main)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		t.Fatalf("raising %s to 6 partitions: %v", main, err)
	}
	kafkatest.WaitTopics(t, adm, main)
	// The record before the raise had the count read; the next read is due
	// this long after.
	time.Sleep(relay.PartitionRefreshEvery)
	if p := refeed("after"); p != 5 {
		t.Errorf("after the raise, re-fed to partition %d, want 5", p)
	}
}
