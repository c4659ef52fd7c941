//go:build integration

package consumer_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/config"
	"github.com/kretry/kretry/consumer"
	"github.com/kretry/kretry/internal/kafkatest"
	"github.com/kretry/kretry/internal/metrics"
	"github.com/kretry/kretry/ladder"
)

// The circuit breaker on the real broker: a dependency down for 10s while
// 400 records are offered (ladder 1s, 2s, 3s, so that without a breaker
// they would reach the DLQ within the outage): the breaker opens, nothing
// is dead-lettered, every record is handled once the dependency is back,
// and the breaker ends closed.
func TestCircuitBreakerOnRealBroker(t *testing.T) {
	verifyNoLeaks(t)
	b := newRealBroker(t, 2)
	b.cfg.Topics[0].CircuitBreaker = &config.CircuitBreaker{FailureRatio: 0.5, MinRecords: 20, Window: 10 * time.Second, OpenFor: 2 * time.Second}
	main := b.ladder.Topic()
	start := time.Now()
	var ok atomic.Int64
	h := consumer.HandlerFunc(func(context.Context, *kgo.Record) error {
		if time.Since(start) < 10*time.Second {
			return errors.New("dependency down")
		}
		ok.Add(1)
		return nil
	})
	reg := prometheus.NewRegistry()
	stop := b.run(h, consumer.WithRegisterer(reg))
	for i := range 400 {
		b.produceSync(&kgo.Record{Topic: main, Partition: int32(i % 2), Key: fmt.Appendf(nil, "k%d", i)})
		if i%100 == 99 {
			time.Sleep(time.Second)
		}
	}
	dead := 0
	waitReal(t, 120*time.Second, "every record handled or dead-lettered", func() bool {
		dead = len(b.readAll(b.ladder.DLQ()))
		return int(ok.Load())+dead >= 400
	})
	t.Logf("400 offered, %d handled after the outage, %d dead-lettered", ok.Load(), dead)
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if n := len(b.readAll(b.ladder.DLQ())); n != 0 {
		t.Errorf("the DLQ holds %d records, want 0", n)
	}
	m, _ := metrics.New(reg)
	if n := metricValue(t, m.CircuitOpened.WithLabelValues(main)); n < 1 {
		t.Errorf("kretry_circuit_opened_total = %v, want ≥ 1", n)
	}
	if st := metricValue(t, m.CircuitState.WithLabelValues(main)); st != 0 {
		t.Errorf("kretry_circuit_state = %v, want 0 (closed)", st)
	}
	b.checkCommittedToEnd(b.cfg.Group, main)
}

// Exactly once with a circuit breaker on the real broker (see
// eosOutage.run): while the breaker is open the transactions go on
// committing another topic's records, and after the outage every record's
// output is visible once; nothing is dead-lettered.
func TestCircuitBreakerExactlyOnceOnRealBroker(t *testing.T) {
	verifyNoLeaks(t)
	b := newRealBroker(t, 2)
	b.cfg.ExactlyOnce = true
	b.cfg.CommitInterval = 200 * time.Millisecond
	b.cfg.Topics[0].CircuitBreaker = &config.CircuitBreaker{FailureRatio: 0.5, MinRecords: 10, Window: 10 * time.Second, OpenFor: time.Second}
	payments := kafkatest.Name(t, "payments")
	b.cfg.Topics = append(b.cfg.Topics, config.Topic{Name: payments, Tiers: []ladder.Tier{{Delay: time.Second}}})
	ladders, err := b.cfg.Ladders()
	if err != nil {
		t.Fatal(err)
	}
	out := b.ladder.Topic() + ".out"
	more := []string{payments, out, ladders[1].DLQ(), ladders[1].Steps()[0].Topic}
	ctx := context.Background()
	if resp, err := b.adm.CreateTopics(ctx, 1, 1, nil, more...); err != nil || resp.Error() != nil {
		t.Fatalf("creating %v: %v %v", more, err, resp.Error())
	}
	t.Cleanup(func() { b.adm.DeleteTopics(context.Background(), more...) })
	kafkatest.WaitTopics(t, b.adm, more...)
	e := &eosOutage{cfg: b.cfg, kopts: []kgo.Opt{kgo.SeedBrokers(b.seeds...)}, cl: b.cl, adm: b.adm, out: out,
		dlq: b.ladder.DLQ(), parts: 2, orders: 200}
	e.run(t)
}
