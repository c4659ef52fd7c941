//go:build integration

package consumer_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/consumer"
	"github.com/kretry/kretry/internal/kafkatest"
)

// On the real broker, with the tier deleted under the consumer (its forward
// waits for a topic that is gone, as it would for a broker that does not
// answer), Run returns within the grace period plus the delivery timeout
// plus a few seconds of its context being cancelled, and the record whose
// forward was never acknowledged stays uncommitted: once the tier is back, a
// restarted consumer forwards it and commits to the end.
func TestShutdownIsBoundedOnRealBroker(t *testing.T) {
	verifyNoLeaks(t)
	b := newRealBroker(t, 1)
	tier := b.ladder.Steps()[0].Topic
	ctx := context.Background()
	b.cfg.DeliveryTimeout = 3 * time.Second
	const grace = 2 * time.Second
	main := b.ladder.Topic()
	if err := b.cl.ProduceSync(ctx, &kgo.Record{Topic: main, Key: []byte("ok")}, &kgo.Record{Topic: main, Key: []byte("fail")},
		&kgo.Record{Topic: main, Key: []byte("after")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	var calls counter
	var deleted atomic.Bool
	h := consumer.HandlerFunc(func(_ context.Context, r *kgo.Record) error {
		calls.add(r.Key)
		if string(r.Key) != "fail" {
			return nil
		}
		if !deleted.Swap(true) {
			if _, err := b.adm.DeleteTopics(ctx, tier); err != nil {
				t.Errorf("deleting %s: %v", tier, err)
			}
		}
		return errTransient
	})
	c, err := consumer.New(b.cfg, h, consumer.WithRelay(false), consumer.WithGracePeriod(grace))
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() { errc <- c.Run(rctx) }()
	waitReal(t, 60*time.Second, "the record after the failed one handled", func() bool { return calls.get("after") == 1 })
	time.Sleep(5 * time.Second) // the forward has waited longer than the delivery timeout
	start := time.Now()
	cancel()
	limit := grace + b.cfg.DeliveryTimeout + 10*time.Second
	select {
	case err := <-errc:
		took := time.Since(start)
		t.Logf("Run returned %v after cancel (grace %v, delivery timeout %v): %v", took.Round(time.Millisecond), grace, b.cfg.DeliveryTimeout, err)
		if took > limit {
			t.Errorf("Run returned %v after cancel, want at most %v", took, limit)
		}
	case <-time.After(2 * time.Minute):
		t.Fatalf("Run still running 2 minutes after cancel, want at most %v", limit)
	}
	os, err := b.adm.FetchOffsets(ctx, b.cfg.Group)
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := os.Lookup(main, 0); o.At > 1 {
		t.Errorf("committed offset %d, want at most 1: the failed record's forward was never acknowledged", o.At)
	}

	// The tier is back: the record is delivered again and forwarded.
	waitReal(t, 30*time.Second, "the tier created again", func() bool {
		resp, err := b.adm.CreateTopics(ctx, 1, 1, nil, tier)
		return err == nil && resp.Error() == nil
	})
	kafkatest.WaitTopics(t, b.adm, tier)
	c, err = consumer.New(b.cfg, h, consumer.WithRelay(false))
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel = context.WithCancel(ctx)
	go func() { errc <- c.Run(rctx) }()
	waitReal(t, 60*time.Second, "committed to the end", func() bool {
		os, err := b.adm.FetchOffsets(ctx, b.cfg.Group)
		o, _ := os.Lookup(main, 0)
		return err == nil && o.At == 3
	})
	cancel()
	if err := <-errc; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if n := len(b.readAll(tier)); n != 1 {
		t.Errorf("the tier holds %d records, want the failed one", n)
	}
}
