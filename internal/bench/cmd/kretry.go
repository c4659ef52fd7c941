package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"slices"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/config"
	"github.com/kretry/kretry/consumer"
	"github.com/kretry/kretry/headers"
	"github.com/kretry/kretry/internal/bench"
	"github.com/kretry/kretry/ladder"
	"github.com/kretry/kretry/relay"
)

// The kretry sides: the consumer as a user runs it (consumer.New + Run, the
// relay in process, every default), and a standalone relay.

func init() {
	childModes["b1-kretry"] = runB1Kretry
	childModes["retry-kretry"] = runRetryKretry
	childModes["relay"] = runRelay
}

var formatDelay = ladder.FormatDelay

// benchConfig is the configuration a user would load for one topic with one
// tier of delay, built by hand so that KRETRY_GROUP cannot change the group.
func benchConfig(cf childFlags) *config.Config {
	return &config.Config{
		Brokers:  cf.brokers,
		ClientID: "kretry-bench",
		Group:    cf.group,
		Topics: []config.Topic{{
			Name:   cf.topic,
			Tiers:  []ladder.Tier{{Delay: cf.delay, Attempts: 1}},
			DLQ:    cf.topic + ".dlq",
			Naming: ladder.DefaultNaming,
		}},
		Relay:       config.Relay{Group: cf.group + config.DefaultRelaySuffix, FetchMaxWait: config.DefaultFetchMaxWait},
		ExactlyOnce: cf.eos,
	}
}

// warnings makes a child's consumer and relay log their warnings and errors
// on its stderr, which the report's run prints: a run whose figures are off
// says why (a stall, a retry, a lost group).
var warnings = consumer.WithLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))

// runConsumer runs c until w has counted its records, then stops it and waits.
func runConsumer(ctx context.Context, c *consumer.Consumer, w *window, cap time.Duration) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- c.Run(ctx) }()
	err := waitWindow(ctx, w, cap, errc)
	cancel()
	if err != nil {
		return err
	}
	if err := <-errc; err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("consumer.Run: %w", err)
	}
	return nil
}

// runB1Kretry consumes n records with a no-op handler.
func runB1Kretry(ctx context.Context, cf childFlags) (result, error) {
	w := newWindow(cf.n)
	h := consumer.HandlerFunc(func(_ context.Context, r *kgo.Record) error {
		noop(r)
		w.tick(1)
		return nil
	})
	c, err := consumer.New(benchConfig(cf), h, consumer.WithRelay(cf.relay), warnings)
	if err != nil {
		return result{}, err
	}
	err = runConsumer(ctx, c, w, cf.cap)
	var r result
	w.fill(&r)
	return r, err
}

var errFailOnce = errors.New("bench: every first delivery fails")

