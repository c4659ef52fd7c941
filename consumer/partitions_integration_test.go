//go:build integration

package consumer_test

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kretry/kretry/consumer"
	"github.com/kretry/kretry/internal/kafkatest"
)

// TestForwardsFollowRaisedTierRealBroker raises the first tier from 3 to 6
// partitions while the consumer runs, as "kretry topics apply" does after the
// main topic was raised to 6: a failed record of main partition 5 goes to
// tier partition 2 (5 mod 3) before, and to partition 5 after, without a
// restart.
func TestForwardsFollowRaisedTierRealBroker(t *testing.T) {
	b := newRealBroker(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	raise := func(topic string) {
		t.Helper()
		resp, err := b.adm.UpdatePartitions(ctx, 6, topic)
		if err == nil {
			err = resp.Error()
		}
		if err != nil {
			t.Fatalf("raising %s to 6 partitions: %v", topic, err)
		}
		// The broker answers metadata with the new partitions a moment
		// after it acknowledged them: a client that loaded the topic
		// before would not know of them for minutes.
		waitReal(t, 30*time.Second, topic+" with 6 partitions", func() bool {
			req := kmsg.NewPtrMetadataRequest()
			rt := kmsg.NewMetadataRequestTopic()
			rt.Topic = kmsg.StringPtr(topic)
			req.Topics = append(req.Topics, rt)
			resp, err := req.RequestWith(ctx, b.cl)
			if err != nil || len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 6 {
				return false
			}
			for _, p := range resp.Topics[0].Partitions {
				if p.Leader < 0 {
					return false
				}
			}
			return true
		})
	}
	tier := b.ladder.Steps()[0].Topic
	raise(b.ladder.Topic())

	cons, err := consumer.New(b.cfg, consumer.HandlerFunc(func(context.Context, *kgo.Record) error { return errTransient }),
		consumer.WithRelay(false))
	if err != nil {
		t.Fatal(err)
	}
	rctx, stop := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() { errc <- cons.Run(rctx) }()
	defer func() {
		stop()
		if err := <-errc; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()

	// fail writes a record to main partition 5, which the handler fails,
	// and returns the tier partition it was forwarded to.
	fail := func(key string) int32 {
		t.Helper()
		before := kafkatest.EndOffsets(t, ctx, b.adm, tier)
		if err := b.cl.ProduceSync(ctx, &kgo.Record{Topic: b.ladder.Topic(), Partition: 5, Key: []byte(key)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
		var to int32 = -1
		waitReal(t, time.Minute, key+" in the tier", func() bool {
			for p, end := range kafkatest.EndOffsets(t, ctx, b.adm, tier) {
				if end > before[p] {
					to = p
					return true
				}
			}
			return false
		})
		return to
	}

	if p := fail("before"); p != 2 {
		t.Errorf("before the raise, forwarded to %s[%d], want 5 mod 3 = 2", tier, p)
	}
	raise(tier)
	// The record before the raise had the count read; the next read is
	// due this long after.
	time.Sleep(consumer.PartitionRefreshEvery)
	if p := fail("after"); p != 5 {
		t.Errorf("after the raise, forwarded to %s[%d], want 5", tier, p)
	}
}
