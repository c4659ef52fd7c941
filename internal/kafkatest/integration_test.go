//go:build integration

// These tests prove the harness against a real Apache Kafka broker: what
// kretry's integration tests rely on (headers, timestamps, topic configs,
// group commits, transactions, pausing) works on the broker Brokers returns.
package kafkatest_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/internal/kafkatest"
)

// testCtx bounds a test so a broken broker fails it instead of hanging.
func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func newClient(t *testing.T, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(kafkatest.Brokers(t)...)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// createTopic creates a topic with partitions and deletes it when the test ends.
func createTopic(t *testing.T, adm *kadm.Client, partitions int32, configs map[string]*string) string {
	t.Helper()
	topic := kafkatest.Name(t, "kafkatest")
	ctx := testCtx(t)
	resp, err := adm.CreateTopic(ctx, partitions, 1, configs, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		t.Fatalf("creating topic %s: %v", topic, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		adm.DeleteTopics(ctx, topic)
	})
	kafkatest.WaitTopics(t, adm, topic)
	return topic
}

// consume polls cl until it has n records or ctx ends.
func consume(t *testing.T, ctx context.Context, cl *kgo.Client, n int) []*kgo.Record {
	t.Helper()
	var recs []*kgo.Record
	for len(recs) < n {
		fs := cl.PollRecords(ctx, n-len(recs))
		if err := ctx.Err(); err != nil {
			t.Fatalf("got %d of %d records: %v", len(recs), n, err)
		}
		fs.EachError(func(topic string, p int32, err error) {
			t.Fatalf("fetching %s[%d]: %v", topic, p, err)
		})
		recs = append(recs, fs.Records()...)
	}
	return recs
}

func values(recs []*kgo.Record) []string {
	var vs []string
	for _, r := range recs {
		vs = append(vs, string(r.Value))
	}
	return vs
}

func TestRecordsRoundTripHeadersAndTimestamps(t *testing.T) {
	ctx := testCtx(t)
	adm := kadm.NewClient(newClient(t))
	topic := createTopic(t, adm, 1, nil)

	base := time.Date(2026, 3, 4, 5, 6, 7, 8_000_000, time.UTC)
	sent := []*kgo.Record{
		{Topic: topic, Key: []byte("k1"), Value: []byte("v1"), Timestamp: base, Headers: []kgo.RecordHeader{
			{Key: "kretry-attempts", Value: []byte("1")},
			{Key: "trace", Value: []byte("a")},
			{Key: "trace", Value: []byte("b")}, // repeated keys keep their order
			{Key: "empty", Value: nil},
		}},
		{Topic: topic, Key: nil, Value: []byte{0, 1, 2, 255}, Timestamp: base.Add(-48 * time.Hour)},
		{Topic: topic, Key: []byte("k3"), Value: nil, Timestamp: base.Add(time.Millisecond), Headers: []kgo.RecordHeader{
			{Key: "utf8", Value: []byte("héllo ✓")},
		}},
	}
	producer := newClient(t, kgo.DefaultProduceTopic(topic))
	if err := producer.ProduceSync(ctx, sent...).FirstErr(); err != nil {
		t.Fatal(err)
	}

	consumer := newClient(t, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	got := consume(t, ctx, consumer, len(sent))
	for i, r := range got {
		w := sent[i]
		if r.Offset != int64(i) {
			t.Errorf("record %d: offset %d", i, r.Offset)
		}
		if !bytes.Equal(r.Key, w.Key) || (r.Key == nil) != (w.Key == nil) {
			t.Errorf("record %d: key %q, want %q", i, r.Key, w.Key)
		}
		if !bytes.Equal(r.Value, w.Value) || (r.Value == nil) != (w.Value == nil) {
			t.Errorf("record %d: value %q, want %q", i, r.Value, w.Value)
		}
		if !r.Timestamp.Equal(w.Timestamp) {
			t.Errorf("record %d: timestamp %v, want %v", i, r.Timestamp, w.Timestamp)
		}
		if r.Attrs.TimestampType() != 0 {
			t.Errorf("record %d: timestamp type %d, want 0 (create time)", i, r.Attrs.TimestampType())
		}
		if len(r.Headers) != len(w.Headers) {
			t.Errorf("record %d: headers %v, want %v", i, r.Headers, w.Headers)
			continue
		}
		for j, h := range r.Headers {
			if h.Key != w.Headers[j].Key || !bytes.Equal(h.Value, w.Headers[j].Value) {
				t.Errorf("record %d header %d: %s=%q, want %s=%q", i, j, h.Key, h.Value, w.Headers[j].Key, w.Headers[j].Value)
			}
		}
	}
}

func TestCreateTopicsWithConfigs(t *testing.T) {
	ctx := testCtx(t)
	adm := kadm.NewClient(newClient(t))
	want := map[string]string{
		"retention.ms":        "172800000",
		"cleanup.policy":      "delete",
		"max.message.bytes":   "2097152",
		"min.insync.replicas": "1",
	}
	configs := map[string]*string{}
	for k, v := range want {
		configs[k] = kadm.StringPtr(v)
	}
	topic := createTopic(t, adm, 3, configs)

	details, err := adm.ListTopics(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	if td := details[topic]; td.Err != nil || len(td.Partitions) != 3 {
		t.Fatalf("topic %s: %d partitions (err %v), want 3", topic, len(td.Partitions), td.Err)
	}

	rcs, err := adm.DescribeTopicConfigs(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := rcs.On(topic, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rc.Err != nil {
		t.Fatal(rc.Err)
	}
	seen := map[string]bool{}
	for _, c := range rc.Configs {
		w, ok := want[c.Key]
		if !ok {
			continue
		}
		seen[c.Key] = true
		if c.MaybeValue() != w {
			t.Errorf("%s = %q, want %q", c.Key, c.MaybeValue(), w)
		}
		if c.Source.String() != "DYNAMIC_TOPIC_CONFIG" {
			t.Errorf("%s comes from %s, want DYNAMIC_TOPIC_CONFIG", c.Key, c.Source)
		}
	}
	for k := range want {
		if !seen[k] {
			t.Errorf("config %s missing from DescribeTopicConfigs", k)
		}
	}

	// Creating it again is the broker's TOPIC_ALREADY_EXISTS, which a
	// provisioning step must be able to recognise.
	resp, err := adm.CreateTopic(ctx, 3, 1, nil, topic)
	if err == nil {
		err = resp.Err
	}
	if !errors.Is(err, kerr.TopicAlreadyExists) {
		t.Fatalf("second create: %v, want TOPIC_ALREADY_EXISTS", err)
	}
}

func TestGroupCommitAndResume(t *testing.T) {
	ctx := testCtx(t)
	adm := kadm.NewClient(newClient(t))
	topic := createTopic(t, adm, 1, nil)
	group := kafkatest.Name(t, "group")

	var recs []*kgo.Record
	for i := range 10 {
		recs = append(recs, &kgo.Record{Topic: topic, Value: fmt.Appendf(nil, "%d", i)})
	}
	if err := newClient(t).ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}

	groupOpts := []kgo.Opt{
		kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit(),
	}
	first := newClient(t, groupOpts...)
	got := consume(t, ctx, first, 4)
	if err := first.CommitRecords(ctx, got...); err != nil {
		t.Fatal(err)
	}
	first.Close() // leaves the group

	offsets, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		t.Fatal(err)
	}
	if o, ok := offsets.Lookup(topic, 0); !ok || o.Err != nil || o.At != 4 {
		t.Fatalf("committed offset of %s[0] = %+v (found %v), want 4", topic, o, ok)
	}

	second := newClient(t, groupOpts...)
	rest := consume(t, ctx, second, 6)
	if want := []string{"4", "5", "6", "7", "8", "9"}; !slices.Equal(values(rest), want) {
		t.Fatalf("resumed with %v, want %v", values(rest), want)
	}
}

func TestGroupTransactSessionReadCommitted(t *testing.T) {
	ctx := testCtx(t)
	adm := kadm.NewClient(newClient(t))
	in := createTopic(t, adm, 1, nil)
	out := createTopic(t, adm, 1, nil)
	group := kafkatest.Name(t, "group")

	var inRecs []*kgo.Record
	for i := range 5 {
		inRecs = append(inRecs, &kgo.Record{Topic: in, Value: fmt.Appendf(nil, "r%d", i)})
	}
	if err := newClient(t).ProduceSync(ctx, inRecs...).FirstErr(); err != nil {
		t.Fatal(err)
	}

	// An aborted transaction on out: read_committed must never show it.
	aborter := newClient(t, kgo.TransactionalID(kafkatest.Name(t, "txn-abort")), kgo.DefaultProduceTopic(out))
	if err := aborter.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := aborter.ProduceSync(ctx, &kgo.Record{Value: []byte("aborted")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if err := aborter.EndTransaction(ctx, kgo.TryAbort); err != nil {
		t.Fatal(err)
	}

	sess, err := kgo.NewGroupTransactSession(
		kgo.SeedBrokers(kafkatest.Brokers(t)...),
		kgo.TransactionalID(kafkatest.Name(t, "txn")),
		kgo.ConsumerGroup(group), kgo.ConsumeTopics(in),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
	)
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	for done := 0; done < len(inRecs); {
		fs := sess.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("transformed %d of %d records: %v", done, len(inRecs), ctx.Err())
		}
		fs.EachError(func(topic string, p int32, err error) { t.Fatalf("fetching %s[%d]: %v", topic, p, err) })
		if fs.NumRecords() == 0 {
			continue
		}
		if err := sess.Begin(); err != nil {
			t.Fatal(err)
		}
		var produced []*kgo.Record
		fs.EachRecord(func(r *kgo.Record) {
			produced = append(produced, &kgo.Record{Topic: out, Value: []byte(strings.ToUpper(string(r.Value)))})
		})
		if err := sess.ProduceSync(ctx, produced...).FirstErr(); err != nil {
			t.Fatal(err)
		}
		committed, err := sess.End(ctx, kgo.TryCommit)
		if err != nil || !committed {
			t.Fatalf("ending the transaction: committed %v, %v", committed, err)
		}
		done += len(produced)
	}

	committed := newClient(t, kgo.ConsumeTopics(out), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	got := consume(t, ctx, committed, 5)
	if want := []string{"R0", "R1", "R2", "R3", "R4"}; !slices.Equal(values(got), want) {
		t.Fatalf("read_committed read %v, want %v", values(got), want)
	}
	// The aborted record is in the log: read_uncommitted sees it first.
	uncommitted := newClient(t, kgo.ConsumeTopics(out), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadUncommitted()))
	if first := consume(t, ctx, uncommitted, 1); string(first[0].Value) != "aborted" {
		t.Fatalf("read_uncommitted starts with %q, want the aborted record", first[0].Value)
	}

	offsets, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		t.Fatal(err)
	}
	if o, ok := offsets.Lookup(in, 0); !ok || o.Err != nil || o.At != 5 {
		t.Fatalf("the transaction committed offset %+v (found %v) of %s[0], want 5", o, ok, in)
	}
}

func TestPauseResumePartition(t *testing.T) {
	ctx := testCtx(t)
	adm := kadm.NewClient(newClient(t))
	topic := createTopic(t, adm, 2, nil)
	producer := newClient(t, kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	produce := func(p int32, vs ...string) {
		t.Helper()
		var recs []*kgo.Record
		for _, v := range vs {
			recs = append(recs, &kgo.Record{Partition: p, Value: []byte(v)})
		}
		if err := producer.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}

	consumer := newClient(t, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	consumer.PauseFetchPartitions(map[string][]int32{topic: {0}})

	// Partition 0's records are written before partition 1's: a consumer that
	// fetched partition 0 would see them no later than partition 1's.
	produce(0, "p0-a", "p0-b")
	produce(1, "p1-a", "p1-b")
	for _, r := range consume(t, ctx, consumer, 2) {
		if r.Partition != 1 {
			t.Fatalf("got %s from paused partition %d", r.Value, r.Partition)
		}
	}
	produce(1, "p1-c")
	if r := consume(t, ctx, consumer, 1)[0]; r.Partition != 1 || string(r.Value) != "p1-c" {
		t.Fatalf("got %s from partition %d while partition 0 is paused, want p1-c", r.Value, r.Partition)
	}
	if paused := consumer.PauseFetchPartitions(nil); !slices.Equal(paused[topic], []int32{0}) {
		t.Fatalf("paused partitions %v, want %s[0]", paused, topic)
	}

	consumer.ResumeFetchPartitions(map[string][]int32{topic: {0}})
	got := consume(t, ctx, consumer, 2)
	if want := []string{"p0-a", "p0-b"}; !slices.Equal(values(got), want) || got[0].Partition != 0 || got[0].Offset != 0 {
		t.Fatalf("after resume got %v (partition %d, offset %d), want %v from offset 0 of partition 0",
			values(got), got[0].Partition, got[0].Offset, want)
	}
}