// runRetryKretry fails every record on its first delivery and counts it when
// it comes back from the tier, with the lateness of its re-feed.
func runRetryKretry(ctx context.Context, cf childFlags) (result, error) {
	w := newWindow(cf.n).withShards(cf.partitions)
	// Each partition's figures are written by the goroutine that handles
	// its records (kretry calls a partition's handler from one goroutine
	// at a time), so the handlers of different partitions share no
	// counter: the bookkeeping is not what B2 and B3 measure.
	parts := make([]partitionFigures, cf.partitions)
	every := int64(max(cf.lateEvery, 1))
	for i := range parts {
		per := int(cf.n)/len(parts) + int(cf.n)/len(parts)/4 // records spread about evenly
		per /= int(every)
		parts[i].late, parts[i].refeedLate = make([]float64, 0, per), make([]float64, 0, per)
	}
	// The bench fills its topics without headers, so a record with headers
	// is a re-fed one, as runThreeHops tells them apart; with -late-every
	// above 1 only every so many re-fed records of a partition have their
	// lateness read, so that B2 charges kretry's CPU with no more handler
	// bookkeeping than the hand path's.
	h := consumer.HandlerFunc(func(_ context.Context, r *kgo.Record) error {
		pf := &parts[int(r.Partition)%len(parts)]
		if len(r.Headers) == 0 {
			pf.failures.Add(1) // one partition's goroutine: no other core writes it
			w.tick(0)
			return errFailOnce
		}
		if pf.refed++; pf.refed%every != 0 {
			w.tickPartition(r.Partition)
			return nil
		}
		due, ok := dueAt(r.Headers)
		if !ok {
			return fmt.Errorf("bench: a re-fed record without %s (partition %d, offset %d)", headers.HeaderDueAt, r.Partition, r.Offset)
		}
		pf.late = append(pf.late, float64(time.Since(due))/float64(time.Millisecond))
		pf.refeedLate = append(pf.refeedLate, float64(r.Timestamp.Sub(due))/float64(time.Millisecond))
		w.tickPartition(r.Partition)
		return nil
	})
	reg := prometheus.NewRegistry()
	cfg := benchConfig(cf)
	c, err := consumer.New(cfg, h, consumer.WithRegisterer(reg), warnings)
	var note string
	var rl *relay.Relay
	if err != nil {
		// Until the consumer runs its relay in process, run one next to it,
		// built as the consumer builds it.
		var rerr error
		c, rerr = consumer.New(cfg, h, consumer.WithRegisterer(reg), consumer.WithRelay(false), warnings)
		if rerr != nil {
			return result{}, err
		}
		ladders, lerr := cfg.Ladders()
		if lerr != nil {
			return result{}, lerr
		}
		rl, err = relay.New(ladders, append(cfg.RelayOpts(),
			relay.WithClientOpts(kgo.SeedBrokers(cf.brokers...)), relay.WithRegisterer(reg))...)
		if err != nil {
			return result{}, err
		}
		note = "relay run next to the consumer in the same process (consumer.New with its relay failed)"
		fmt.Fprintln(os.Stderr, note)
	}
	if rl != nil {
		rctx, rcancel := context.WithCancel(ctx)
		rdone := make(chan error, 1)
		go func() { rdone <- rl.Run(rctx) }()
		defer func() { rcancel(); <-rdone }()
	}
	stopProgress := progress(func() string {
		var failed int64
		for i := range parts {
			failed += parts[i].failures.Load()
		}
		return fmt.Sprintf("failed once %d, handled ok %d", failed, w.count.Load())
	})
	err = runConsumer(ctx, c, w, cf.cap)
	stopProgress()
	var r result
	w.fill(&r)
	r.Note = note
	var late, refeedLate []float64
	for i := range parts {
		pf := &parts[i]
		r.Failures += pf.failures.Load()
		late, refeedLate = append(late, pf.late...), append(refeedLate, pf.refeedLate...)
	}
	if n := int64(len(late)); n > 0 {
		r.Lateness = &latency{Count: n, P50: bench.Percentile(late, 50), P99: bench.Percentile(late, 99), Max: slices.Max(late)}
		r.RefeedLateness = &latency{Count: n, P50: bench.Percentile(refeedLate, 50), P99: bench.Percentile(refeedLate, 99), Max: slices.Max(refeedLate)}
	}
	r.RelayLateness = histogramLatency(reg, "kretry_refeed_lateness_seconds")
	return r, err
}

// partitionFigures are what the handler of runRetryKretry records of one
// partition.
type partitionFigures struct {
	failures         atomic.Int64
	refed            int64 // re-fed records handled (the partition's goroutine only)
	late, refeedLate []float64
	_                [64]byte // apart from the next partition's
}

// dueAt reads kretry-due-at; false when the record has none (a first delivery).
// It reads the value in place, without time.Parse: the handler's
// bookkeeping is not what B2 and B3 measure.
func dueAt(hs []kgo.RecordHeader) (time.Time, bool) {
	for _, h := range hs {
		if h.Key == headers.HeaderDueAt {
			return parseDue(h.Value)
		}
	}
	return time.Time{}, false
}

// parseDue reads v, a time in headers.TimeLayout.
func parseDue(v []byte) (time.Time, bool) {
	if len(v) != len(headers.TimeLayout) || v[4] != '-' || v[7] != '-' || v[10] != 'T' || v[13] != ':' || v[16] != ':' || v[19] != '.' || v[23] != 'Z' {
		return time.Time{}, false
	}
	n := func(i, w int) int {
		x := 0
		for _, c := range v[i : i+w] {
			x = x*10 + int(c-'0')
		}
		return x
	}
	for i, c := range v {
		if (c < '0' || c > '9') && i != 4 && i != 7 && i != 10 && i != 13 && i != 16 && i != 19 && i != 23 {
			return time.Time{}, false
		}
	}
	return time.Date(n(0, 4), time.Month(n(5, 2)), n(8, 2), n(11, 2), n(14, 2), n(17, 2), n(20, 3)*int(time.Millisecond), time.UTC), true
}

