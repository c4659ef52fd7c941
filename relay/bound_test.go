package relay

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"testing/synctest"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/internal/metrics"
	"github.com/kretry/kretry/ladder"
)

// A poll waits for acknowledgements only past maxInflight re-feeds in
// flight, and then until half of it is left.
func TestBoundWaitsOnlyPastMaxInflight(t *testing.T) {
	for _, tc := range []struct {
		partitions int // of maxPollRecords re-feeds in flight each
		wantLeft   int // in flight after bound: all of them when it does not wait
	}{
		{partitions: 3, wantLeft: 3 * maxPollRecords}, // 15,000: below maxInflight
		{partitions: 4, wantLeft: 4 * maxPollRecords}, // 20,000: at it
		{partitions: 5, wantLeft: 2 * maxPollRecords}, // past it: down to half
	} {
		t.Run(fmt.Sprint(tc.partitions*maxPollRecords), func(t *testing.T) {
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
					for _, f := range all {
						f.ack(&f.out, nil)
					}
				}()
				s.bound(ctx, outs, tc.partitions*maxPollRecords)
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
