package metrics_test

import (
	"context"
	"fmt"
	"math"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/consumer"
)

// TestMainConsumerCounters: without the relay, each outcome of the main
// consumer moves its counters, the handler duration is observed per call, and
// kprom's client metrics are on the same registry while Run runs.
func TestMainConsumerCounters(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCluster(t, "orders")
		reg := prometheus.NewRegistry()
		h := newScripted()
		stop := c.start(t, c.config("orders", "g"), h, consumer.WithRegisterer(reg), consumer.WithRelay(false))
		c.produce(t, "orders", "ok-1", "ok-2", "heal-1", "perm-1", "panic-1")

		waitFor(t, "5 records finished", func() bool { return value(t, reg, "kretry_records_total") == 5 })
		want(t, reg, 2, "kretry_records_total", "topic", "orders", "outcome", "ok")
		want(t, reg, 1, "kretry_records_total", "topic", "orders", "outcome", "retried")
		want(t, reg, 2, "kretry_records_total", "topic", "orders", "outcome", "dead_lettered")
		want(t, reg, 1, "kretry_forwarded_total", "topic", "orders", "tier", "retry-5s")
		want(t, reg, 2, "kretry_forwarded_total", "topic", "orders", "tier", "dlq")
		want(t, reg, 1, "kretry_dead_lettered_total", "topic", "orders", "reason", "permanent")
		want(t, reg, 1, "kretry_dead_lettered_total", "topic", "orders", "reason", "panic")
		want(t, reg, 5, "kretry_handler_duration_seconds", "topic", "orders")
		want(t, reg, 0, "kretry_refed_total")

		if len(names(t, reg, "kretry_client_")) == 0 {
			t.Error("no kprom client metric (kretry_client_*) on the registry while Run runs")
		}
		// The consumer's client produced the 3 forwards.
		if v := value(t, reg, "kretry_client_produce_bytes_total", "component", "consumer"); v <= 0 {
			t.Errorf(`kretry_client_produce_bytes_total{component="consumer"} = %v, want > 0`, v)
		}

		stop()
		if left := names(t, reg, "kretry_client_"); len(left) > 0 {
			t.Errorf("kprom metrics still registered after Run returned: %v", left)
		}
		// kretry's own counters stay: they are the registry's, not the run's.
		want(t, reg, 2, "kretry_records_total", "topic", "orders", "outcome", "ok")
	})
}

