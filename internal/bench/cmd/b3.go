package main

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"time"

	"github.com/kretry/kretry/internal/bench"
)

// b3 measures how late re-feeds from a 5s tier are: b3Rounds burst runs
// (the summary line takes the median of each figure, as B1 and B2 take
// theirs), then one paced run.
func (b *benches) b3(ctx context.Context) error {
	rf := b.rf
	var notes []string
	var bursts []result
	for round := 1; round <= rf.b3Rounds; round++ {
		topic := fmt.Sprintf("%s-b3-r%d", b.adm.prefix, round)
		if err := b.createLadderTopics(ctx, topic, rf.b3Delay); err != nil {
			return err
		}
		if err := b.fill(ctx, topic, rf.b3Records, nil); err != nil {
			return err
		}
		var prof []string
		if round == 1 {
			prof = b.profileArgs("b3-kretry")
		}
		k, err := runChild(ctx, "retry-kretry", b.childArgs(topic, b.adm.group(fmt.Sprintf("b3-kretry-r%d", round)), rf.b3Records,
			append([]string{"-delay", rf.b3Delay.String(), "-cap", rf.b3Cap.String()}, prof...)...)...)
		if err != nil {
			return err
		}
		if k.Lateness == nil || k.RefeedLateness == nil {
			return fmt.Errorf("the kretry run of B3 round %d reported no lateness", round)
		}
		logf("B3 round %d: re-feed lateness p50 %s ms, p99 %s ms, max %s ms", round, f1(k.RefeedLateness.P50), f1(k.RefeedLateness.P99), f1(k.RefeedLateness.Max))
		if k.Capped {
			notes = append(notes, fmt.Sprintf("Round %d was capped at %s after the first record: its figures are those of the %d re-feeds seen by then; the later ones were later still.", round, rf.b3Cap, k.Lateness.Count))
		}
		if k.Note != "" {
			notes = append(notes, "Note: "+k.Note+".")
		}
		bursts = append(bursts, k)
	}
	notes = append(notes, "In the burst run the records fall due as fast as the consumer failed them, within about a second; the relay "+
		"has fetched them in the second before (as many as its hold budget takes) and must re-feed them at that rate while the consumer "+
		"handles the re-fed ones on the same cores, so lateness there measures the relay's throughput as much as its timing; "+
		"the paced run measures the timing.")
	t := &bench.Table{Header: []string{"run", "measured at", "re-feeds", "p50 ms", "p99 ms", "max ms", "process peak RSS MiB"}}
	addRows := func(run string, k result) {
		rss := mib(k.PeakRSS)
		if l := k.RefeedLateness; l != nil {
			t.Add(run, "re-feed: re-fed record's timestamp − kretry-due-at", l.Count, f1(l.P50), f1(l.P99), f1(l.Max), rss)
			rss = ""
		}
		l := k.Lateness
		t.Add(run, "main consumer's handler: handled − kretry-due-at", l.Count, f1(l.P50), f1(l.P99), f1(l.Max), rss)
		if rl := k.RelayLateness; rl != nil {
			t.Add(run, "relay: kretry_refeed_lateness_seconds buckets", rl.Count, bucketText(rl.P50), bucketText(rl.P99), bucketText(rl.Max), "")
		}
	}
	var p50s, p99s, maxes, hp99s []float64
	for i, k := range bursts {
		addRows(fmt.Sprintf("burst %d", i+1), k)
		p50s, p99s, maxes = append(p50s, k.RefeedLateness.P50), append(p99s, k.RefeedLateness.P99), append(maxes, k.RefeedLateness.Max)
		hp99s = append(hp99s, k.Lateness.P99)
	}
	p99 := bench.Median(p99s)
	t.Add("burst median", "re-feed: re-fed record's timestamp − kretry-due-at", "", f1(bench.Median(p50s)), f1(p99), f1(bench.Median(maxes)), "")
	if rf.b3Rate > 0 {
		p, err := b.b3Paced(ctx)
		if err != nil {
			return err
		}
		if p.Lateness != nil {
			addRows(fmt.Sprintf("paced %s/s", commas(rf.b3Rate)), p)
		}
		if p.Capped {
			notes = append(notes, fmt.Sprintf("The paced run was capped at %s.", rf.b3Cap))
		}
	}
	b.rep.Sections = append(b.rep.Sections, bench.Section{
		Title: fmt.Sprintf("B3 delay precision: %s tier", rf.b3Delay),
		Text: []string{fmt.Sprintf("%s records over %d partitions; the handler fails every first delivery, so all of them pass through the %s tier. "+
			"For each re-fed record the handler reads two figures. **Re-feed lateness** (the figure of the summary line, as the issue defines it: re-feed time − due time): "+
			"the re-fed record's timestamp, which the relay's producer stamps when it produces the record, minus its kretry-due-at header. "+
			"**Handler lateness**: the time the main consumer's handler gets it minus kretry-due-at, which adds the produce's acknowledgement "+
			"and the main consumer's fetch and queue: an upper bound, end to end. "+
			"**Burst** (the runs of the summary line, %d of them on topics of their own; the summary takes the median of each figure): the topic is filled first, so the consumer fails all of them as fast as it can and "+
			"they fall due at that rate; the relay must re-feed as fast as the consumer forwarded. "+
			"**Paced**: the same count fed to the main topic at %s records/s while the consumer runs, so the dues are spread out and the figure is the timer's precision under a steady retry load. "+
			"**Process peak RSS**: of the process that runs the consumer and its relay; the relay holds the records due within the next second in memory, "+
			"up to its hold budget (relay.hold_bytes, default 64 MiB of keys, values and headers), so that it re-feeds them without fetching them when they fall due. "+
			"Goal (burst): p99 ≤ 20 ms. **Result (burst): re-feed p99 %s ms, median of %s** (%s); handler p99 %s ms (median).", commas(rf.b3Records), rf.partitions, rf.b3Delay, rf.b3Rounds, commas(rf.b3Rate), f1(p99), joinF1(p99s), verdict(p99 <= 20), f1(bench.Median(hp99s)))},
		Table: t,
		Notes: notes,
	})
	b.rep.Summary = append(b.rep.Summary, fmt.Sprintf("B3 p50_ms=%s p99_ms=%s max_ms=%s", f1(bench.Median(p50s)), f1(p99), f1(bench.Median(maxes))))
	return nil
}

