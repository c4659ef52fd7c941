package consumer_test

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/kretry/kretry/config"
	"github.com/kretry/kretry/consumer"
	"github.com/kretry/kretry/internal/kafkatest"
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

// eosOutage is the exactly-once outage scenario, on kfake or the real
// broker: cfg's first topic (orders, parts partitions) has a circuit
// breaker and a handler whose dependency is down until the test says it
// is back; its second (payments, 1 partition) has no breaker and never
// fails. Every call emits "out-<key>" to out.
type eosOutage struct {
	cfg    *config.Config
	kopts  []kgo.Opt   // the consumer's and the readers' client options
	cl     *kgo.Client // producer, manual partitions
	adm    *kadm.Client
	out    string
	dlq    string // orders' DLQ
	parts  int32
	orders int // records produced to orders
}

// run: orders records are produced and fail until the breaker opens; while
// it is open, payments records are produced and must be committed (the
// transactions go on without orders' records); then the dependency
// recovers. Every output must be visible to a read_committed reader exactly
// once, the DLQ empty, every offset committed.
func (e *eosOutage) run(t *testing.T) {
	ctx := context.Background()
	orders, payments := e.cfg.Topics[0].Name, e.cfg.Topics[1].Name
	var up atomic.Bool
	var okCalls counter
	h := consumer.HandlerFunc(func(ctx context.Context, r *kgo.Record) error {
		if err := consumer.Emit(ctx, &kgo.Record{Topic: e.out, Key: []byte("out-" + string(r.Key))}); err != nil {
			return err
		}
		if r.Topic == orders && !up.Load() {
			return errors.New("dependency down")
		}
		okCalls.add(r.Key)
		return nil
	})
	reg := prometheus.NewRegistry()
	cons, err := consumer.New(e.cfg, h, consumer.WithClientOpts(e.kopts...), consumer.WithRegisterer(reg))
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() { errc <- cons.Run(rctx) }()
	defer func() {
		cancel()
		<-errc
	}()
	produce := func(recs ...*kgo.Record) {
		t.Helper()
		if err := e.cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatalf("produce: %v", err)
		}
	}
	var want []string
	for i := range e.orders {
		k := fmt.Sprintf("o%03d", i)
		produce(&kgo.Record{Topic: orders, Partition: int32(i) % e.parts, Key: []byte(k)})
		want = append(want, "out-"+k)
	}
	kafkatest.WaitFor(t, "the breaker open", 10*time.Millisecond, time.Minute, func() bool { return cons.HealthState().BreakerOpen })

	const nPay = 20
	for i := range nPay {
		k := fmt.Sprintf("p%03d", i)
		produce(&kgo.Record{Topic: payments, Key: []byte(k)})
		want = append(want, "out-"+k)
	}
	committed := func(topic string, p int32) int64 {
		os, err := e.adm.FetchOffsets(ctx, e.cfg.Group)
		if err != nil {
			return -1
		}
		o, _ := os.Lookup(topic, p)
		return o.At
	}
	// The breaker stays open or half-open while the dependency is down
	// (every probe fails): the transactions commit payments meanwhile.
	kafkatest.WaitFor(t, "payments committed while the breaker is open", 50*time.Millisecond, time.Minute, func() bool {
		return committed(payments, 0) == nPay
	})
	if !cons.HealthState().BreakerOpen {
		t.Fatal("the breaker closed while the dependency is down")
	}
	m, _ := metrics.New(reg)
	if n := metricValue(t, m.CircuitOpened.WithLabelValues(orders)); n < 1 {
		t.Errorf("kretry_circuit_opened_total = %v, want ≥ 1", n)
	}
	// A probe fails and opens it again: records given back more than once.
	kafkatest.WaitFor(t, "the breaker opened again by a failed probe", 50*time.Millisecond, time.Minute, func() bool {
		return metricValue(t, m.CircuitOpened.WithLabelValues(orders)) >= 2
	})
	if n := committed(payments, 0); n != nPay {
		t.Errorf("payments committed at %d, want %d", n, nPay)
	}

	up.Store(true)
	kafkatest.WaitFor(t, "every orders record handled", 100*time.Millisecond, 2*time.Minute, func() bool {
		for i := range e.orders {
			if okCalls.get(fmt.Sprintf("o%03d", i)) == 0 {
				return false
			}
		}
		return true
	})
	// Past orders' last record (re-feeds included), not its end offset: the
	// relay's transaction markers take offsets too.
	last := map[int32]int64{}
	for _, r := range readCommittedFrom(t, append(slices.Clone(e.kopts), kgo.ConsumeTopics(orders)), e.orders) {
		last[r.Partition] = max(last[r.Partition], r.Offset)
	}
	kafkatest.WaitFor(t, "orders committed past its last record", 100*time.Millisecond, time.Minute, func() bool {
		for p, o := range last {
			if committed(orders, p) <= o {
				return false
			}
		}
		return true
	})
	cancel()
	if err := <-errc; err != nil {
		t.Fatalf("Run: %v", err)
	}
	errc <- nil // for the deferred stop

	got := []string{}
	for _, r := range readCommittedFrom(t, append(slices.Clone(e.kopts), kgo.ConsumeTopics(e.out)), len(want)) {
		got = append(got, string(r.Key))
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("outputs seen by a read_committed reader: %d, want each of the %d records' once; missing %v, extra %v",
			len(got), len(want), missing(want, got), missing(got, want))
	}
	if dead := readCommittedFrom(t, append(slices.Clone(e.kopts), kgo.ConsumeTopics(e.dlq)), 0); len(dead) != 0 {
		t.Errorf("%d records dead-lettered, want 0", len(dead))
	}
	if st := metricValue(t, m.CircuitState.WithLabelValues(orders)); st != 0 {
		t.Errorf("kretry_circuit_state = %v after the outage, want 0 (closed)", st)
	}
	t.Logf("%d orders and %d payments records: each output once; breaker opened %v times",
		e.orders, nPay, metricValue(t, m.CircuitOpened.WithLabelValues(orders)))
}