// TestLadderCounters: with the relay, re-feeds are counted by tier, the
// lateness histogram is observed once per re-feed, and paused_partitions rises
// while a record waits in a tier and falls back to 0.
func TestLadderCounters(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCluster(t, "orders")
		reg := prometheus.NewRegistry()
		h := newScripted()
		stop := c.start(t, c.config("orders", "g"), h, consumer.WithRegisterer(reg))
		c.produce(t, "orders", "ok-1", "heal-1", "always-1")

		var maxPaused float64
		waitFor(t, "always-1 dead-lettered", func() bool {
			maxPaused = max(maxPaused, value(t, reg, "kretry_paused_partitions"))
			return value(t, reg, "kretry_dead_lettered_total", "reason", "exhausted") == 1
		})
		if maxPaused < 1 {
			t.Errorf("kretry_paused_partitions never rose above 0 while records waited in a tier")
		}
		waitFor(t, "paused partitions back to 0", func() bool { return value(t, reg, "kretry_paused_partitions") == 0 })
		// The relay counts a re-feed once its poll loop sees the broker's
		// acknowledgement, which may be after the consumer handled the
		// re-fed record.
		waitFor(t, "the re-feeds counted", func() bool { return value(t, reg, "kretry_refed_total") == 3 })

		// heal-1: fails, retry-5s, re-fed, ok. always-1: fails, retry-5s,
		// re-fed, fails, retry-1m, re-fed, fails, DLQ (exhausted).
		want(t, reg, 2, "kretry_records_total", "topic", "orders", "outcome", "ok")
		want(t, reg, 3, "kretry_records_total", "topic", "orders", "outcome", "retried")
		want(t, reg, 1, "kretry_records_total", "topic", "orders", "outcome", "dead_lettered")
		want(t, reg, 2, "kretry_forwarded_total", "topic", "orders", "tier", "retry-5s")
		want(t, reg, 1, "kretry_forwarded_total", "topic", "orders", "tier", "retry-1m")
		want(t, reg, 1, "kretry_forwarded_total", "topic", "orders", "tier", "dlq")
		want(t, reg, 2, "kretry_refed_total", "topic", "orders", "tier", "retry-5s")
		want(t, reg, 1, "kretry_refed_total", "topic", "orders", "tier", "retry-1m")
		want(t, reg, 2, "kretry_refeed_lateness_seconds", "tier", "retry-5s")
		want(t, reg, 1, "kretry_refeed_lateness_seconds", "tier", "retry-1m")
		want(t, reg, 1, "kretry_dead_lettered_total", "topic", "orders", "reason", "exhausted")
		if !h.succeeded("heal-1") || !h.succeeded("ok-1") {
			t.Errorf("handler successes: %v", h.ok)
		}

		// The relay's clients export franz-go's metrics on the same registry.
		for _, comp := range []string{"relay-consumer", "relay-producer"} {
			if v := value(t, reg, "kretry_client_connects_total", "component", comp, "group", "g-relay"); v <= 0 {
				t.Errorf(`kretry_client_connects_total{component=%q,group="g-relay"} = %v, want > 0`, comp, v)
			}
		}
		stop()
		if left := names(t, reg, "kretry_client_"); len(left) > 0 {
			t.Errorf("kprom metrics still registered after Run returned: %v", left)
		}
	})
}

// TestNilRegisterer: a consumer and its relay without a registerer count
// nowhere and work.
func TestNilRegisterer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCluster(t, "orders")
		h := newScripted()
		c.start(t, c.config("orders", "g"), h, consumer.WithRegisterer(nil))
		c.produce(t, "orders", "ok-1", "heal-1")
		waitFor(t, "heal-1 handled after its retry", func() bool { return h.succeeded("heal-1") && h.succeeded("ok-1") })
	})
}

// TestTwoConsumersOneRegistry: two consumers (and their relays) of different
// topics on one registry both run, and their counts land under their topics.
func TestTwoConsumersOneRegistry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCluster(t, "a", "b")
		reg := prometheus.NewRegistry()
		ha, hb := newScripted(), newScripted()
		c.start(t, c.config("a", "ga"), ha, consumer.WithRegisterer(reg))
		c.start(t, c.config("b", "gb"), hb, consumer.WithRegisterer(reg))
		c.produce(t, "a", "ok-1", "heal-1")
		c.produce(t, "b", "ok-1", "heal-1", "perm-1")

		waitFor(t, "both heal-1 handled", func() bool { return ha.succeeded("heal-1") && hb.succeeded("heal-1") })
		waitFor(t, "the counters", func() bool { return value(t, reg, "kretry_records_total", "outcome", "ok") == 4 })
		// The relay counts a re-feed once its poll loop sees the broker's
		// acknowledgement, which may be after the consumer handled the
		// re-fed record.
		waitFor(t, "the re-feeds counted", func() bool { return value(t, reg, "kretry_refed_total") == 2 })
		want(t, reg, 2, "kretry_records_total", "topic", "a", "outcome", "ok")
		want(t, reg, 2, "kretry_records_total", "topic", "b", "outcome", "ok")
		want(t, reg, 1, "kretry_refed_total", "topic", "a", "tier", "retry-5s")
		want(t, reg, 1, "kretry_refed_total", "topic", "b", "tier", "retry-5s")
		want(t, reg, 0, "kretry_dead_lettered_total", "topic", "a")
		want(t, reg, 1, "kretry_dead_lettered_total", "topic", "b", "reason", "permanent")
		// Each consumer's client exports its own franz-go metrics, told apart
		// by the group label.
		for _, g := range []string{"ga", "gb"} {
			if v := value(t, reg, "kretry_client_connects_total", "component", "consumer", "group", g); v <= 0 {
				t.Errorf(`kretry_client_connects_total{component="consumer",group=%q} = %v, want > 0`, g, v)
			}
		}
	})
}

