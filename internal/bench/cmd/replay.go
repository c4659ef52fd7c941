package main

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/dlq"
	"github.com/kretry/kretry/headers"
	"github.com/kretry/kretry/internal/bench"
)

// replay times dlq.Reader.Replay (what `kretry dlq replay` runs) over a DLQ
// of dead-lettered records, back to their main topic. No goal: the figure
// is for the README.
func (b *benches) replay(ctx context.Context) error {
	rf := b.rf
	main := b.adm.prefix + "-replay"
	dq := main + ".dlq"
	if err := b.createLadderTopics(ctx, main, time.Second); err != nil {
		return err
	}
	at := time.Now()
	err := b.fill(ctx, dq, rf.replayRecords, func(i int, p int32) []kgo.RecordHeader {
		return headers.Encode(nil, headers.Metadata{
			Group: "bench", Attempts: 3, Tier: "retry-1s", DueAt: at, OriginalTopic: main, OriginalPartition: p,
			OriginalOffset: int64(i), OriginalTimestamp: at, FirstFailureAt: at, LastFailureAt: at,
			Error: errFailOnce.Error(), Reason: headers.ReasonExhausted,
		})
	})
	if err != nil {
		return err
	}
	r, err := dlq.NewReader(dq, dlq.WithClientOpts(kgo.SeedBrokers(rf.brokers...)))
	if err != nil {
		return err
	}
	defer r.Close()
	t := &bench.Table{Header: []string{"round", "records replayed", "seconds", "records/s"}}
	var rates []float64
	for round := 1; round <= rf.replayRounds; round++ {
		t0 := time.Now()
		sum, err := r.Replay(ctx, dlq.Filter{}, dlq.WithMainTopics(main), dlq.WithGroup(b.adm.group(fmt.Sprintf("replay-r%d", round))))
		d := time.Since(t0)
		if err != nil {
			return err
		}
		if sum.Replayed != rf.replayRecords {
			return fmt.Errorf("round %d replayed %d records of %d", round, sum.Replayed, rf.replayRecords)
		}
		rate := float64(sum.Replayed) / d.Seconds()
		rates = append(rates, rate)
		logf("DLQ replay round %d: %d records in %s (%.0f records/s)", round, sum.Replayed, d.Round(time.Millisecond), rate)
		t.Add(round, commas(sum.Replayed), f2(d.Seconds()), f0(rate))
	}
	t.Add("median", "", "", f0(bench.Median(rates)))
	b.rep.Sections = append(b.rep.Sections, bench.Section{
		Title: "DLQ replay",
		Text: []string{fmt.Sprintf("%s dead-lettered records of %d B over %d partitions, with the kretry headers a DLQ record carries; "+
			"each round replays all of them to their main topic with dlq.Reader.Replay (what `kretry dlq replay` runs) under a fresh "+
			"replay group: every record acknowledged by the broker (acks=all, idempotent), up to 1,000 in flight, progress committed "+
			"once a second and at the end of each partition. Seconds run from the call to its return, planning pass included. No goal; "+
			"the figure the README quotes.", commas(rf.replayRecords), rf.valueBytes, rf.partitions)},
		Table: t,
	})
	return nil
}
