package metrics_test

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kretry/kretry/consumer"
	"github.com/kretry/kretry/internal/metrics"
	"github.com/kretry/kretry/ladder"
	"github.com/kretry/kretry/relay"
)

// TestLadderVecShowHide: a tier shown twice stays until both hide it, and a
// hide func called twice hides once.
func TestLadderVecShowHide(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	tiers := []metrics.TierInfo{
		{Group: "g", Topic: "orders", Tier: "retry-5s", Delay: 5 * time.Second, Attempts: 1},
		{Group: "g", Topic: "orders", Tier: "retry-10m", Delay: 10 * time.Minute, Attempts: 3},
	}
	hide1 := m.Ladder.Show(tiers)
	hide2 := m.Ladder.Show(tiers[1:])
	want(t, reg, 5, "kretry_tier_delay_seconds", "group", "g", "topic", "orders", "tier", "retry-5s")
	want(t, reg, 600, "kretry_tier_delay_seconds", "group", "g", "topic", "orders", "tier", "retry-10m")
	want(t, reg, 3, "kretry_tier_attempts", "group", "g", "topic", "orders", "tier", "retry-10m")

	hide1()
	hide1()
	want(t, reg, 0, "kretry_tier_delay_seconds", "tier", "retry-5s")
	want(t, reg, 600, "kretry_tier_delay_seconds", "tier", "retry-10m")
	want(t, reg, 3, "kretry_tier_attempts", "tier", "retry-10m")
	hide2()
	if n := names(t, reg, "kretry_tier_"); len(n) != 0 {
		t.Errorf("%v still exported after every Show was hidden", n)
	}
}

// TestLadderGauges: a consumer with its in-process relay, and a standalone
// relay of the same ladder on the same registry, export the ladder's delay
// and attempts while they run; the series stay while one of them runs and
// go when the last returns.
func TestLadderGauges(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCluster(t, "orders")
		reg := prometheus.NewRegistry()
		tiers := []ladder.Tier{{Delay: 5 * time.Second, Attempts: 1}, {Delay: time.Minute, Attempts: 3}}
		cfg := c.config("orders", "g")
		cfg.Topics[0].Tiers = tiers

		if n := names(t, reg, "kretry_tier_"); len(n) != 0 {
			t.Fatalf("%v exported before anything runs", n)
		}
		stopConsumer := c.start(t, cfg, newScripted(), consumer.WithRegisterer(reg))

		l, err := ladder.New("orders", "g", tiers)
		if err != nil {
			t.Fatal(err)
		}
		r, err := relay.New([]*ladder.Ladder{l}, relay.WithClientOpts(c.opts...),
			relay.WithRegisterer(reg), relay.WithGroup("g-standalone-relay"))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- r.Run(ctx) }()

		waitFor(t, "the ladder exported", func() bool {
			return value(t, reg, "kretry_tier_attempts", "tier", "retry-1m") == 3
		})
		for _, w := range []struct {
			tier            string
			delay, attempts float64
		}{{"retry-5s", 5, 1}, {"retry-1m", 60, 3}} {
			want(t, reg, w.delay, "kretry_tier_delay_seconds", "group", "g", "topic", "orders", "tier", w.tier)
			want(t, reg, w.attempts, "kretry_tier_attempts", "group", "g", "topic", "orders", "tier", w.tier)
		}

		stopConsumer()
		want(t, reg, 60, "kretry_tier_delay_seconds", "group", "g", "topic", "orders", "tier", "retry-1m")
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("relay Run: %v", err)
		}
		if n := names(t, reg, "kretry_tier_"); len(n) != 0 {
			t.Errorf("%v still exported after every consumer and relay returned", n)
		}
	})
}

// TestHealthGauges: while a consumer with its relay runs, kretry_ready and
// kretry_live of both are 1 once they have joined their groups, and the
// series go when Run returns.
func TestHealthGauges(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCluster(t, "orders")
		reg := prometheus.NewRegistry()
		stop := c.start(t, c.config("orders", "g"), newScripted(), consumer.WithRegisterer(reg))
		waitFor(t, "both ready", func() bool {
			return value(t, reg, "kretry_ready", "component", "consumer", "group", "g") == 1 &&
				value(t, reg, "kretry_ready", "component", "relay", "group", "g-relay") == 1
		})
		want(t, reg, 1, "kretry_live", "component", "consumer", "group", "g")
		want(t, reg, 1, "kretry_live", "component", "relay", "group", "g-relay")
		stop()
		if n := names(t, reg, "kretry_live"); len(n) != 0 {
			t.Errorf("%v still exported after Run returned", n)
		}
	})
}