// histogramLatency sums every series of histogram name in reg and reads its
// p50, p99 and max as bucket upper bounds, in milliseconds. A quantile beyond
// the last finite bucket is that bound negated: "more than" (JSON has no +Inf).
func histogramLatency(reg *prometheus.Registry, name string) *latency {
	mfs, err := reg.Gather()
	if err != nil {
		return nil
	}
	var count uint64
	bounds := map[float64]uint64{}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			h := m.GetHistogram()
			if h == nil {
				continue
			}
			count += h.GetSampleCount()
			for _, b := range h.GetBucket() {
				bounds[b.GetUpperBound()] += b.GetCumulativeCount()
			}
		}
	}
	if count == 0 {
		return nil
	}
	les := make([]float64, 0, len(bounds))
	for le := range bounds {
		les = append(les, le)
	}
	slices.Sort(les)
	q := func(p float64) float64 {
		need := uint64(math.Ceil(p / 100 * float64(count)))
		last := 0.0
		for _, le := range les {
			if math.IsInf(le, 1) {
				break
			}
			if bounds[le] >= need {
				return le * 1000
			}
			last = le
		}
		return -last * 1000
	}
	return &latency{Count: int64(count), P50: q(50), P99: q(99), Max: q(100)}
}

// gaugeSum sums every series of gauge name in reg.
func gaugeSum(reg *prometheus.Registry, name string) float64 {
	mfs, err := reg.Gather()
	if err != nil {
		return 0
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			sum += gaugeValue(m)
		}
	}
	return sum
}

func gaugeValue(m *dto.Metric) float64 {
	if g := m.GetGauge(); g != nil {
		return g.GetValue()
	}
	return 0
}

// runRelay runs a standalone relay over the tier of cf.delay until it is told
// to stop, printing "paused=N" (kretry_paused_partitions) as it changes.
func runRelay(ctx context.Context, cf childFlags) (result, error) {
	l, err := ladder.New(cf.topic, cf.group, []ladder.Tier{{Delay: cf.delay, Attempts: 1}})
	if err != nil {
		return result{}, err
	}
	reg := prometheus.NewRegistry()
	rl, err := relay.New([]*ladder.Ladder{l},
		relay.WithClientOpts(kgo.SeedBrokers(cf.brokers...)),
		relay.WithRegisterer(reg))
	if err != nil {
		return result{}, err
	}
	errc := make(chan error, 1)
	go func() { errc <- rl.Run(ctx) }()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	last := -1
	for {
		select {
		case err := <-errc:
			if err != nil && !errors.Is(err, context.Canceled) {
				return result{}, fmt.Errorf("relay.Run: %w", err)
			}
			return result{}, nil
		case <-tick.C:
			if p := int(gaugeSum(reg, "kretry_paused_partitions")); p != last {
				last = p
				fmt.Printf("paused=%d\n", p)
			}
		}
	}
}

// tierHeaders returns the kretry headers of a record parked in topic's tier of
// delay since now, as the consumer would have written them.
func tierHeaders(topic, group string, delay time.Duration, now time.Time) func(int, int32) []kgo.RecordHeader {
	return func(i int, p int32) []kgo.RecordHeader {
		return headers.Encode(nil, headers.Metadata{
			Group: group, Attempts: 1, Tier: "retry-" + formatDelay(delay), DueAt: now.Add(delay),
			OriginalTopic: topic, OriginalPartition: p, OriginalOffset: int64(i / 8), OriginalTimestamp: now,
			FirstFailureAt: now, LastFailureAt: now, Error: "bench: parked",
		})
	}
}

// progress prints line() to stderr every second until the returned func is called.
func progress(line func() string) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	start := time.Now()
	go func() {
		defer close(finished)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case now := <-t.C:
				fmt.Fprintf(os.Stderr, "%5.1fs %s\n", now.Sub(start).Seconds(), line())
			}
		}
	}()
	return func() { close(done); <-finished }
}
