package consumer_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/config"
	"github.com/kretry/kretry/consumer"
	"github.com/kretry/kretry/internal/metrics"
	"github.com/kretry/kretry/ladder"
)

// outageRun offers rate records/s on 2 partitions for offer, to a handler
// whose dependency fails every call for outage from the start, with the
// ladder 1s, 2s (so that without a breaker a failing record reaches the DLQ
// within the outage), and returns how many records were offered and
// dead-lettered once every record is done; in virtual time.
func outageRun(t *testing.T, withBreaker, rebalance bool, rate int, offer, outage time.Duration) (offered, deadLettered int, opened float64, sawOpen bool) {
	cfg := newConfig()
	cfg.Topics[0].Tiers = []ladder.Tier{{Delay: time.Second}, {Delay: 2 * time.Second}}
	if withBreaker {
		cfg.Topics[0].CircuitBreaker = &config.CircuitBreaker{FailureRatio: 0.5, MinRecords: 100, Window: 30 * time.Second, OpenFor: 10 * time.Second}
	}
	c := newClusterWith(t, cfg, 2, 2)
	reg := prometheus.NewRegistry()
	start := time.Now()
	var handledOK atomic.Int64
	h := consumer.HandlerFunc(func(context.Context, *kgo.Record) error {
		if time.Since(start) < outage {
			return errors.New("dependency down")
		}
		handledOK.Add(1)
		return nil
	})
	cons, err := consumer.New(c.cfg, h, consumer.WithClientOpts(c.kopts...), consumer.WithRegisterer(reg))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- cons.Run(ctx) }()
	// Offer in batches every 100ms; with rebalance, a second member of the
	// group runs from 20s to 40s into the outage (two rebalances while the
	// breakers are open).
	per := rate / 10
	var second *running
	for tick := time.Duration(0); tick < offer; tick += 100 * time.Millisecond {
		switch {
		case rebalance && tick == 20*time.Second:
			second = c.start(h, consumer.WithRelay(false))
		case rebalance && tick == 40*time.Second:
			if err := second.stop(); err != nil {
				t.Errorf("second member's Run: %v", err)
			}
		}
		recs := make([]*kgo.Record, per)
		for i := range recs {
			recs[i] = &kgo.Record{Partition: int32(i % 2), Key: fmt.Appendf(nil, "%d-%d", tick/time.Millisecond, i)}
		}
		c.produce(recs...)
		offered += per
		if withBreaker && !sawOpen && cons.HealthState().BreakerOpen {
			sawOpen = true
		}
		time.Sleep(100 * time.Millisecond)
	}
	dlq := func() int {
		n := 0
		for _, e := range c.ends(c.ladder.DLQ()) {
			n += int(e)
		}
		return n
	}
	waitFor(t, "every record handled or dead-lettered", func() bool {
		return int(handledOK.Load())+dlq() == offered
	})
	cancel()
	if err := <-errc; err != nil {
		t.Fatalf("Run: %v", err)
	}
	m, _ := metrics.New(reg)
	if withBreaker {
		opened = metricValue(t, m.CircuitOpened.WithLabelValues(testTopic))
		if st := metricValue(t, m.CircuitState.WithLabelValues(testTopic)); st != 0 {
			t.Errorf("kretry_circuit_state = %v after the outage, want 0 (closed)", st)
		}
	}
	return offered, dlq(), opened, sawOpen
}

// The figure, scaled to kfake in virtual time: a dependency that
// fails every call for 60s while records are offered at a steady rate, then
// recovers. With the breaker at most 1% of the offered records are
// dead-lettered; without, every record that fails the ladder (1s, 2s)
// during the outage is. At rate 10000 (the figure) it takes about
// 35s of wall time, so the suite runs it at 200.
func TestCircuitBreakerOutage(t *testing.T) {
	const rate, offer, outage = 200, 90 * time.Second, 60 * time.Second
	for _, with := range []bool{false, true} {
		t.Run(fmt.Sprintf("breaker=%v", with), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				offered, dead, opened, sawOpen := outageRun(t, with, false, rate, offer, outage)
				t.Logf("figure: breaker=%v: %d records offered at %d/s over %v, dependency down for %v: %d dead-lettered (%.2f%%), breaker opened %v times",
					with, offered, rate, offer, outage, dead, 100*float64(dead)/float64(offered), opened)
				switch {
				case with && float64(dead) > 0.01*float64(offered):
					t.Errorf("with the breaker %d of %d records dead-lettered, want ≤ 1%%", dead, offered)
				case with && (opened < 1 || !sawOpen):
					t.Errorf("breaker opened %v times, open seen in HealthState %v; want it open during the outage", opened, sawOpen)
				case !with && dead < offered/2:
					t.Errorf("without the breaker %d of %d dead-lettered: the outage should have drained the records offered during it into the DLQ", dead, offered)
				}
			})
		})
	}
}

// Rebalances while the breaker is open: a member joins and leaves during
// the outage; its partitions move with their records unhandled and
// uncommitted, nothing is lost (every record is handled or dead-lettered)
// and the survivor's partitions are not left paused (every record offered
// after the outage is handled).
func TestCircuitBreakerRebalance(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		offered, dead, opened, _ := outageRun(t, true, true, 100, 80*time.Second, 60*time.Second)
		t.Logf("%d offered, %d dead-lettered, breaker opened %v times", offered, dead, opened)
		if float64(dead) > 0.01*float64(offered) {
			t.Errorf("%d of %d records dead-lettered, want ≤ 1%%", dead, offered)
		}
	})
}
