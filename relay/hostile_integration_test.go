//go:build integration

package relay_test

import (
	"bytes"
	"context"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/headers"
	"github.com/kretry/kretry/internal/kafkatest"
	"github.com/kretry/kretry/ladder"
	"github.com/kretry/kretry/relay"
	"github.com/kretry/kretry/topics"
)

// TestRelayDoesNotTrustFarDueAtRealBroker: a tier record whose
// kretry-due-at is in 2099 (forged, or a writer's clock far ahead) held every
// record behind it in its partition. The relay re-feeds it at its last
// failure plus its tier's delay instead, with that due time and the tier's
// own name in its headers, logs it with the values quoted and counts it; the
// record behind it follows.
func TestRelayDoesNotTrustFarDueAtRealBroker(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	rl := newRealLadder(t, ctx, brokers, 2*time.Second, 1, 1)
	l, tier, main := rl.l, rl.tier, rl.l.Topic()

	failed := time.Now().UTC().Truncate(time.Millisecond)
	forgedTier := "retry-\x1b[2J\x1b[31mforged\r\nlevel=ERROR"
	md := func(due time.Time, tierName string) headers.Metadata {
		return headers.Metadata{
			Group: l.Group(), Attempts: 1, Tier: tierName, DueAt: due,
			OriginalTopic: main, OriginalPartition: 0, OriginalOffset: due.UnixNano(), // two attempts, not copies of one
			OriginalTimestamp: failed, FirstFailureAt: failed, LastFailureAt: failed,
		}
	}
	far := time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC)
	recs := []*kgo.Record{
		{Topic: tier.Topic, Key: []byte("far"), Headers: headers.Encode(hdr("trace", "1"), md(far, forgedTier))},
		{Topic: tier.Topic, Key: []byte("behind"), Headers: headers.Encode(nil, md(failed.Add(tier.Delay), tier.Name))},
	}
	if err := rl.cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}

	var logs kafkatest.Buffer
	reg := prometheus.NewRegistry()
	m := newMetrics(t, reg)
	r, err := relay.New([]*ladder.Ladder{l}, relay.WithClientOpts(kgo.SeedBrokers(brokers...)),
		relay.WithRegisterer(reg), relay.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	if err != nil {
		t.Fatal(err)
	}
	stop := runRelay(t, ctx, r)
	defer stop()

	// Without the bound, nothing of the partition is ever re-fed: a
	// failure here is the stall.
	kafkatest.WaitFor(t, "both records re-fed", 50*time.Millisecond, time.Minute, func() bool {
		return kafkatest.EndOffsets(t, ctx, rl.adm, main)[0] >= 2
	})
	stop()
	got := readAll(t, ctx, brokers, main, 2)
	if string(got[0].Key) != "far" || string(got[1].Key) != "behind" {
		t.Fatalf("main topic holds %q, %q; want far, behind in their tier order", got[0].Key, got[1].Key)
	}
	gmd, _, err := headers.Decode(got[0].Headers)
	if err != nil {
		t.Fatal(err)
	}
	bound := failed.Add(tier.Delay)
	if !gmd.DueAt.Equal(bound) || gmd.Tier != tier.Name {
		t.Errorf("re-fed record carries kretry-due-at %v, kretry-tier %q; want %v and %q", gmd.DueAt, gmd.Tier, bound, tier.Name)
	}
	if got[0].Timestamp.Before(bound) {
		t.Errorf("re-fed at %v, before its bound %v", got[0].Timestamp, bound)
	}
	if n := metricValue(t, m.UntrustedDueAt.WithLabelValues(main, tier.Name)); n != 1 {
		t.Errorf("kretry_untrusted_due_at_total = %v, want 1", n)
	}
	out := logs.String()
	if !strings.Contains(out, `2099-01-01T00:00:00.000Z`) || !strings.Contains(out, "not trusted") {
		t.Errorf("the relay did not log the untrusted due time:\n%s", out)
	}
	if strings.ContainsAny(out, "\x1b\r") {
		t.Errorf("the relay logged a control character from a record:\n%q", out)
	}
}

// readAll reads the first n records of topic, partition 0.
func readAll(t *testing.T, ctx context.Context, brokers []string, topic string, n int) []*kgo.Record {
	t.Helper()
	rd, err := kgo.NewClient(kgo.SeedBrokers(brokers...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().AtStart()}}))
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	var out []*kgo.Record
	for len(out) < n {
		fs := rd.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d records of %s: %v", len(out), n, topic, ctx.Err())
		}
		out = append(out, fs.Records()...)
	}
	return out[:n]
}

