package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/config"
	"github.com/kretry/kretry/consumer"
	"github.com/kretry/kretry/internal/bench"
	"github.com/kretry/kretry/ladder"
)

// B5: the circuit breaker as a DLQ flood guard (issue 15's figure). A
// dependency fails every call for an outage while records are offered at a
// steady rate, then recovers; the consumer runs with and without a
// circuit_breaker, in the same run, on topics of their own, and the figure
// is the share of the offered records that ended in the DLQ.

func init() {
	childModes["b5-kretry"] = runB5Kretry
}

// b5Tiers is B5's ladder: short enough that, without a breaker, a record
// failing during the outage reaches the DLQ within it.
var b5Tiers = []ladder.Tier{{Delay: time.Second, Attempts: 1}, {Delay: 2 * time.Second, Attempts: 1}}

// b5Breaker is the circuit_breaker of B5's "with" side.
var b5Breaker = config.CircuitBreaker{FailureRatio: 0.5, MinRecords: 100, Window: 30 * time.Second, OpenFor: 10 * time.Second}

// b5Result is what a B5 child reports besides result's common fields.
type b5Result struct {
	DeadLettered float64 `json:"dead_lettered"` // kretry_dead_lettered_total
	Opened       float64 `json:"opened"`        // kretry_circuit_opened_total
	FailedCalls  int64   `json:"failed_calls"`
	// DrainSeconds is from the end of the outage until every record was
	// handled or dead-lettered.
	DrainSeconds float64 `json:"drain_seconds"`
}

// runB5Kretry runs the consumer (its relay in process) with a handler whose
// dependency fails every call for cf.b5Outage from its first call, until n
// records are handled or dead-lettered.
func runB5Kretry(ctx context.Context, cf childFlags) (result, error) {
	cfg := benchConfig(cf)
	cfg.Topics[0].Tiers = b5Tiers
	if cf.b5Breaker {
		b := b5Breaker
		cfg.Topics[0].CircuitBreaker = &b
	}
	w := newWindow(cf.n)
	var first atomic.Int64 // unix nanos of the first call
	var failed atomic.Int64
	h := consumer.HandlerFunc(func(_ context.Context, r *kgo.Record) error {
		noop(r)
		first.CompareAndSwap(0, time.Now().UnixNano())
		w.tick(0)
		if time.Since(time.Unix(0, first.Load())) < cf.b5Outage {
			failed.Add(1)
			return errB5Down
		}
		w.tick(1)
		return nil
	})
	reg := prometheus.NewRegistry()
	c, err := consumer.New(cfg, h, consumer.WithRegisterer(reg), warnings)
	if err != nil {
		return result{}, err
	}
	dead := func() float64 { return counterSum(reg, "kretry_dead_lettered_total") }
	stopProgress := progress(func() string {
		return fmt.Sprintf("failed calls %d, handled ok %d, dead-lettered %.0f, breaker opened %.0f",
			failed.Load(), w.count.Load(), dead(), counterSum(reg, "kretry_circuit_opened_total"))
	})
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- c.Run(ctx) }()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var runErr error
	var doneAt time.Time
wait:
	for {
		select {
		case runErr = <-errc:
			errc = nil
			break wait
		case <-ctx.Done():
			runErr = fmt.Errorf("%d of %d records handled or dead-lettered when the child timed out", w.count.Load()+int64(dead()), cf.n)
			break wait
		case <-tick.C:
			if w.count.Load()+int64(dead()) >= cf.n {
				doneAt = time.Now()
				w.close()
				break wait
			}
		}
	}
	stopProgress()
	cancel()
	if errc != nil {
		if err := <-errc; err != nil && !errors.Is(err, context.Canceled) && runErr == nil {
			runErr = fmt.Errorf("consumer.Run: %w", err)
		}
	}
	var r result
	w.fill(&r)
	r.B5 = &b5Result{DeadLettered: dead(), Opened: counterSum(reg, "kretry_circuit_opened_total"), FailedCalls: failed.Load()}
	if f := first.Load(); f != 0 && !doneAt.IsZero() {
		r.B5.DrainSeconds = doneAt.Sub(time.Unix(0, f).Add(cf.b5Outage)).Seconds()
	}
	return r, runErr
}

var errB5Down = errors.New("bench: the dependency is down")

// counterSum sums every series of counter name in reg.
func counterSum(reg *prometheus.Registry, name string) float64 {
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
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}

