//go:build integration

package relay_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/headers"
	"github.com/kretry/kretry/internal/kafkatest"
	"github.com/kretry/kretry/ladder"
	"github.com/kretry/kretry/relay"
)

// TestReparkOnRealBroker: a record of a 1s tier that asked to wait 3.5s
// (consumer.RetryAfter) is re-parked in its tier every second and re-fed
// once, not before 3.5s after its failure; nothing else reaches the main
// topic and the tier is committed past its last re-park. In both modes.
func TestReparkOnRealBroker(t *testing.T) {
	for _, mode := range []struct {
		name string
		eos  bool
	}{
		{"at least once", false},
		{"exactly once", true},
	} {
		t.Run(mode.name, func(t *testing.T) {
			testReparkOnRealBroker(t, []relay.Opt{relay.WithExactlyOnce(mode.eos)}, mode.eos)
		})
	}
}

func testReparkOnRealBroker(t *testing.T, opts []relay.Opt, eos bool) {
	brokers := kafkatest.Brokers(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rl := newRealLadder(t, ctx, brokers, time.Second, 1, 1)
	l, tier := rl.l, rl.tier
	const wait = 3500 * time.Millisecond

	reg := prometheus.NewRegistry()
	m := newMetrics(t, reg)
	r, err := relay.New([]*ladder.Ladder{l}, append([]relay.Opt{relay.WithClientOpts(kgo.SeedBrokers(brokers...)),
		relay.WithRegisterer(reg), relay.WithLogger(testLogger(t, slog.LevelDebug)), relay.WithFetchMaxWait(fetchMaxWait())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	stop := runRelay(t, ctx, r)
	defer stop()

	rd, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(l.Topic()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.FetchMaxWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()

	failedAt := time.Now().UTC().Truncate(time.Millisecond)
	md := headers.Metadata{
		Group: l.Group(), Attempts: 1, Tier: tier.Name, DueAt: failedAt.Add(wait),
		OriginalTopic: l.Topic(), OriginalPartition: 0, OriginalOffset: 42,
		OriginalTimestamp: failedAt, FirstFailureAt: failedAt, LastFailureAt: failedAt, Error: "429: Retry-After 3.5",
	}
	rec := &kgo.Record{Topic: tier.Topic, Partition: 0, Key: []byte("k"), Value: []byte("v"), Headers: headers.Encode(nil, md)}
	if err := rl.cl.ProduceSync(ctx, rec).FirstErr(); err != nil {
		t.Fatal(err)
	}

	var got *kgo.Record
	var seenAt time.Time
	for got == nil && ctx.Err() == nil {
		rd.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			if got != nil {
				t.Errorf("a second record on the main topic: %s", show(r.Headers))
			}
			got, seenAt = r, time.Now()
		})
	}
	if got == nil {
		t.Fatal("the record was not re-fed within 2 minutes")
	}
	t.Logf("re-fed %v after its failure (visible %v after it), due after %v", got.Timestamp.Sub(failedAt), seenAt.Sub(failedAt), wait)
	if got.Timestamp.Before(md.DueAt) || seenAt.Before(md.DueAt) {
		t.Errorf("re-fed at %s (seen at %s), before its due time %s", headers.FormatTime(got.Timestamp),
			headers.FormatTime(seenAt), headers.FormatTime(md.DueAt))
	}
	if gmd, _, err := headers.Decode(got.Headers); err != nil || gmd != md {
		t.Errorf("re-fed metadata %+v, %v, want %+v", gmd, err, md)
	}
	if _, parked := headers.ParkedAt(got.Headers); parked {
		t.Errorf("the re-fed record carries kretry-parked-at")
	}
	// A little longer: nothing else comes.
	pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
	rd.PollFetches(pctx).EachRecord(func(r *kgo.Record) { t.Errorf("a second record on the main topic: %s", show(r.Headers)) })
	pcancel()
	stop()

	reparks := metricValue(t, m.Reparked.WithLabelValues(l.Topic(), tier.Name))
	t.Logf("re-parked %v times", reparks)
	if reparks < 2 || reparks > 3 {
		t.Errorf("kretry_reparked_total = %v, want 3 (2 when the relay was half a second late)", reparks)
	}
	ends, err := rl.adm.ListEndOffsets(ctx, tier.Topic)
	if err != nil {
		t.Fatal(err)
	}
	end, _ := ends.Lookup(tier.Topic, 0)
	offs, err := rl.adm.FetchOffsets(ctx, r.Group())
	if err != nil {
		t.Fatal(err)
	}
	committed, _ := offs.Lookup(tier.Topic, 0)
	want := end.Offset
	if eos {
		want-- // the last offset is the marker of the transaction that wrote the last re-park
	}
	if committed.At != want {
		t.Errorf("the relay committed %s[0] at %d, want %d (its end %d)", tier.Topic, committed.At, want, end.Offset)
	}
}
