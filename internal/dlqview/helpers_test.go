package dlqview_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/dlq"
	"github.com/kretry/kretry/headers"
	"github.com/kretry/kretry/internal/dlqview"
	"github.com/kretry/kretry/internal/kafkatest"
)

// base is the time the test DLQ's records are dead-lettered around.
var base = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)

// entry is one record to put in a test DLQ.
type entry struct {
	p      int32
	at     time.Duration // after base
	key    string
	reason headers.Reason // "": no kretry headers
	orig   string
	err    string
	value  string
}

// fill is the test DLQ of the dlq package's tests (2 partitions).
var fill = []entry{
	{0, 0, "k1", headers.ReasonPermanent, "orders", "order 17 not found", `{"id":17}`},
	{0, 20 * time.Minute, "k2", headers.ReasonExhausted, "orders", "timeout after 30s", "v2"},
	{0, 65 * time.Minute, "k3", "", "", "", "v3"},
	{0, 90 * time.Minute, "k1", headers.ReasonPermanent, "payments", "order 99 not found", "v4"},
	{1, 10 * time.Minute, "k4", headers.ReasonPanic, "orders", "nil map", "v5"},
	{1, 120 * time.Minute, "k5", headers.ReasonExhausted, "payments", "timeout after 45s", "v6"},
}

func newFake(t *testing.T) []string {
	t.Helper()
	_, seeds := kafkatest.Fake(t, kfake.NumBrokers(1), kfake.SeedTopics(2, "orders.dlq", "orders", "payments"))
	return seeds
}

func producer(t *testing.T, seeds []string) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func put(t *testing.T, seeds []string, topic string, es ...entry) {
	t.Helper()
	cl := producer(t, seeds)
	for i, e := range es {
		rec := &kgo.Record{
			Topic: topic, Partition: e.p, Key: []byte(e.key), Value: []byte(e.value),
			Timestamp: base.Add(e.at),
			Headers:   []kgo.RecordHeader{{Key: "trace", Value: fmt.Appendf(nil, "t%d", i)}},
		}
		if e.reason != "" {
			rec.Headers = headers.Encode(rec.Headers, testMeta(e.orig, e.p, int64(100+i), e.reason, e.err))
		}
		if err := cl.ProduceSync(context.Background(), rec).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
}

func newReader(t *testing.T, seeds []string) *dlq.Reader {
	t.Helper()
	r, err := dlq.NewReader("orders.dlq", dlq.WithClientOpts(kgo.SeedBrokers(seeds...)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r
}

func testMeta(topic string, p int32, o int64, reason headers.Reason, errText string) headers.Metadata {
	at := time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)
	return headers.Metadata{
		Group: "orders-service", Attempts: 3, Tier: "retry-1m", DueAt: at,
		OriginalTopic: topic, OriginalPartition: p, OriginalOffset: o, OriginalTimestamp: at.Add(-time.Minute),
		FirstFailureAt: at.Add(-time.Minute), LastFailureAt: at, Error: errText, Reason: reason,
	}
}

// The JSON form of a record carries its headers, key, value and metadata.
func TestRecordJSON(t *testing.T) {
	seeds := newFake(t)
	put(t, seeds, "orders.dlq", fill...)
	rec, err := newReader(t, seeds).Record(context.Background(), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	j := dlqview.Record(rec)
	if j.Reason != "permanent" || *j.KeyText != "k1" || *j.ValueText != `{"id":17}` || j.OriginalTopic != "orders" ||
		*j.OriginalOffset != 100 || j.Attempts != 3 || j.Error != "order 17 not found" || j.Headers[0].Key != "trace" {
		t.Errorf("record 0/0 as JSON: %+v", j)
	}
}
