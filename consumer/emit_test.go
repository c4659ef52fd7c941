package consumer_test

import (
	"context"
	"sort"
	"strings"
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

// Emit in at-least-once mode: the outputs of a successful call are produced,
// on the partition of their key, and the record is committed only once they
// are acknowledged (here the broker refuses writes for 20s); the
// outputs of a failed call are never produced; Emit outside a call is an
// error.
func TestEmit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCluster(t, 1, 1)
		const out = "orders.out"
		if _, err := c.adm.CreateTopics(context.Background(), 4, 1, nil, out); err != nil {
			t.Fatal(err)
		}
		c.produce(&kgo.Record{Key: []byte("ok")}, &kgo.Record{Key: []byte("fail")})
		stallUntil := time.Now().Add(20 * time.Second) // within the delivery timeout
		c.fake.ControlKey(int16(kmsg.Produce), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
			c.fake.KeepControl()
			req := kreq.(*kmsg.ProduceRequest)
			if time.Now().Before(stallUntil) {
				return kafkatest.RefuseProduce(req, kerr.NotEnoughReplicas.Code), nil, true
			}
			return nil, nil, false
		})
		var late atomic.Value
		var keptCtx context.Context
		h := consumer.HandlerFunc(func(ctx context.Context, r *kgo.Record) error {
			for _, suffix := range []string{"-a", "-b"} {
				if err := consumer.Emit(ctx, &kgo.Record{Topic: out, Key: []byte(string(r.Key) + suffix)}); err != nil {
					t.Errorf("Emit: %v", err)
				}
			}
			keptCtx = ctx
			if string(r.Key) == "fail" {
				return errTransient
			}
			return nil
		})
		r := c.start(h, consumer.WithRelay(false))
		time.Sleep(10 * time.Second)
		synctest.Wait()
		if got := c.committed(testGroup, testTopic)[0]; got != 0 {
			t.Errorf("committed offset %d while the outputs of offset 0 wait for their ack, want 0", got)
		}
		waitFor(t, "both records committed", func() bool { return c.committed(testGroup, testTopic)[0] == 2 })
		late.Store(consumer.Emit(keptCtx, &kgo.Record{Topic: out, Key: []byte("late")}))
		if err := r.stop(); err != nil {
			t.Fatalf("Run: %v", err)
		}
		if tier := c.read(c.ladder.Steps()[0].Topic); len(tier) != 1 || string(tier[0].Key) != "fail" {
			t.Errorf("the tier holds %d records, want the failed one only", len(tier))
		}
		if err, _ := late.Load().(error); err == nil || !strings.Contains(err.Error(), "after Handle returned") {
			t.Errorf("Emit after Handle returned = %v, want an error", err)
		}
		if err := consumer.Emit(context.Background(), &kgo.Record{Topic: out}); err == nil {
			t.Error("Emit with a context not of a Handle call: no error")
		}
		var keys []string
		for _, o := range c.read(out) {
			keys = append(keys, string(o.Key))
			// Kafka's murmur2 partition of the key, as kgo's default places it.
			want := kgo.StickyKeyPartitioner(nil).ForTopic(out).Partition(o, 4)
			if int(o.Partition) != want {
				t.Errorf("output %s on partition %d, want %d (its key's)", o.Key, o.Partition, want)
			}
		}
		sort.Strings(keys)
		if strings.Join(keys, ",") != "ok-a,ok-b" {
			t.Errorf("outputs %v, want ok-a and ok-b only: a failed call's outputs are never produced", keys)
		}
	})
}
