package consumer_test

import (
	"context"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kretry/kretry/consumer"
	"github.com/kretry/kretry/internal/kafkatest"
)

// While a forward waits for its ack, the records handled after it wait to be
// marked; their number is bounded (maxPending, 1,000), so a tier the broker
// does not take holds up its partition instead of piling records up in
// memory. Once the forward is acknowledged, everything is marked.
func TestStalledForwardHoldsUpItsPartition(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCluster(t, 1, 1)
		const ok = 3000
		recs := []*kgo.Record{{Key: []byte("fail")}}
		for range ok {
			recs = append(recs, &kgo.Record{Key: []byte("ok")})
		}
		c.produce(recs...)

		// The broker refuses every write from now on (the consumer's
		// forward, to tier), retriably, for a minute: the forward stays in
		// flight.
		tier := c.ladder.Steps()[0].Topic
		stallUntil := time.Now().Add(time.Minute)
		c.fake.ControlKey(int16(kmsg.Produce), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
			c.fake.KeepControl()
			req := kreq.(*kmsg.ProduceRequest)
			if !time.Now().Before(stallUntil) {
				return nil, nil, false
			}
			return kafkatest.RefuseProduce(req, kerr.NotEnoughReplicas.Code), nil, true
		})

		var handled atomic.Int64
		h := consumer.HandlerFunc(func(_ context.Context, r *kgo.Record) error {
			handled.Add(1)
			if string(r.Key) == "fail" {
				return errTransient
			}
			return nil
		})
		r := c.start(h, consumer.WithRelay(false))
		time.Sleep(30 * time.Second)
		synctest.Wait()
		if n := handled.Load(); n > 1000 {
			t.Errorf("%d records handled while the forward before them waits for its ack, want at most 1,000", n)
		}
		if got := c.committed(testGroup, testTopic); got[0] > 0 {
			t.Errorf("committed offsets %v while the forward of offset 0 waits for its ack", got)
		}

		waitFor(t, "every record handled", func() bool { return handled.Load() == ok+1 })
		waitFor(t, "every record committed", func() bool { return c.committed(testGroup, testTopic)[0] == ok+1 })
		if err := r.stop(); err != nil {
			t.Fatalf("Run: %v", err)
		}
		if n := len(c.read(tier)); n != 1 {
			t.Errorf("%s holds %d records, want the one forward", tier, n)
		}
	})
}