// missing returns what of want is not in got (both sorted), with repeats.
func missing(want, got []string) []string {
	var out []string
	i := 0
	for _, w := range want {
		for i < len(got) && got[i] < w {
			i++
		}
		if i < len(got) && got[i] == w {
			i++
			continue
		}
		out = append(out, w)
	}
	return out
}

// Exactly once with a circuit breaker, on kfake (real TCP: see
// TestExactlyOnce): while the breaker is open, the records of its topic
// are given back and their partitions rewound, so the transactions go on
// committing another topic's records; nothing is dead-lettered, lost or
// handled twice.
func TestCircuitBreakerExactlyOnce(t *testing.T) {
	cfg := newConfig()
	cfg.ExactlyOnce = true
	cfg.CommitInterval = 200 * time.Millisecond
	cfg.Topics[0].Tiers = []ladder.Tier{{Delay: time.Second}, {Delay: 2 * time.Second}}
	cfg.Topics[0].CircuitBreaker = &config.CircuitBreaker{FailureRatio: 0.5, MinRecords: 10, Window: 10 * time.Second, OpenFor: time.Second}
	cfg.Topics = append(cfg.Topics, config.Topic{Name: "payments", Tiers: []ladder.Tier{{Delay: time.Second}}})
	c := newClusterCfg(t, cfg, 2, 2, false)
	ladders, err := cfg.Ladders()
	if err != nil {
		t.Fatal(err)
	}
	const out = "orders.out"
	more := []string{"payments", out, ladders[1].DLQ(), ladders[1].Steps()[0].Topic}
	if _, err := c.adm.CreateTopics(context.Background(), 1, 1, nil, more...); err != nil {
		t.Fatal(err)
	}
	e := &eosOutage{cfg: c.cfg, kopts: c.kopts, cl: c.cl, adm: c.adm, out: out, dlq: c.ladder.DLQ(), parts: 2, orders: 60}
	e.run(t)
}

// half_open_records: the half-open breaker lets that many records through
// and closes once all of them succeeded (5 when 0). One partition: the
// first call fails and opens the breaker; the calls after open_for see it
// half-open until n of them succeeded.
func TestCircuitBreakerHalfOpenRecords(t *testing.T) {
	for _, n := range []int{1, 3, 0} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				cfg := newConfig()
				cfg.Topics[0].CircuitBreaker = &config.CircuitBreaker{FailureRatio: 1, MinRecords: 1, Window: 10 * time.Second,
					OpenFor: 10 * time.Second, HalfOpenRecords: n}
				c := newClusterWith(t, cfg, 1, 1)
				const records = 8
				for i := range records {
					c.produce(&kgo.Record{Key: fmt.Appendf(nil, "k%d", i)})
				}
				reg := prometheus.NewRegistry()
				m, _ := metrics.New(reg)
				var mu sync.Mutex
				var seen []string
				h := consumer.HandlerFunc(func(_ context.Context, r *kgo.Record) error {
					mu.Lock()
					defer mu.Unlock()
					seen = append(seen, fmt.Sprint(metricValue(t, m.CircuitState.WithLabelValues(testTopic))))
					if len(seen) == 1 {
						return errors.New("dependency down")
					}
					return nil
				})
				r := c.start(h, consumer.WithRelay(false), consumer.WithRegisterer(reg))
				waitFor(t, "every record handled", func() bool {
					mu.Lock()
					defer mu.Unlock()
					return len(seen) == records+1
				})
				if err := r.stop(); err != nil {
					t.Fatalf("Run: %v", err)
				}
				probes := cmp.Or(n, 5)
				want := []string{"0"} // the call that opens it
				for i := range records {
					if i < probes {
						want = append(want, "2")
					} else {
						want = append(want, "0")
					}
				}
				if !slices.Equal(seen, want) {
					t.Errorf("half_open_records %d: states seen by the calls %v, want %v", n, seen, want)
				}
			})
		})
	}
}

