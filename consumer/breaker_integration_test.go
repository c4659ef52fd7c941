//go:build integration

package consumer_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
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

// fetchedHook calls fn with every record the client buffers from a fetch.
type fetchedHook func(*kgo.Record)

func (f fetchedHook) OnFetchRecordBuffered(r *kgo.Record) { f(r) }

// Rebalances while the breaker is open, on the real broker (2 partitions).
// A, with the breaker and a dependency that is down, opens it; B (no
// breaker, a working dependency) joins: the partition that moves to B is
// handled by B while A's breaker is still open (A does not hold it past the
// rebalance). B leaves: the partition assigned back to A is not fetched by
// A while the breaker is open (records produced to it then are buffered by
// A's client only once it is half-open). The dependency recovers: every
// record is handled, none dead-lettered, every offset committed. In both
// modes (exactly once: A gives its records back instead of waiting).
func TestCircuitBreakerRebalanceOnRealBroker(t *testing.T) {
	for _, eos := range []bool{false, true} {
		t.Run(fmt.Sprintf("exactly_once=%v", eos), func(t *testing.T) { breakerRebalance(t, eos) })
	}
}

func breakerRebalance(t *testing.T, eos bool) {
	verifyNoLeaks(t)
	b := newRealBroker(t, 2)
	b.cfg.ExactlyOnce = eos
	b.cfg.Topics[0].CircuitBreaker = &config.CircuitBreaker{FailureRatio: 0.5, MinRecords: 10, Window: 30 * time.Second, OpenFor: 40 * time.Second}
	main := b.ladder.Topic()
	reg := prometheus.NewRegistry()
	m, _ := metrics.New(reg)
	state := func() float64 { return metricValue(t, m.CircuitState.WithLabelValues(main)) }
	opened := func() float64 { return metricValue(t, m.CircuitOpened.WithLabelValues(main)) }

	var down atomic.Bool
	down.Store(true)
	var mu sync.Mutex
	okBy := map[string]string{} // key → the member that handled it
	handled := func(member string) consumer.Handler {
		return consumer.HandlerFunc(func(_ context.Context, r *kgo.Record) error {
			if member == "A" && down.Load() {
				return errors.New("dependency down")
			}
			mu.Lock()
			okBy[string(r.Key)] = member
			mu.Unlock()
			return nil
		})
	}
	handledBy := func(key string) string {
		mu.Lock()
		defer mu.Unlock()
		return okBy[key]
	}
	// What A's client fetches while its breaker is open, past watch[p].
	var watchMu sync.Mutex
	watch := map[int32]int64{}
	var fetchedOpen []string
	hook := fetchedHook(func(r *kgo.Record) {
		if r.Topic != main {
			return
		}
		watchMu.Lock()
		defer watchMu.Unlock()
		if from, ok := watch[r.Partition]; ok && r.Offset >= from && state() == 1 {
			fetchedOpen = append(fetchedOpen, fmt.Sprintf("%d@%d", r.Partition, r.Offset))
		}
	})
	var keys []string
	produce := func(phase string, n int) {
		for i := range n {
			for p := range int32(2) {
				k := fmt.Sprintf("%s-p%d-%d", phase, p, i)
				keys = append(keys, k)
				b.produceSync(&kgo.Record{Topic: main, Partition: p, Key: []byte(k)})
			}
		}
	}

	stopA := b.run(handled("A"), consumer.WithRegisterer(reg), consumer.WithClientOpts(kgo.WithHooks(hook)))
	produce("before", 20)
	waitReal(t, 60*time.Second, "A's breaker open", func() bool { return state() == 1 })

	cfgB := *b.cfg
	cfgB.Topics = slices.Clone(b.cfg.Topics)
	cfgB.Topics[0].CircuitBreaker = nil
	consB, err := consumer.New(&cfgB, handled("B"), consumer.WithRelay(false))
	if err != nil {
		t.Fatal(err)
	}
	ctxB, cancelB := context.WithCancel(context.Background())
	errB := make(chan error, 1)
	go func() { errB <- consB.Run(ctxB) }()
	stopB := func() error {
		if cancelB != nil {
			cancelB()
			cancelB = nil
			return <-errB
		}
		return nil
	}
	t.Cleanup(func() { stopB() })

	// The partition that moved to B: B handles what A held of it.
	var moved int32 = -1
	waitReal(t, 60*time.Second, "B handling a partition A held", func() bool {
		for p := range int32(2) {
			if handledBy(fmt.Sprintf("before-p%d-19", p)) == "B" {
				moved = p
				return true
			}
		}
		return false
	})
	// Still open, and never half-open since (a failed probe opens it again).
	if st, n := state(), opened(); st != 1 || n != 1 {
		t.Fatalf("A's breaker state %v, opened %v times, once B handled partition %d; want 1 (open), once: A held the partition "+
			"until its breaker let records through, or open_for is too short for this machine", st, n, moved)
	}

	// B leaves: its partition goes back to A, whose breaker is open.
	if err := stopB(); err != nil {
		t.Fatalf("B's Run: %v", err)
	}
	b.waitStable(b.cfg.Group)
	ends, err := b.adm.ListEndOffsets(context.Background(), main)
	if err != nil {
		t.Fatal(err)
	}
	watchMu.Lock()
	ends.Each(func(o kadm.ListedOffset) { watch[o.Partition] = o.Offset })
	watchMu.Unlock()
	produce("open", 20)
	time.Sleep(3 * time.Second) // a few fetch rounds: nothing of main may come
	if st, n := state(), opened(); st != 1 || n != 1 {
		t.Fatalf("A's breaker state %v, opened %v times, after B left; want 1 (open), once: the test needs a longer open_for", st, n)
	}
	watchMu.Lock()
	if len(fetchedOpen) > 0 {
		t.Errorf("A's client fetched %v while its breaker was open", fetchedOpen)
	}
	watchMu.Unlock()
	for i := range 20 {
		if k := fmt.Sprintf("open-p%d-%d", moved, i); handledBy(k) != "" {
			t.Errorf("%s handled by %s while A's breaker was open", k, handledBy(k))
		}
	}

	down.Store(false)
	waitReal(t, 120*time.Second, "every record handled", func() bool {
		for _, k := range keys {
			if handledBy(k) == "" {
				return false
			}
		}
		return true
	})
	if err := stopA(); err != nil {
		t.Fatalf("A's Run: %v", err)
	}
	if n := len(b.readAll(b.ladder.DLQ())); n != 0 {
		t.Errorf("the DLQ holds %d records, want 0", n)
	}
	watchMu.Lock()
	if len(fetchedOpen) > 0 {
		t.Errorf("A's client fetched %v while its breaker was open", fetchedOpen)
	}
	watchMu.Unlock()
	b.checkCommittedToEnd(b.cfg.Group, main)
	t.Logf("%d records; partition %d moved to B while A's breaker was open; opened %v times", len(keys), moved,
		metricValue(t, m.CircuitOpened.WithLabelValues(main)))
}
