//go:build integration

package retrytopics_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/internal/kafkatest"
	"github.com/kretry/kretry/retrytopics"
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
	md := func(due time.Time, tierName string) retrytopics.Metadata {
		return retrytopics.Metadata{
			Group: l.Group(), Attempts: 1, Tier: tierName, DueAt: due,
			OriginalTopic: main, OriginalPartition: 0, OriginalTimestamp: failed, FirstFailureAt: failed, LastFailureAt: failed,
		}
	}
	far := time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC)
	recs := []*kgo.Record{
		{Topic: tier.Topic, Key: []byte("far"), Headers: retrytopics.Encode(hdr("trace", "1"), md(far, forgedTier))},
		{Topic: tier.Topic, Key: []byte("behind"), Headers: retrytopics.Encode(nil, md(failed.Add(tier.Delay), tier.Name))},
	}
	if err := rl.cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}

	var logs kafkatest.Buffer
	reg := prometheus.NewRegistry()
	m := newMetrics(t, reg)
	r, err := retrytopics.NewRelay([]*retrytopics.Ladder{l}, retrytopics.WithRelayClientOpts(kgo.SeedBrokers(brokers...)),
		retrytopics.WithRelayRegisterer(reg), retrytopics.WithRelayLogger(slog.New(slog.NewTextHandler(&logs, nil))))
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
	gmd, _, err := retrytopics.Decode(got[0].Headers)
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
