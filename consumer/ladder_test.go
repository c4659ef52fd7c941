package consumer_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/consumer"
	"github.com/kretry/kretry/headers"
	"github.com/kretry/kretry/internal/metrics"
)

// delivery is one call of the handler.
type delivery struct {
	at time.Time
	md headers.Metadata
}

// deliveries records the handler's calls by key.
type deliveries struct {
	mu sync.Mutex
	by map[string][]delivery
}

func (d *deliveries) add(t *testing.T, r *kgo.Record) int {
	md, _, err := headers.Decode(r.Headers)
	if err != nil {
		t.Errorf("the handler got unreadable kretry headers: %v", err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.by == nil {
		d.by = map[string][]delivery{}
	}
	d.by[string(r.Key)] = append(d.by[string(r.Key)], delivery{time.Now(), md})
	return len(d.by[string(r.Key)])
}

func (d *deliveries) get(key string) []delivery {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]delivery(nil), d.by[key]...)
}

// A record that always fails walks the whole ladder, 5s → 1m → 10m → 10m,
// with the relay of Run re-feeding it no earlier than due each time, and ends
// in the DLQ with every header of the contract right.
func TestAlwaysFailingRecordWalksTheLadder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCluster(t, 4, 4)
		reg := prometheus.NewRegistry()
		var seen deliveries
		h := consumer.HandlerFunc(func(_ context.Context, r *kgo.Record) error {
			n := seen.add(t, r)
			return fmt.Errorf("attempt %d: %w", n, errTransient)
		})
		producedAt := time.Now().Add(-time.Second)
		orig := &kgo.Record{Partition: 2, Key: []byte("order-7"), Value: []byte{0, 1, 2, 0xff}, Timestamp: producedAt,
			Headers: []kgo.RecordHeader{{Key: "trace-id", Value: []byte("t-1")}, {Key: "empty"}, {Key: "trace-id", Value: []byte("t-2")}}}
		c.produce(orig)

		r := c.start(h, consumer.WithRegisterer(reg))
		waitFor(t, "the DLQ record", func() bool { return len(c.read(c.ladder.DLQ())) == 1 })
		if err := r.stop(); err != nil {
			t.Fatalf("Run: %v", err)
		}

		got := seen.get("order-7")
		if len(got) != 5 {
			t.Fatalf("handled %d times, want 5 (first delivery and 4 re-feeds)", len(got))
		}
		wantTier := []string{"", "retry-5s", "retry-1m", "retry-10m", "retry-10m"}
		wantDelay := []time.Duration{0, 5 * time.Second, time.Minute, 10 * time.Minute, 10 * time.Minute}
		for i, d := range got {
			if d.md.Tier != wantTier[i] || d.md.Attempts != i {
				t.Errorf("delivery %d: tier %q attempts %d, want %q and %d", i+1, d.md.Tier, d.md.Attempts, wantTier[i], i)
			}
			if i == 0 {
				continue
			}
			due := got[i-1].at.Add(wantDelay[i])
			if d.at.Before(due) {
				t.Errorf("delivery %d at %v, before its due time %v (failure at %v + %v)", i+1, d.at, due, got[i-1].at, wantDelay[i])
			}
			if d.at.Before(d.md.DueAt) {
				t.Errorf("delivery %d at %v, before kretry-due-at %v", i+1, d.at, d.md.DueAt)
			}
			t.Logf("delivery %d: %v after the failure before it, due after %v", i+1, d.at.Sub(got[i-1].at), wantDelay[i])
		}
		last := got[4].at
		dlq := c.read(c.ladder.DLQ())[0]
		if dlq.Partition != 2 {
			t.Errorf("DLQ partition = %d, want 2", dlq.Partition)
		}
		checkForwarded(t, dlq, orig, headers.Metadata{
			Group: testGroup, Attempts: 5, Tier: "retry-10m", DueAt: last,
			OriginalTopic: testTopic, OriginalPartition: 2, OriginalOffset: 0, OriginalTimestamp: producedAt,
			FirstFailureAt: got[0].at, LastFailureAt: last,
			Error: "attempt 5: transient failure", Reason: headers.ReasonExhausted,
		})
		if _, ok := header(dlq, headers.HeaderReplays); ok {
			t.Error("a DLQ record never replayed carries kretry-replays")
		}

		m, err := metrics.New(reg)
		if err != nil {
			t.Fatal(err)
		}
		for tier, want := range map[string]float64{"retry-5s": 1, "retry-1m": 1, "retry-10m": 2, metrics.TierDLQ: 1} {
			if got := metricValue(t, m.Forwarded.WithLabelValues(testTopic, tier)); got != want {
				t.Errorf("kretry_forwarded_total{tier=%s} = %v, want %v", tier, got, want)
			}
		}
		if got := metricValue(t, m.DeadLettered.WithLabelValues(testTopic, "exhausted", "dlq")); got != 1 {
			t.Errorf("kretry_dead_lettered_total{reason=exhausted} = %v, want 1", got)
		}
		if got := metricValue(t, m.Records.WithLabelValues(testTopic, metrics.OutcomeRetried)); got != 4 {
			t.Errorf("kretry_records_total{outcome=retried} = %v, want 4", got)
		}
		// The main topic holds the record and its 4 re-feeds, all committed.
		if got, want := c.committed(testGroup, testTopic), c.ends(testTopic); got[2] != want[2] || want[2] != 5 {
			t.Errorf("committed %v, end offsets %v: want partition 2 committed at its end, 5", got, want)
		}
	})
}