// TestHandlerDurationIsHandlerTime: kretry_handler_duration_seconds counts
// the time spent in the handler only, not the worker's wait for records
// between two bursts (virtual time stands still while the worker works, so
// the sum is exact).
func TestHandlerDurationIsHandlerTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCluster(t, "orders")
		reg := prometheus.NewRegistry()
		h := consumer.HandlerFunc(func(context.Context, *kgo.Record) error {
			time.Sleep(10 * time.Millisecond)
			return nil
		})
		c.start(t, c.config("orders", "g"), h, consumer.WithRegisterer(reg), consumer.WithRelay(false))
		c.produce(t, "orders", "a-1", "a-2", "a-3", "a-4")
		waitFor(t, "the first burst timed", func() bool { return value(t, reg, "kretry_handler_duration_seconds") == 4 })
		time.Sleep(time.Minute)
		c.produce(t, "orders", "b-1", "b-2", "b-3", "b-4")
		waitFor(t, "the second burst timed", func() bool { return value(t, reg, "kretry_handler_duration_seconds") == 8 })

		families, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range families {
			if f.GetName() != "kretry_handler_duration_seconds" {
				continue
			}
			h := f.GetMetric()[0].GetHistogram()
			if sum := h.GetSampleSum(); math.Abs(sum-0.08) > 1e-9 {
				t.Errorf("sum = %v s, want 8 calls of 10 ms = 0.08 s", sum)
			}
			for _, b := range h.GetBucket() {
				want := uint64(8)
				if b.GetUpperBound() < 0.01 {
					want = 0
				}
				if b.GetCumulativeCount() != want {
					t.Errorf("bucket le=%v: %d, want %d", b.GetUpperBound(), b.GetCumulativeCount(), want)
				}
			}
		}
	})
}

// TestHandlerDurationOfASlowCallAmongFastOnes: handler calls that return at
// once are timed in runs (one clock read per run), and one slow call among
// them is still counted as one call of its time, the others in the first
// bucket, with the exact sum.
func TestHandlerDurationOfASlowCallAmongFastOnes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCluster(t, "orders")
		reg := prometheus.NewRegistry()
		h := consumer.HandlerFunc(func(_ context.Context, r *kgo.Record) error {
			if string(r.Key) == "slow" {
				time.Sleep(3 * time.Millisecond)
			}
			return nil
		})
		c.start(t, c.config("orders", "g"), h, consumer.WithRegisterer(reg), consumer.WithRelay(false))
		var keys []string
		for i := range 300 {
			keys = append(keys, fmt.Sprint("fast-", i))
			if i == 200 {
				keys = append(keys, "slow")
			}
		}
		c.produce(t, "orders", keys...)
		waitFor(t, "every call timed", func() bool { return value(t, reg, "kretry_handler_duration_seconds") == 301 })

		families, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range families {
			if f.GetName() != "kretry_handler_duration_seconds" {
				continue
			}
			h := f.GetMetric()[0].GetHistogram()
			if sum := h.GetSampleSum(); math.Abs(sum-0.003) > 1e-9 {
				t.Errorf("sum = %v s, want the slow call's 3 ms", sum)
			}
			for _, b := range h.GetBucket() {
				want := uint64(300)
				if b.GetUpperBound() >= 0.003 {
					want = 301
				}
				if b.GetCumulativeCount() != want {
					t.Errorf("bucket le=%v: %d, want %d", b.GetUpperBound(), b.GetCumulativeCount(), want)
				}
			}
		}
	})
}