// joinF1 lists xs with one decimal, separated by slashes.
func joinF1(xs []float64) string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = f1(x)
	}
	return strings.Join(out, " / ")
}

// b3Paced feeds the main topic at b3Rate while the kretry consumer runs.
func (b *benches) b3Paced(ctx context.Context) (result, error) {
	rf := b.rf
	topic := b.adm.prefix + "-b3-paced"
	if err := b.createLadderTopics(ctx, topic, rf.b3Delay); err != nil {
		return result{}, err
	}
	group := b.adm.group("b3-paced")
	s, err := spawn(ctx, "retry-kretry", b.childArgs(topic, group, rf.b3Records, "-delay", rf.b3Delay.String(), "-cap", rf.b3Cap.String())...)
	if err != nil {
		return result{}, err
	}
	go func() {
		for range s.lines {
		}
	}()
	if err := b.adm.waitStable(ctx, group, group+"-relay"); err != nil {
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		<-s.result
		return result{}, err
	}
	d, err := fill(ctx, rf.brokers, fillSpec{topic: topic, n: rf.b3Records, valueBytes: rf.valueBytes, partitions: int32(rf.partitions), rate: rf.b3Rate})
	if err != nil {
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		<-s.result
		return result{}, err
	}
	logf("fed %s with %d records in %s (paced at %d/s)", topic, rf.b3Records, d.Round(time.Millisecond), rf.b3Rate)
	o := <-s.result
	return o.res, o.err
}