func TestFailsTwiceThenSucceeds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCluster(t, 2, 2)
		var seen deliveries
		h := consumer.HandlerFunc(func(_ context.Context, r *kgo.Record) error {
			if seen.add(t, r) <= 2 {
				return errTransient
			}
			return nil
		})
		c.produce(&kgo.Record{Partition: 1, Key: []byte("k")})
		r := c.start(h)
		waitFor(t, "the third delivery", func() bool { return len(seen.get("k")) == 3 })
		// Long enough for a fourth delivery, if there were one.
		time.Sleep(30 * time.Minute)
		if err := r.stop(); err != nil {
			t.Fatalf("Run: %v", err)
		}
		got := seen.get("k")
		if len(got) != 3 {
			t.Errorf("handled %d times, want 3", len(got))
		}
		if got[2].at.Sub(got[1].at) < time.Minute || got[1].at.Sub(got[0].at) < 5*time.Second {
			t.Errorf("re-feeds too early: %v after the first failure, %v after the second", got[1].at.Sub(got[0].at), got[2].at.Sub(got[1].at))
		}
		if n := len(c.read(c.ladder.DLQ())); n != 0 {
			t.Errorf("DLQ holds %d records, want 0", n)
		}
		if got, want := c.committed(testGroup, testTopic), c.ends(testTopic); got[1] != want[1] {
			t.Errorf("committed %v, want the end offsets %v", got, want)
		}
	})
}

// A second consumer (with its relay) that joins and leaves while the relay
// holds a tier partition paused for a not-yet-due record leaves nothing
// stuck: the record is re-fed when due and handled.
func TestJoinAndLeaveDuringRelayPause(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCluster(t, 2, 2)
		var seen deliveries
		h := consumer.HandlerFunc(func(_ context.Context, r *kgo.Record) error {
			if seen.add(t, r) <= 3 {
				return errTransient
			}
			return nil
		})
		// franz-go's autocommit waits on a sync.RWMutex during a join, which
		// synctest does not count as durably blocked; see
		// TestRebalanceDuringPauseLeavesNothingPaused.
		opts := []consumer.Opt{consumer.WithClientOpts(kgo.AutoCommitInterval(24 * time.Hour))}
		c.produce(&kgo.Record{Partition: 0, Key: []byte("k")}, &kgo.Record{Partition: 1, Key: []byte("j")})
		a := c.start(h, opts...)
		// After the third failure both records wait 10 minutes in retry-10m.
		waitFor(t, "three failures each", func() bool { return len(seen.get("k")) == 3 && len(seen.get("j")) == 3 })
		time.Sleep(time.Minute)
		b := c.start(h, opts...)
		time.Sleep(2 * time.Minute)
		if err := b.stop(); err != nil {
			t.Fatalf("B: %v", err)
		}
		waitFor(t, "the fourth deliveries", func() bool { return len(seen.get("k")) >= 4 && len(seen.get("j")) >= 4 })
		if err := a.stop(); err != nil {
			t.Fatalf("A: %v", err)
		}
		for _, key := range []string{"k", "j"} {
			got := seen.get(key)
			if wait := got[3].at.Sub(got[2].at); wait < 10*time.Minute {
				t.Errorf("%s re-fed %v after its third failure, before its 10m tier was due", key, wait)
			}
		}
		if n := len(c.read(c.ladder.DLQ())); n != 0 {
			t.Errorf("DLQ holds %d, want 0", n)
		}
	})
}