// Records whose error the classifier discards are neither failures nor
// successes of the breaker: a discard says the error does not matter, not
// that the dependency works. All discarded: the breaker never opens. Nine
// in ten discarded and the others failing: it opens (counted as successes,
// the discards would hide the outage: 10% failed).
func TestCircuitBreakerDiscards(t *testing.T) {
	for _, tc := range []struct {
		name     string
		failEach int // every failEach-th record fails while the dependency is down; 0: none
		wantOpen bool
	}{
		{"all discarded", 0, false},
		{"one in ten fails", 10, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				errGone := errors.New("customer deleted")
				classify := func(err error) consumer.Decision {
					if errors.Is(err, errGone) {
						return consumer.Discard
					}
					return consumer.DefaultClassifier(err)
				}
				const records = 200
				start := time.Now()
				c, m, _ := breakerRecords(t, records, classify, func(r *kgo.Record) error {
					i, _ := strconv.Atoi(string(r.Key))
					switch {
					case tc.failEach > 0 && i%tc.failEach == 0 && time.Since(start) < time.Minute:
						return errTransient
					case tc.failEach > 0 && i%tc.failEach == 0:
						return nil
					}
					return fmt.Errorf("order %d: %w", i, errGone)
				})
				opened := metricValue(t, m.CircuitOpened.WithLabelValues(testTopic))
				if (opened > 0) != tc.wantOpen {
					t.Errorf("breaker opened %v times, want open %v", opened, tc.wantOpen)
				}
				discarded := metricValue(t, m.Records.WithLabelValues(testTopic, metrics.OutcomeDiscarded))
				want := records
				if tc.failEach > 0 {
					want -= records / tc.failEach
				}
				if discarded != float64(want) {
					t.Errorf("%v discarded, want %d", discarded, want)
				}
				if n := len(c.read(c.ladder.DLQ())); n != 0 {
					t.Errorf("DLQ holds %d, want 0", n)
				}
			})
		})
	}
}

// breakerRecords runs a consumer without its relay, its topic's breaker
// {0.5, 10, 30s, 5s}, with classify (nil: the default) and h as its handler,
// on records records keyed 0, 1, ... of one partition, until they are all
// committed. It returns the cluster, the consumer's metrics and the
// handler's calls, by key.
func breakerRecords(t *testing.T, records int, classify consumer.Classifier, h func(*kgo.Record) error) (*cluster, *metrics.Metrics, *counter) {
	t.Helper()
	cfg := newConfig()
	cfg.Topics[0].CircuitBreaker = &config.CircuitBreaker{FailureRatio: 0.5, MinRecords: 10, Window: 30 * time.Second, OpenFor: 5 * time.Second}
	c := newClusterWith(t, cfg, 1, 1)
	for i := range records {
		c.produce(&kgo.Record{Key: fmt.Appendf(nil, "%d", i)})
	}
	calls := &counter{}
	handler := consumer.HandlerFunc(func(_ context.Context, r *kgo.Record) error {
		calls.add(r.Key)
		return h(r)
	})
	reg := prometheus.NewRegistry()
	opts := []consumer.Opt{consumer.WithRelay(false), consumer.WithRegisterer(reg)}
	if classify != nil {
		opts = append(opts, consumer.WithClassifier(classify))
	}
	r := c.start(handler, opts...)
	waitFor(t, "the last record handled", func() bool { return calls.get(strconv.Itoa(records-1)) > 0 })
	waitFor(t, "every record committed", func() bool { return c.committed(testGroup, testTopic)[0] == int64(records) })
	if err := r.stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	m, err := metrics.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	return c, m, calls
}

