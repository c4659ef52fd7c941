package relay

import (
	"context"
	"log/slog"
	"testing"
	"testing/synctest"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/internal/metrics"
	"github.com/kretry/kretry/ladder"
)

// A poll waits for acknowledgements only past maxInflight re-feeds in
// flight, and then until half of it is left, counting what each partition
// has acknowledged in order: it does not wait for whole partitions.
func TestBoundWaitsOnlyPastMaxInflight(t *testing.T) {
	const late = time.Hour                       // when the re-feeds not acknowledged after a second are
	const atBound = maxInflight / maxPollRecords // partitions of a full poll each in flight, at maxInflight
	for _, tc := range []struct {
		name       string
		partitions int // of maxPollRecords re-feeds in flight each
		ackedFirst int // of each partition's, the oldest, acknowledged after a second; the rest after late
		wantLeft   int // in flight after bound: all of them when it does not wait
	}{
		{"below maxInflight", atBound - 1, maxPollRecords, (atBound - 1) * maxPollRecords},
		{"at it", atBound, maxPollRecords, atBound * maxPollRecords},
		// Half of maxInflight left once the oldest of each partition are
		// acknowledged, so bound returns after a second, without the
		// newest of any partition.
		{"past it, the oldest acknowledged", atBound + 1, maxPollRecords - maxInflight/2/(atBound+1), maxInflight / 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				m, err := metrics.New(nil)
				if err != nil {
					t.Fatal(err)
				}
				tier := tierOf{step: ladder.Step{Name: "retry-1s"},
					refed: m.Refed.WithLabelValues("t", "retry-1s"), lateness: m.RefeedLateness.WithLabelValues("retry-1s")}
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				s := &session{r: &Relay{metrics: m, tiers: map[string]tierOf{"t.retry-1s": tier}}, log: slog.New(slog.DiscardHandler),
					hard: ctx, ackc: make(chan struct{}, 1)}
				outs := map[topicPartition]*outcome{}
				var all []*refeed
				for p := range tc.partitions {
					o := &outcome{tp: topicPartition{"t.retry-1s", int32(p)}}
					for i := range maxPollRecords {
						f := &refeed{rec: &kgo.Record{Offset: int64(i)}, produced: true, ackc: s.ackc}
						o.queue = append(o.queue, f)
						all = append(all, f)
					}
					outs[o.tp] = o
				}
				acked := make(chan struct{})
				go func() {
					defer close(acked)
					time.Sleep(time.Second)
					for i, f := range all {
						if i%maxPollRecords < tc.ackedFirst {
							f.ack(&f.out, nil)
						}
					}
					time.Sleep(late)
					for i, f := range all {
						if i%maxPollRecords >= tc.ackedFirst {
							f.ack(&f.out, nil)
						}
					}
				}()
				start := time.Now()
				s.bound(ctx, outs, tc.partitions*maxPollRecords)
				if took := time.Since(start); took >= late {
					t.Errorf("bound returned after %v, once the newest re-feeds were acknowledged; want it back once half of maxInflight is left", took)
				}
				left := 0
				for _, o := range outs {
					left += len(o.queue)
				}
				if left != tc.wantLeft {
					t.Errorf("%d re-feeds left in flight; want %d", left, tc.wantLeft)
				}
				<-acked
			})
		})
	}
}
