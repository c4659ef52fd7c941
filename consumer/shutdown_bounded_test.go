package consumer_test

import (
	"context"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kretry/kretry/consumer"
)

// dropProduce makes c's broker answer no produce request once cut is set,
// as a broker that lost its disks or its network for writes does.
func (c *cluster) dropProduce() *atomic.Bool {
	var cut atomic.Bool
	c.fake.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.fake.KeepControl()
		if cut.Load() {
			return nil, nil, true
		}
		return nil, nil, false
	})
	return &cut
}

// With the broker unreachable, Run returns within the grace period plus the
// producer's delivery timeout plus a few seconds, and leaves the record
// whose forward was never acknowledged uncommitted: it is delivered again.
func TestShutdownIsBoundedWithoutBroker(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCluster(t, 1, 1)
		c.produce(&kgo.Record{Key: []byte("ok")}, &kgo.Record{Key: []byte("fail")}, &kgo.Record{Key: []byte("after")})
		cut := c.dropProduce()
		var calls counter
		h := consumer.HandlerFunc(func(_ context.Context, r *kgo.Record) error {
			calls.add(r.Key)
			if string(r.Key) == "fail" {
				cut.Store(true) // the forward of this record never reaches the broker
				return errTransient
			}
			return nil
		})
		const grace = 10 * time.Second
		const deliveryTimeout = 30 * time.Second
		r := c.start(h, consumer.WithRelay(false), consumer.WithGracePeriod(grace), consumer.WithClientOpts(kgo.RecordDeliveryTimeout(deliveryTimeout)))
		waitFor(t, "the record after the failed one handled", func() bool { return calls.get("after") == 1 })
		time.Sleep(time.Second)
		start := time.Now()
		stopped := make(chan error, 1)
		go func() { stopped <- r.stop() }()
		var err error
		select {
		case err = <-stopped:
		case <-time.After(5 * time.Minute):
			cut.Store(false) // let Run end, for the test to end
			t.Fatal("Run still running 5 minutes after its context was cancelled, with the broker unreachable")
		}
		took := time.Since(start)
		t.Logf("Run returned %v after cancel, error: %v", took, err)
		if limit := grace + deliveryTimeout + 5*time.Second; took > limit {
			t.Errorf("Run returned %v after cancel, want at most %v (grace + delivery timeout + 5s)", took, limit)
		}
		cut.Store(false)
		if got := c.committed(testGroup, testTopic)[0]; got > 1 {
			t.Errorf("committed offset %d, want at most 1: the failed record's forward was never acknowledged", got)
		}
		if n := len(c.read(c.ladder.Steps()[0].Topic)); n != 0 {
			t.Errorf("%d records in the tier, want 0", n)
		}
	})
}
