package consumer_test

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/consumer"
)

// A rebalance while a consumer shuts down must not hand a partition to
// another member while the first member's handler still runs on it: the
// revoke waits for the stopping worker, so a record is never handled by two
// members at once.
func TestRebalanceDuringShutdownWaitsForHandlers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCluster(t, 2, 2)
		c.produce(&kgo.Record{Partition: 0, Key: []byte("slow-0")}, &kgo.Record{Partition: 1, Key: []byte("slow-1")},
			&kgo.Record{Partition: 0, Key: []byte("next-0")}, &kgo.Record{Partition: 1, Key: []byte("next-1")})
		var mu sync.Mutex
		inFlight := map[string]int{}
		overlaps := 0
		var calls counter
		h := consumer.HandlerFunc(func(_ context.Context, r *kgo.Record) error {
			key := string(r.Key)
			mu.Lock()
			inFlight[key]++
			if inFlight[key] > 1 {
				overlaps++
			}
			mu.Unlock()
			calls.add(r.Key)
			if key == "slow-0" || key == "slow-1" {
				time.Sleep(30 * time.Second) // ignores ctx: the grace period covers it
			}
			mu.Lock()
			inFlight[key]--
			mu.Unlock()
			return nil
		})
		// See TestJoinAndLeaveWhileWorkerHoldsPause for the autocommit interval.
		opts := []consumer.Opt{consumer.WithRelay(false), consumer.WithGracePeriod(time.Minute),
			consumer.WithClientOpts(kgo.AutoCommitInterval(24 * time.Hour))}
		a := c.start(h, opts...)
		waitFor(t, "A in both slow handlers", func() bool { return calls.get("slow-0") == 1 && calls.get("slow-1") == 1 })
		a.cancel() // A shuts down: its workers get the grace period
		b := c.start(h, opts...)
		waitFor(t, "every record handled", func() bool { return calls.get("next-0") >= 1 && calls.get("next-1") >= 1 })
		if err := a.stop(); err != nil {
			t.Fatalf("A: %v", err)
		}
		if err := b.stop(); err != nil {
			t.Fatalf("B: %v", err)
		}
		mu.Lock()
		defer mu.Unlock()
		if overlaps != 0 {
			t.Errorf("a record was handled by two members at once %d times, want 0", overlaps)
		}
		if got := c.committed(testGroup, testTopic); got[0] != 2 || got[1] != 2 {
			t.Errorf("committed = %v, want both partitions at 2", got)
		}
	})
}
