//go:build integration

package relay_test

import (
	"bytes"
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

// TestRelayParkedHoldsNothingRealBroker parks records due in 10 minutes in
// every partition of a tier, a few hundred KiB in all, well inside the far
// part of the hold budget: the relay pauses and rewinds every partition and
// holds none of them (kretry_held_bytes 0), as holding them would only save
// a fetch ten minutes from now; nothing is re-fed.
func TestRelayParkedHoldsNothingRealBroker(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	const (
		parts   = 4
		records = 400
	)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	rl := newRealLadder(t, ctx, brokers, 10*time.Minute, parts, parts)
	l, tier, cl, adm, main, group := rl.l, rl.tier, rl.cl, rl.adm, rl.l.Topic(), rl.l.Group()
	now := time.Now()
	var recs []*kgo.Record
	for i := range records {
		p := int32(i % parts)
		md := headers.Metadata{
			Group: group, Attempts: 1, Tier: tier.Name, DueAt: now.Add(tier.Delay),
			OriginalTopic: main, OriginalPartition: p, OriginalOffset: int64(i),
			OriginalTimestamp: now, FirstFailureAt: now, LastFailureAt: now, Error: "boom",
		}
		recs = append(recs, &kgo.Record{Topic: tier.Topic, Partition: p, Value: bytes.Repeat([]byte{'v'}, 256), Headers: headers.Encode(nil, md)})
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}

	reg := prometheus.NewRegistry()
	m := newMetrics(t, reg)
	r, err := relay.New([]*ladder.Ladder{l}, relay.WithClientOpts(kgo.SeedBrokers(brokers...)), relay.WithRegisterer(reg),
		relay.WithLogger(testLogger(t, slog.LevelInfo)))
	if err != nil {
		t.Fatal(err)
	}
	defer runRelay(t, ctx, r)()
	kafkatest.WaitFor(t, "every partition paused", 50*time.Millisecond, time.Minute, func() bool {
		return gauge(t, m, tier.Name) == parts
	})
	// A later poll could only find the same: every partition is paused.
	time.Sleep(time.Second)
	if held := metricValue(t, m.HeldBytes.WithLabelValues(tier.Name)); held != 0 {
		t.Errorf("kretry_held_bytes = %v with every head due in %v; want 0: paused and rewound, not held", held, tier.Delay)
	}
	if got := gauge(t, m, tier.Name); got != parts {
		t.Errorf("kretry_paused_partitions = %v; want %d", got, parts)
	}
	for p, end := range kafkatest.EndOffsets(t, ctx, adm, main) {
		if end != 0 {
			t.Errorf("%s[%d] holds %d records; want none re-fed 10 minutes early", main, p, end)
		}
	}
}
