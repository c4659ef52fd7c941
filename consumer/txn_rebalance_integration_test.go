//go:build integration

package consumer_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/consumer"
)

// Exactly once on the real broker, across rebalances without a crash: A
// handles a stream of records, B joins (partitions move to it) and, once it
// has handled some, leaves again (they move back). Every transaction commits
// at its boundary before a revoke runs, so no record is handled twice and
// both stop cleanly. Before restartTxn, kgo's transact session aborted the
// transaction after each revoke whatever it held: its records were handled
// again, and a stop right after a rebalance returned "the last transaction
// did not commit".
func TestExactlyOnceRebalanceHandlesNothingTwice(t *testing.T) {
	verifyNoLeaks(t)
	b := newRealBroker(t, 4)
	b.cfg.ExactlyOnce = true
	var mu sync.Mutex
	handled := map[string]int{}
	counting := func(by *atomic.Int64) consumer.Handler {
		return consumer.HandlerFunc(func(_ context.Context, r *kgo.Record) error {
			time.Sleep(time.Millisecond)
			mu.Lock()
			handled[fmt.Sprintf("%d/%d", r.Partition, r.Offset)]++
			mu.Unlock()
			by.Add(1)
			return nil
		})
	}
	total := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(handled)
	}
	// A stream of 400 records a second over 4 partitions, until stopped.
	var produced atomic.Int64
	pctx, stopProducing := context.WithCancel(context.Background())
	producing := make(chan error, 1)
	go func() {
		defer close(producing)
		for i := 0; pctx.Err() == nil; i++ {
			var recs []*kgo.Record
			for j := range 20 {
				recs = append(recs, &kgo.Record{Topic: b.ladder.Topic(), Partition: int32(j % 4), Key: []byte(fmt.Sprint(i*20 + j))})
			}
			if err := b.cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
				producing <- err
				return
			}
			produced.Add(int64(len(recs)))
			time.Sleep(50 * time.Millisecond)
		}
	}()
	t.Cleanup(stopProducing)

	var byA, byB atomic.Int64
	stopA := b.run(counting(&byA), consumer.WithRelay(false))
	waitReal(t, 60*time.Second, "A handled some records", func() bool { return byA.Load() >= 200 })
	stopB := b.run(counting(&byB), consumer.WithRelay(false))
	waitReal(t, 60*time.Second, "B handled some records", func() bool { return byB.Load() >= 200 })
	if err := stopB(); err != nil {
		t.Errorf("B: %v", err)
	}
	atB := byA.Load()
	waitReal(t, 120*time.Second, "A handled more after B left", func() bool { return byA.Load() >= atB+200 })
	stopProducing()
	if err := <-producing; err != nil {
		t.Fatalf("producing: %v", err)
	}
	n := int(produced.Load())
	waitReal(t, 120*time.Second, "every record handled", func() bool { return total() == n })
	if err := stopA(); err != nil {
		t.Errorf("A: %v", err)
	}

	mu.Lock()
	defer mu.Unlock()
	dups := 0
	for _, c := range handled {
		dups += c - 1
	}
	t.Logf("%d records (A %d, B %d handlings), %d handled more than once", n, byA.Load(), byB.Load(), dups)
	if dups != 0 {
		t.Errorf("%d duplicate handlings across a join and a leave without a crash, want 0", dups)
	}
}