// A traced record the breaker keeps from its handler (here: a, whose
// failure opened it, waits to be handled again when Run stops) ends its
// attempt span as cancelled, delivered again: not discarded (its failure
// was not its fate) nor, had its handler not run, ok.
func TestCircuitBreakerTracing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := newConfig()
		cfg.Topics[0].CircuitBreaker = &config.CircuitBreaker{FailureRatio: 1, MinRecords: 1, Window: 10 * time.Second, OpenFor: time.Hour}
		c := newClusterWith(t, cfg, 1, 1)
		c.produce(&kgo.Record{Key: []byte("a")}, &kgo.Record{Key: []byte("b")})
		spans := tracetest.NewSpanRecorder()
		tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
		var calls atomic.Int64
		h := consumer.HandlerFunc(func(context.Context, *kgo.Record) error {
			calls.Add(1)
			return errors.New("dependency down")
		})
		cons, err := consumer.New(c.cfg, h, consumer.WithClientOpts(c.kopts...), consumer.WithRelay(false), consumer.WithTracerProvider(tp))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		errc := make(chan error, 1)
		go func() { errc <- cons.Run(ctx) }()
		waitFor(t, "the breaker open", func() bool { return cons.HealthState().BreakerOpen })
		cancel()
		if err := <-errc; err != nil {
			t.Fatalf("Run: %v", err)
		}
		if n := calls.Load(); n != 1 {
			t.Errorf("%d handler calls, want 1 (a's, which opened the breaker)", n)
		}
		got := map[int64]string{}
		for _, s := range spans.Ended() {
			if s.Name() == "kretry.handle "+testTopic {
				got[attr(s, "messaging.kafka.offset").AsInt64()] = attr(s, consumer.AttrOutcome).AsString()
			}
		}
		if want := map[int64]string{0: consumer.OutcomeCancelled}; !maps.Equal(got, want) {
			t.Errorf("attempt outcomes by offset %v, want %v", got, want)
		}
	})
}

// Records the classifier dead-letters, and records whose handler panics,
// are bad records, not an outage: as failures of the breaker, a run of them
// opened it, and the record whose failure opened it, handled again
// half-open, failed again and opened it again, for ever: the partition was
// wedged. They count as nothing, as discards do: every record reaches the
// DLQ and is committed, and the breaker stays closed.
func TestCircuitBreakerDeadLetters(t *testing.T) {
	errInvalid := errors.New("invalid order")
	for _, tc := range []struct {
		name string
		h    func(r *kgo.Record) error
	}{
		{"dead-lettered by the classifier", func(r *kgo.Record) error { return fmt.Errorf("order %s: %w", r.Key, errInvalid) }},
		{"panicked", func(r *kgo.Record) error { panic("order " + string(r.Key) + ": nil customer") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				classify := func(err error) consumer.Decision {
					if errors.Is(err, errInvalid) {
						return consumer.DeadLetter
					}
					return consumer.DefaultClassifier(err)
				}
				const records = 50
				c, m, calls := breakerRecords(t, records, classify, tc.h)
				if opened := metricValue(t, m.CircuitOpened.WithLabelValues(testTopic)); opened != 0 {
					t.Errorf("breaker opened %v times, want never", opened)
				}
				if n := len(c.read(c.ladder.DLQ())); n != records {
					t.Errorf("DLQ holds %d, want %d", n, records)
				}
				for i := range records {
					if n := calls.get(strconv.Itoa(i)); n != 1 {
						t.Errorf("record %d handled %d times, want once", i, n)
					}
				}
			})
		})
	}
}

// Records that fail whatever the dependency does, with an error the
// classifier retries (a plain error: the default classifier retries it),
// open the breaker as an outage does; but a half-open probe that fails takes
// the ladder like any failure, so such records cannot hold the topic for
// ever: each probe that fails moves on, and every record reaches the first
// tier and is committed. Before, the record whose failure opened the
// breaker was held back and failed every probe: the partition never moved.
func TestCircuitBreakerFailedProbeForwarded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const records = 30
		c, m, _ := breakerRecords(t, records, nil, func(r *kgo.Record) error {
			return fmt.Errorf("order %s: unparsable", r.Key)
		})
		if opened := metricValue(t, m.CircuitOpened.WithLabelValues(testTopic)); opened < 2 {
			t.Errorf("breaker opened %v times, want at least twice (by the run of failures, then by a failed probe)", opened)
		}
		if n := len(c.read(c.ladder.Steps()[0].Topic)); n != records {
			t.Errorf("the first tier holds %d, want %d", n, records)
		}
	})
}
