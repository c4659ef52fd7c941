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

// Exactly once on the real broker in a rebalance storm without a crash: A
// ends a transaction every second, C every 3 seconds, and B joins and
// leaves (gracefully) again and again while records flow. Each rebalance's
// join waits for C's boundary, so A's JoinGroup is in flight across A's
// next transactions. kgo builds a transaction's offset commit with the
// generation of before that join and sends it once the join and sync are
// done: the brokers refuse it (ILLEGAL_GENERATION) and the transaction
// aborts, so every record it handled was handled again (the chaos suite's
// rebalance storm: 65 to 1,047 records handled twice a run). No record may
// be handled twice.
func TestExactlyOnceRebalanceStormHandlesNothingTwice(t *testing.T) {
	verifyNoLeaks(t)
	b := newRealBroker(t, 6)
	b.cfg.ExactlyOnce = true
	var mu sync.Mutex
	handled := map[string]int{}
	var calls atomic.Int64
	h := consumer.HandlerFunc(func(_ context.Context, r *kgo.Record) error {
		mu.Lock()
		handled[fmt.Sprintf("%d/%d", r.Partition, r.Offset)]++
		mu.Unlock()
		calls.Add(1)
		return nil
	})
	total := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(handled)
	}
	// run starts a consumer whose transactions span commitInterval.
	run := func(commitInterval time.Duration) func() error {
		cfg := *b.cfg
		cfg.CommitInterval = commitInterval
		cons, err := consumer.New(&cfg, h, consumer.WithRelay(false))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		errc := make(chan error, 1)
		go func() { errc <- cons.Run(ctx) }()
		var once sync.Once
		var runErr error
		stop := func() error {
			once.Do(func() { cancel(); runErr = <-errc })
			return runErr
		}
		t.Cleanup(func() { stop() })
		return stop
	}
	// A stream of 300 records a second over 6 partitions, until stopped.
	var produced atomic.Int64
	pctx, stopProducing := context.WithCancel(context.Background())
	producing := make(chan error, 1)
	go func() {
		defer close(producing)
		for i := 0; pctx.Err() == nil; i++ {
			var recs []*kgo.Record
			for j := range 30 {
				recs = append(recs, &kgo.Record{Topic: b.ladder.Topic(), Partition: int32(j % 6), Key: []byte(fmt.Sprint(i*30 + j))})
			}
			if err := b.cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
				producing <- err
				return
			}
			produced.Add(int64(len(recs)))
			time.Sleep(100 * time.Millisecond)
		}
	}()
	t.Cleanup(stopProducing)

	stopA := run(time.Second)
	stopC := run(3 * time.Second)
	waitReal(t, 60*time.Second, "A and C handled some records", func() bool { return calls.Load() >= 300 })
	for i := range 4 {
		stopB := run(time.Second)
		at := calls.Load()
		waitReal(t, 60*time.Second, "records handled with B in the group", func() bool { return calls.Load() >= at+300 })
		if err := stopB(); err != nil {
			t.Errorf("B (%d): %v", i, err)
		}
		at = calls.Load()
		waitReal(t, 60*time.Second, "records handled after B left", func() bool { return calls.Load() >= at+300 })
	}
	stopProducing()
	if err := <-producing; err != nil {
		t.Fatalf("producing: %v", err)
	}
	n := int(produced.Load())
	waitReal(t, 120*time.Second, "every record handled", func() bool { return total() == n })
	for name, stop := range map[string]func() error{"A": stopA, "C": stopC} {
		if err := stop(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}

	mu.Lock()
	defer mu.Unlock()
	dups := 0
	for _, c := range handled {
		dups += c - 1
	}
	t.Logf("%d records, %d handler calls, %d handled more than once", n, calls.Load(), dups)
	if dups != 0 {
		t.Errorf("%d duplicate handlings in a rebalance storm without a crash, want 0", dups)
	}
}
