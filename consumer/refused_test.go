package consumer_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"testing/synctest"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kretry/kretry/consumer"
	"github.com/kretry/kretry/headers"
	"github.com/kretry/kretry/internal/kafkatest"
)

// setMaxMessageBytes sets topic's max.message.bytes.
func (c *cluster) setMaxMessageBytes(topic, v string) {
	c.t.Helper()
	rs, err := c.adm.AlterTopicConfigs(context.Background(),
		[]kadm.AlterConfig{{Name: "max.message.bytes", Value: kadm.StringPtr(v)}}, topic)
	if err == nil {
		_, err = rs.On(topic, nil)
	}
	if err != nil {
		c.t.Fatalf("setting max.message.bytes of %s: %v", topic, err)
	}
}

// counterValue is the value of the series of the counter name with the
// given label values in reg, 0 when there is none.
func counterValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if v, ok := labels[l.GetName()]; ok && v != l.GetValue() {
					continue next
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

// A record too large for its forward, to a retry tier or to the DLQ, goes
// to the DLQ without its value, with reason too-large and kretry-original-*
// saying where the value is, and is counted; the partition goes on past it.
// (The main topic took the record; the smaller limit of the target is what
// refuses it, in the client, whose batch limit follows the target's
// max.message.bytes.)
func TestTooLargeGoesToDLQWithoutItsValue(t *testing.T) {
	for _, tc := range []struct {
		name  string
		small func(*cluster) string // the topic that cannot take the record
		err   error
	}{
		{"tier", func(c *cluster) string { return c.ladder.Steps()[0].Topic }, errTransient},
		{"dlq", func(c *cluster) string { return c.ladder.DLQ() }, consumer.Permanent(errTransient)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				c := newCluster(t, 1, 1)
				c.setMaxMessageBytes(tc.small(c), "100000")
				h := consumer.HandlerFunc(func(_ context.Context, r *kgo.Record) error {
					if string(r.Key) == "big" {
						return tc.err
					}
					return nil
				})
				user := []kgo.RecordHeader{{Key: "trace", Value: []byte("abc")}}
				c.produce(&kgo.Record{Key: []byte("big"), Value: bytes.Repeat([]byte("x"), 200_000), Headers: user},
					&kgo.Record{Key: []byte("small"), Value: []byte("v")})
				reg := prometheus.NewRegistry()
				r := c.start(h, consumer.WithRelay(false), consumer.WithRegisterer(reg))
				waitFor(t, "the big record in the DLQ", func() bool { return len(c.read(c.ladder.DLQ())) == 1 })
				waitFor(t, "both records committed", func() bool { return c.committed(testGroup, testTopic)[0] == 2 })
				if err := r.stop(); err != nil {
					t.Fatalf("Run: %v", err)
				}
				if n := len(c.read(c.ladder.Steps()[0].Topic)); n != 0 {
					t.Errorf("%d records in the tier, want 0", n)
				}
				dlq := c.read(c.ladder.DLQ())[0]
				if string(dlq.Key) != "big" || len(dlq.Value) != 0 || userHeaders(dlq.Headers) != userHeaders(user) {
					t.Errorf("DLQ record: key %q, %d value bytes, user headers %s; want big, no value, %s",
						dlq.Key, len(dlq.Value), userHeaders(dlq.Headers), userHeaders(user))
				}
				md := c.dlqMetadata()
				if md.Reason != headers.ReasonTooLarge || md.OriginalTopic != testTopic || md.OriginalPartition != 0 ||
					md.OriginalOffset != 0 || !strings.Contains(md.Error, "value of 200000 bytes omitted") ||
					!strings.Contains(md.Error, "MESSAGE_TOO_LARGE") {
					t.Errorf("DLQ record: reason %q, original %s/%d@%d, error %q; want too-large, orders/0@0, the size and the refusal",
						md.Reason, md.OriginalTopic, md.OriginalPartition, md.OriginalOffset, md.Error)
				}
				if v := counterValue(t, reg, "kretry_too_large_total", map[string]string{"topic": testTopic}); v != 1 {
					t.Errorf("kretry_too_large_total{topic=orders} = %v, want 1", v)
				}
			})
		})
	}
}

// The consumer's producer takes batches as large as the target topic does
// (its max.message.bytes, here 2 MiB), not only kgo's 1,000,012-byte
// default: a record the tier accepts is forwarded there whole.
func TestBatchLimitFollowsTheTarget(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCluster(t, 1, 1)
		tier := c.ladder.Steps()[0].Topic
		c.setMaxMessageBytes(testTopic, "2097152")
		c.setMaxMessageBytes(tier, "2097152")
		big, err := kgo.NewClient(append(c.kopts, kgo.ProducerBatchMaxBytes(4<<20))...)
		if err != nil {
			t.Fatal(err)
		}
		defer big.Close()
		if err := big.ProduceSync(context.Background(),
			&kgo.Record{Topic: testTopic, Key: []byte("big"), Value: bytes.Repeat([]byte("x"), 1_500_000)}).FirstErr(); err != nil {
			t.Fatalf("produce: %v", err)
		}
		r := c.start(consumer.HandlerFunc(func(context.Context, *kgo.Record) error { return errTransient }),
			consumer.WithRelay(false))
		waitFor(t, "the big record in the tier", func() bool { return len(c.read(tier)) == 1 })
		if err := r.stop(); err != nil {
			t.Fatalf("Run: %v", err)
		}
		if got := c.read(tier)[0]; len(got.Value) != 1_500_000 {
			t.Errorf("tier record has %d value bytes, want 1,500,000", len(got.Value))
		}
		if n := len(c.read(c.ladder.DLQ())); n != 0 {
			t.Errorf("%d records in the DLQ, want 0", n)
		}
	})
}

// A record that neither its tier nor the DLQ accepts (the writes are not
// authorized) stops Run with an error that names it, and stays uncommitted:
// never lost, never spinning silently.
func TestRefusedEverywhereStopsRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCluster(t, 1, 1)
		h := consumer.HandlerFunc(func(_ context.Context, r *kgo.Record) error {
			if string(r.Key) == "denied" {
				return errors.New("boom")
			}
			return nil
		})
		c.produce(&kgo.Record{Key: []byte("denied")}, &kgo.Record{Key: []byte("small"), Value: []byte("v")})
		c.fake.ControlKey(int16(kmsg.Produce), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
			c.fake.KeepControl()
			return kafkatest.RefuseProduce(kreq.(*kmsg.ProduceRequest), kerr.TopicAuthorizationFailed.Code), nil, true
		})
		r := c.start(h, consumer.WithRelay(false))
		waitFor(t, "Run to stop on its own", func() bool { return len(r.errc) == 1 })
		err := r.stop()
		if err == nil || !strings.Contains(err.Error(), "orders/0@0 cannot be written to the DLQ") {
			t.Fatalf("Run returned %v, want the error that names orders/0@0", err)
		}
		// The group may be gone (nothing was ever committed): no offset then.
		if os, err := c.adm.FetchOffsets(context.Background(), testGroup); err == nil {
			if o, ok := os.Lookup(testTopic, 0); ok && o.Err == nil && o.At > 0 {
				t.Errorf("committed offset %d, want none: the refused record must stay uncommitted", o.At)
			}
		}
	})
}
