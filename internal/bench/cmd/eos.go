package main

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/kretry/kretry/internal/bench"
)

// eos runs B1's and B2's kretry sides in both modes, exactly_once and
// at-least-once, alternating which goes first, on topics of their own: what
// the transactions cost, as the ratio exactly-once / at-least-once.
func (b *benches) eos(ctx context.Context) error {
	rf := b.rf
	b1 := &bench.Table{Header: []string{"round", "at-least-once records/s", "exactly-once records/s", "exactly-once / at-least-once", "CPU s per 1M: at-least-once / exactly-once"}}
	b2 := &bench.Table{Header: []string{"round", "at-least-once records/s", "exactly-once records/s", "exactly-once / at-least-once", "CPU s per 1M: at-least-once / exactly-once"}}
	var r1, r2 []float64
	capArg := []string{"-cap", rf.b2Cap.String()}
	for round := 1; round <= rf.eosRounds; round++ {
		modes := []bool{false, true}
		if round%2 == 0 {
			modes = []bool{true, false}
		}
		// B1: one filled topic, read by a fresh group per mode.
		topic := fmt.Sprintf("%s-eos-b1-r%d", b.adm.prefix, round)
		if err := b.createLadderTopics(ctx, topic, time.Second); err != nil {
			return err
		}
		if err := b.fill(ctx, topic, rf.eosB1Records, nil); err != nil {
			return err
		}
		res := map[bool]result{}
		for _, eos := range modes {
			group := b.adm.group(fmt.Sprintf("eos-b1-%s-r%d", modeName(eos), round))
			r, err := runChild(ctx, "b1-kretry", b.childArgs(topic, group, rf.eosB1Records, "-eos="+strconv.FormatBool(eos))...)
			if err != nil {
				return fmt.Errorf("B1 %s: %w", modeName(eos), err)
			}
			logf("EOS round %d B1 %s: %.0f records/s, %.2f CPU s per 1M records", round, modeName(eos), r.rate(), r.cpuPerMillion())
			res[eos] = r
		}
		ratio := res[true].rate() / res[false].rate()
		r1 = append(r1, ratio)
		b1.Add(round, f0(res[false].rate()), f0(res[true].rate()), f3(ratio), f2(res[false].cpuPerMillion())+" / "+f2(res[true].cpuPerMillion()))

		// B2: the kretry side re-feeds into its main topic, so each mode
		// gets a topic of its own.
		res = map[bool]result{}
		for _, eos := range modes {
			topic := fmt.Sprintf("%s-eos-b2-%s-r%d", b.adm.prefix, modeName(eos), round)
			if err := b.createLadderTopics(ctx, topic, rf.b2Delay); err != nil {
				return err
			}
			if err := b.fill(ctx, topic, rf.eosB2Records, nil); err != nil {
				return err
			}
			group := b.adm.group(fmt.Sprintf("eos-b2-%s-r%d", modeName(eos), round))
			args := append([]string{"-delay", rf.b2Delay.String(), "-late-every", strconv.Itoa(b2LateEvery), "-eos=" + strconv.FormatBool(eos)}, capArg...)
			r, err := runChild(ctx, "retry-kretry", b.childArgs(topic, group, rf.eosB2Records, args...)...)
			if err != nil {
				return fmt.Errorf("B2 %s: %w", modeName(eos), err)
			}
			logf("EOS round %d B2 %s: %.0f records/s%s", round, modeName(eos), r.rate(), cappedNote(r, rf.eosB2Records))
			res[eos] = r
		}
		ratio = res[true].rate() / res[false].rate()
		r2 = append(r2, ratio)
		b2.Add(round, f0(res[false].rate()), f0(res[true].rate()), f3(ratio), f2(res[false].cpuPerMillion())+" / "+f2(res[true].cpuPerMillion()))
	}
	m1, m2 := bench.Median(r1), bench.Median(r2)
	b1.Add("median", "", "", f3(m1), "")
	b2.Add("median", "", "", f3(m2), "")
	b.rep.Sections = append(b.rep.Sections, bench.Section{
		Title: "B1eos and B2eos: exactly_once against at-least-once",
		Text: []string{fmt.Sprintf("B1's and B2's kretry sides, each run in both modes in every round (which goes first alternates), "+
			"%d rounds: B1eos with %s records and a no-op handler, B2eos with %s records that each fail once and succeed when re-fed "+
			"(B2's rate and tier, capped at %s). In exactly_once the consumer's forwards and offsets, and the relay's "+
			"re-feeds and offsets, commit in Kafka transactions, one per commit interval (1s) while busy and sooner once idle, and both read read_committed. "+
			"Records/s counts handler calls (B2: of re-fed records, which the relay reads only once the forward's transaction "+
			"committed, and the consumer only once the re-feed's did); in exactly_once a record's offset commits at the end of its "+
			"transaction, up to a commit interval after its handler returned, which B1's sub-second runs do not include, so B1eos "+
			"measures the handling rate under transactions, not how soon it is committed. "+
			"Goal: median exactly-once / at-least-once ≥ 0.8 for both. **Result: B1eos %s (%s), B2eos %s (%s).**",
			rf.eosRounds, commas(rf.eosB1Records), commas(rf.eosB2Records), rf.b2Cap, f3(m1), verdict(m1 >= 0.8), f3(m2), verdict(m2 >= 0.8))},
		Table: b1,
	}, bench.Section{
		Title: "B2eos rounds",
		Table: b2,
	})
	b.rep.Summary = append(b.rep.Summary, fmt.Sprintf("B1eos ratio=%s", f3(m1)), fmt.Sprintf("B2eos ratio=%s", f3(m2)))
	return nil
}

func modeName(eos bool) string {
	if eos {
		return "exactly-once"
	}
	return "at-least-once"
}
