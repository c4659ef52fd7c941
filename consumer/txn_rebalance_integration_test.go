//go:build integration

package consumer_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
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
// rebalance storm: 65 to 1,047 records handled twice a run). A transaction
// that produced nothing and committed soon after the one before aborted
// too, on a loaded broker still writing the previous one's markers
// (CONCURRENT_TRANSACTIONS, see awaitPreviousTxn: 15 failures in 83 runs
// under two CPU burners). No record may be handled twice; a failure prints
// who handled each record twice, when, and the members' log lines about
// their transactions and rebalances.
func TestExactlyOnceRebalanceStormHandlesNothingTwice(t *testing.T) {
	verifyNoLeaks(t)
	b := newRealBroker(t, 6)
	b.cfg.ExactlyOnce = true
	var mu sync.Mutex
	handled := map[string]int{}
	by := map[string][]string{} // who handled each record, in order
	var calls atomic.Int64
	handler := func(name string) consumer.Handler {
		return consumer.HandlerFunc(func(_ context.Context, r *kgo.Record) error {
			key := fmt.Sprintf("%d/%d", r.Partition, r.Offset)
			mu.Lock()
			handled[key]++
			by[key] = append(by[key], name+"@"+time.Now().Format("15:04:05.000"))
			mu.Unlock()
			calls.Add(1)
			return nil
		})
	}
	var logMu sync.Mutex
	var logNames []string
	logsOf := map[string]*logBuffer{}
	t.Cleanup(func() { // after the members stopped (cleanups run last first)
		if !t.Failed() {
			return
		}
		// What ended each member's transactions, and its rebalances:
		// kgo's "transaction session ending" line of each abort of a
		// transaction that was to commit, and kretry's and kgo's lines
		// at INFO and above.
		logMu.Lock()
		for _, name := range logNames {
			var lines []string
			for l := range strings.SplitSeq(logsOf[name].String(), "\n") {
				for _, m := range stormLogMarks {
					if strings.Contains(l, m) {
						lines = append(lines, l)
						break
					}
				}
			}
			t.Logf("log of %s (excerpt):\n%s", name, strings.Join(lines, "\n"))
		}
		logMu.Unlock()
	})
	total := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(handled)
	}
	// run starts a consumer whose transactions span commitInterval.
	run := func(name string, commitInterval time.Duration) func() error {
		cfg := *b.cfg
		cfg.CommitInterval = commitInterval
		logs := &logBuffer{}
		logMu.Lock()
		logNames = append(logNames, name)
		logsOf[name] = logs
		logMu.Unlock()
		lg := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		cons, err := consumer.New(&cfg, handler(name), consumer.WithRelay(false), consumer.WithLogger(lg))
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

	stopA := run("A", time.Second)
	stopC := run("C", 3*time.Second)
	waitReal(t, 60*time.Second, "A and C handled some records", func() bool { return calls.Load() >= 300 })
	for i := range 4 {
		stopB := run(fmt.Sprintf("B%d", i), time.Second)
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
		for k, c := range handled {
			if c > 1 {
				t.Logf("record %s handled by %v", k, by[k])
			}
		}
	}
}

// stormLogMarks select the lines of a member's log that
// TestExactlyOnceRebalanceStormHandlesNothingTwice prints when it fails.
var stormLogMarks = []string{
	"want_commit=true can_try_commit=false", "level=INFO", "level=WARN", "level=ERROR",
	"heartbeat errored", "joining group", "msg=synced", "on_revoke", "on_lost", "leaving group",
}