// b5 runs both sides, without the breaker then with it.
func (b *benches) b5(ctx context.Context) error {
	rf := b.rf
	n := int(float64(rf.b5Rate) * rf.b5Offer.Seconds())
	t := &bench.Table{Header: []string{"circuit_breaker", "offered", "dead-lettered", "dead-lettered %", "handled ok", "failed calls",
		"breaker opened", "all done after recovery s", "peak RSS MiB"}}
	pct := map[bool]float64{}
	for _, with := range []bool{false, true} {
		side := "without"
		if with {
			side = "with"
		}
		topic := fmt.Sprintf("%s-b5-%s", b.adm.prefix, side)
		topics := []string{topic, topic + ".dlq"}
		for _, tier := range b5Tiers {
			topics = append(topics, tierTopic(topic, tier.Delay))
		}
		if err := b.adm.createTopics(ctx, int32(rf.partitions), topics...); err != nil {
			return err
		}
		group := b.adm.group("b5-" + side)
		args := b.childArgs(topic, group, n, "-b5-breaker="+strconv.FormatBool(with), "-b5-outage", rf.b5Outage.String())
		// The child's timeout: the offer, the outage and a generous drain.
		args = append(args, "-timeout", (max(rf.b5Offer, rf.b5Outage) + rf.childTimout).String())
		s, err := spawn(ctx, "b5-kretry", args...)
		if err != nil {
			return err
		}
		go func() {
			for range s.lines {
			}
		}()
		if err := b.adm.waitStable(ctx, group, group+config.DefaultRelaySuffix); err != nil {
			_ = s.cmd.Process.Signal(syscall.SIGTERM)
			<-s.result
			return err
		}
		d, err := fill(ctx, rf.brokers, fillSpec{topic: topic, n: n, valueBytes: rf.valueBytes, partitions: int32(rf.partitions), rate: rf.b5Rate})
		if err != nil {
			_ = s.cmd.Process.Signal(syscall.SIGTERM)
			<-s.result
			return err
		}
		logf("B5 %s: offered %d records in %s (paced at %d/s)", side, n, d.Round(time.Millisecond), rf.b5Rate)
		o := <-s.result
		if o.err != nil {
			return o.err
		}
		k := o.res
		if k.B5 == nil {
			return fmt.Errorf("the %s side reported no B5 figures", side)
		}
		dlq, err := b.adm.endOffsets(ctx, topic+".dlq")
		if err != nil {
			return err
		}
		p := 100 * float64(dlq) / float64(n)
		pct[with] = p
		opened := "—"
		if with {
			opened = f0(k.B5.Opened)
		}
		t.Add(side, commas(n), commas(int(dlq)), f2(p), commas(int(k.Records)), commas(int(k.B5.FailedCalls)), opened, f1(k.B5.DrainSeconds), mib(k.PeakRSS))
		logf("B5 %s: %d of %d dead-lettered (%.2f%%), %d handled ok, breaker opened %.0f times", side, dlq, n, p, k.Records, k.B5.Opened)
	}
	bk := b5Breaker
	b.rep.Sections = append(b.rep.Sections, bench.Section{
		Title: "B5 circuit breaker: a dependency outage, with and without `circuit_breaker`",
		Text: []string{fmt.Sprintf("A handler whose dependency fails every call for %s from its first call, then recovers; %s records/s of %d B are "+
			"offered for %s (%s records over %d partitions) to a consumer with its relay in process and the ladder %s, %s → DLQ, so that "+
			"without a breaker a record failing during the outage reaches the DLQ within it. The two sides run one after the other in the same run, "+
			"on topics and groups of their own, until every offered record is handled or dead-lettered. **With**: `circuit_breaker: "+
			"{failure_ratio: %v, min_records: %d, window: %s, open_for: %s}` (half_open_records 5). Dead-lettered: the DLQ's end offsets. "+
			"Goal (issue 15): with the breaker ≤ 1%% of the offered records dead-lettered. **Result: %s%% with, %s%% without** (%s).",
			rf.b5Outage, commas(rf.b5Rate), rf.valueBytes, rf.b5Offer, commas(n), rf.partitions, formatDelay(b5Tiers[0].Delay), formatDelay(b5Tiers[1].Delay),
			bk.FailureRatio, bk.MinRecords, formatDelay(bk.Window), formatDelay(bk.OpenFor), f2(pct[true]), f2(pct[false]), verdict(pct[true] <= 1))},
		Table: t,
		Notes: []string{"Failed calls count every call that failed: without the breaker a record is called on its first delivery and on each re-feed; " +
			"with it, the calls before the breaker opened and the half-open probes. \"All done after recovery\" runs from the end of the outage " +
			"until the last offered record was handled or dead-lettered."},
	})
	b.rep.Summary = append(b.rep.Summary, fmt.Sprintf("B5 breaker dlq_pct=%s without_dlq_pct=%s", f2(pct[true]), f2(pct[false])))
	return nil
}