// TestLargeRecordThroughTheLadderRealBroker: a record the main topic
// accepts (here 2 MiB, under its max.message.bytes of 3 MiB) must fit in its
// tier and DLQ topics with kretry's headers, and the relay must re-feed it.
// Apply creates the tier with the main topic's max.message.bytes plus room
// for the headers and raises the DLQ, made elsewhere with the broker's
// default (1 MiB); the relay's producer takes batches as large as its
// targets take (kgo's default stops at 1,000,012 bytes).
func TestLargeRecordThroughTheLadderRealBroker(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	l, err := ladder.New(kafkatest.Name(t, "orders"), kafkatest.Name(t, "svc"), []ladder.Tier{{Delay: time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	tier := l.Steps()[0]
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerBatchMaxBytes(8<<20), kgo.FetchMaxBytes(16<<20), kgo.FetchMaxPartitionBytes(16<<20))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	names := []string{l.Topic(), tier.Topic, l.DLQ()}
	t.Cleanup(func() { _, _ = adm.DeleteTopics(context.Background(), names...) })
	const mainMax = 3 << 20
	if _, err := adm.CreateTopic(ctx, 1, 1, map[string]*string{"max.message.bytes": kadm.StringPtr(strconv.Itoa(mainMax))}, l.Topic()); err != nil {
		t.Fatal(err)
	}
	if _, err := adm.CreateTopic(ctx, 1, 1, nil, l.DLQ()); err != nil {
		t.Fatal(err)
	}
	kafkatest.WaitTopics(t, adm, l.Topic(), l.DLQ())

	plan, err := topics.Plan(ctx, adm, []topics.Provision{{Ladder: l}})
	if err != nil {
		t.Fatal(err)
	}
	want := topics.WantMaxMessageBytes(l, mainMax)
	for _, s := range plan.Topics {
		if s.WantMaxMessageBytes != want {
			t.Errorf("%s: plan wants max.message.bytes %d, want %d", s.Topic, s.WantMaxMessageBytes, want)
		}
		if s.Topic == l.DLQ() && (s.MaxMessageBytes >= want || !slices.Contains(s.Actions, topics.ActionRaiseMaxMessageBytes)) {
			t.Errorf("DLQ: max.message.bytes %d, actions %v; want it raised", s.MaxMessageBytes, s.Actions)
		}
	}
	if _, err := topics.Apply(ctx, adm, plan); err != nil {
		t.Fatal(err)
	}
	if again, err := topics.Plan(ctx, adm, []topics.Provision{{Ladder: l}}); err != nil || len(again.Changes()) != 0 {
		t.Fatalf("plan after apply: %v, changes %+v", err, again.Changes())
	}

	// The largest record the main topic takes, as the consumer forwards it.
	value := bytes.Repeat([]byte{'v'}, 2<<20)
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: l.Topic(), Value: value}).FirstErr(); err != nil {
		t.Fatalf("the main topic refuses a 2 MiB record: %v", err)
	}
	now := time.Now()
	md := headers.Metadata{
		Group: l.Group(), Attempts: 1, Tier: tier.Name, DueAt: now, OriginalTopic: l.Topic(),
		OriginalTimestamp: now, FirstFailureAt: now, LastFailureAt: now, Error: strings.Repeat("e", headers.MaxErrorLen),
	}
	for _, to := range []string{tier.Topic, l.DLQ()} {
		rec := &kgo.Record{Topic: to, Key: []byte("big"), Value: value, Headers: headers.Encode(nil, md)}
		if err := cl.ProduceSync(ctx, rec).FirstErr(); err != nil {
			t.Errorf("%s refuses the 2 MiB record with kretry's headers: %v", to, err)
		}
	}

	var logs kafkatest.Buffer
	r, err := relay.New([]*ladder.Ladder{l},
		relay.WithClientOpts(kgo.SeedBrokers(brokers...), kgo.FetchMaxBytes(16<<20), kgo.FetchMaxPartitionBytes(16<<20)),
		relay.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	if err != nil {
		t.Fatal(err)
	}
	stop := runRelay(t, ctx, r)
	defer stop()
	kafkatest.WaitFor(t, "the re-feed of the 2 MiB record", 50*time.Millisecond, time.Minute, func() bool {
		return kafkatest.EndOffsets(t, ctx, adm, l.Topic())[0] >= 2
	})
	stop()
	got := readAll(t, ctx, brokers, l.Topic(), 2)[1]
	if string(got.Key) != "big" || !bytes.Equal(got.Value, value) {
		t.Errorf("re-fed record: key %q, %d bytes of value; want big, %d bytes", got.Key, len(got.Value), len(value))
	}
	if strings.Contains(logs.String(), "could not") {
		t.Errorf("relay logged a failure:\n%s", logs.String())
	}
}

// TestRelayDeadLettersRecordTooLargeToRefeedRealBroker: a tier record whose
// re-feed, with its headers, is larger than the main topic takes (its
// max.message.bytes is 64 KiB; the tier and the DLQ take more, as topics
// apply makes them) stopped its tier partition: refused on every try. The
// relay dead-letters it with reason too-large and without its value, which
// its kretry-original-* headers locate, and re-feeds the record behind it;
// in the exactly-once mode too, without aborting its transactions in a loop.
func TestRelayDeadLettersRecordTooLargeToRefeedRealBroker(t *testing.T) {
	for _, mode := range []struct {
		name string
		eos  bool
	}{{"at least once", false}, {"exactly once", true}} {
		t.Run(mode.name, func(t *testing.T) { testRelayTooLarge(t, mode.eos) })
	}
}

func testRelayTooLarge(t *testing.T, eos bool) {
	brokers := kafkatest.Brokers(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	l, err := ladder.New(kafkatest.Name(t, "orders"), kafkatest.Name(t, "svc"), []ladder.Tier{{Delay: time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	tier := l.Steps()[0]
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	t.Cleanup(func() { _, _ = adm.DeleteTopics(context.Background(), l.Topic(), tier.Topic, l.DLQ()) })
	if _, err := adm.CreateTopic(ctx, 1, 1, map[string]*string{"max.message.bytes": kadm.StringPtr("65536")}, l.Topic()); err != nil {
		t.Fatal(err)
	}
	kafkatest.WaitTopics(t, adm, l.Topic())
	if _, err := topics.EnsureTopics(ctx, adm, []topics.Provision{{Ladder: l}}); err != nil {
		t.Fatal(err)
	}

	now := time.Now()
	md := headers.Metadata{Group: l.Group(), Attempts: 1, Tier: tier.Name, DueAt: now, OriginalTopic: l.Topic(), OriginalOffset: 42,
		OriginalTimestamp: now, FirstFailureAt: now, LastFailureAt: now, Error: "boom"}
	big := &kgo.Record{Topic: tier.Topic, Key: []byte("big"), Value: bytes.Repeat([]byte{'v'}, 64000),
		Headers: headers.Encode([]kgo.RecordHeader{{Key: "trace", Value: bytes.Repeat([]byte{'t'}, 1500)}}, md)}
	bmd := md
	bmd.OriginalOffset = 43 // another attempt: a copy of big's would be skipped
	behind := &kgo.Record{Topic: tier.Topic, Key: []byte("behind"), Value: []byte("v"), Headers: headers.Encode(nil, bmd)}
	if err := cl.ProduceSync(ctx, big, behind).FirstErr(); err != nil {
		t.Fatal(err)
	}

	reg := prometheus.NewRegistry()
	m := newMetrics(t, reg)
	r, err := relay.New([]*ladder.Ladder{l}, relay.WithClientOpts(kgo.SeedBrokers(brokers...)),
		relay.WithExactlyOnce(eos), relay.WithRegisterer(reg), relay.WithLogger(testLogger(t, slog.LevelInfo)))
	if err != nil {
		t.Fatal(err)
	}
	stop := runRelay(t, ctx, r)
	defer stop()
	read := func(topic string) []*kgo.Record {
		rd, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
			kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().AtStart()}}))
		if err != nil {
			t.Fatal(err)
		}
		defer rd.Close()
		pctx, pcancel := context.WithTimeout(ctx, time.Second)
		defer pcancel()
		return rd.PollFetches(pctx).Records()
	}
	// Without the dead letter, the partition never gets past "big".
	kafkatest.WaitFor(t, "the record behind the too-large one re-fed, the too-large one dead-lettered", 200*time.Millisecond, time.Minute, func() bool {
		return len(read(l.Topic())) == 1 && len(read(l.DLQ())) == 1
	})
	stop()
	if got := read(l.Topic())[0]; string(got.Key) != "behind" {
		t.Errorf("main topic holds %q, want behind", got.Key)
	}
	d := read(l.DLQ())[0]
	dmd, _, err := headers.Decode(d.Headers)
	if err != nil {
		t.Fatal(err)
	}
	if string(d.Key) != "big" || len(d.Value) != 0 || dmd.Reason != headers.ReasonTooLarge || dmd.OriginalTopic != l.Topic() ||
		dmd.OriginalOffset != 42 || dmd.Tier != tier.Name || !strings.Contains(dmd.Error, "value of 64000 bytes omitted") {
		t.Errorf("DLQ record: key %q, %d bytes of value, metadata %+v; want big without its value, reason too-large, original offset 42", d.Key, len(d.Value), dmd)
	}
	if n := metricValue(t, m.TooLarge.WithLabelValues(l.Topic())); n != 1 {
		t.Errorf("kretry_too_large_total = %v, want 1", n)
	}
	offs, err := adm.FetchOffsets(ctx, r.Group())
	if err != nil {
		t.Fatal(err)
	}
	if o, ok := offs.Lookup(tier.Topic, 0); !ok || o.At != 2 {
		t.Errorf("tier committed at %+v, want 2", o)
	}
}
