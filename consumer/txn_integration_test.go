//go:build integration

package consumer_test

import (
	"context"
	"errors"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/consumer"
)

// readCommittedKeys returns the keys a read_committed reader sees in topic,
// sorted: it reads until it has want of them (for at most a minute), then
// until 2s pass without another.
func (b *realBroker) readCommittedKeys(topic string, want int) []string {
	b.t.Helper()
	var keys []string
	for _, r := range readCommittedFrom(b.t, []kgo.Opt{kgo.SeedBrokers(b.seeds...), kgo.ConsumeTopics(topic)}, want) {
		keys = append(keys, string(r.Key))
	}
	sort.Strings(keys)
	return keys
}

// Exactly once on the real broker, across a crash in the middle of a
// transaction: A handles records (forwarding the failing ones to a tier and
// emitting outputs) and is killed (SIGKILL) with its transaction open; a read_committed
// reader sees none of A's forwards or outputs, and no offset is committed.
// B, the same instance restarted (same transactional id: A's transaction is
// fenced and aborted), handles everything again: each failing record is in
// the tier once (no duplicate ladder copy), each output of a successful
// call is visible once, and the outputs of failed calls never.
func TestExactlyOnceCrashOnRealBroker(t *testing.T) {
	verifyNoLeaks(t)
	b := newRealBroker(t, 1)
	b.cfg.ExactlyOnce = true
	b.cfg.InstanceID = "i0"
	out := b.ladder.Topic() + ".out"
	ctx := context.Background()
	if resp, err := b.adm.CreateTopics(ctx, 2, 1, nil, out); err != nil || resp.Error() != nil {
		t.Fatalf("creating %s: %v %v", out, err, resp.Error())
	}
	t.Cleanup(func() { b.adm.DeleteTopics(context.Background(), out) })
	keys := []string{"ok-0", "fail-1", "ok-2", "fail-3", "block-4", "ok-5"}
	for _, k := range keys {
		if err := b.cl.ProduceSync(ctx, &kgo.Record{Topic: b.ladder.Topic(), Key: []byte(k)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	run := func(h consumer.Handler) (context.CancelFunc, chan error) {
		c, err := consumer.New(b.cfg, h, consumer.WithRelay(false))
		if err != nil {
			t.Fatal(err)
		}
		rctx, cancel := context.WithCancel(ctx)
		errc := make(chan error, 1)
		go func() { errc <- c.Run(rctx) }()
		return cancel, errc
	}

	// A, a process of its own, blocks in block-4's handler until it is killed.
	blocked := make(chan struct{}, 1)
	a := startCrashChild(t, crashSpec{Config: b.cfg, Handler: "txn-block", NoRelay: true, Out: out}, func(line string) {
		if line == "blocked" {
			blocked <- struct{}{}
		}
	})
	select {
	case <-blocked:
	case <-time.After(60 * time.Second):
		t.Fatal("A never reached block-4")
	}
	time.Sleep(2 * time.Second) // several commit intervals: the transaction stays open
	tier := b.ladder.Steps()[0].Topic
	for _, topic := range []string{tier, out} {
		if got := b.readCommittedKeys(topic, 0); len(got) != 0 {
			t.Errorf("while A's transaction is open, a read_committed reader sees %v in %s, want nothing", got, topic)
		}
	}
	a.kill()
	for _, topic := range []string{tier, out} {
		if got := b.readCommittedKeys(topic, 0); len(got) != 0 {
			t.Errorf("after A crashed, a read_committed reader sees %v in %s, want nothing", got, topic)
		}
	}
	if os, err := b.adm.FetchOffsets(ctx, b.cfg.Group); err == nil {
		if o, ok := os.Lookup(b.ladder.Topic(), 0); ok && o.At > 0 {
			t.Errorf("committed offset %d after A crashed, want none", o.At)
		}
	}

	cancelB, errB := run(txnHandler(out, false, func(string) {}))
	waitReal(t, 90*time.Second, "B committed every record", func() bool {
		os, err := b.adm.FetchOffsets(ctx, b.cfg.Group)
		if err != nil {
			return false
		}
		o, _ := os.Lookup(b.ladder.Topic(), 0)
		return o.At == int64(len(keys))
	})
	cancelB()
	if err := <-errB; err != nil {
		t.Fatalf("B: %v", err)
	}
	if got := b.readCommittedKeys(tier, 2); !slices.Equal(got, []string{"fail-1", "fail-3"}) {
		t.Errorf("tier seen by a read_committed reader: %v, want fail-1 and fail-3 once each", got)
	}
	if got := b.readCommittedKeys(out, 4); !slices.Equal(got, []string{"out-block-4", "out-ok-0", "out-ok-2", "out-ok-5"}) {
		t.Errorf("outputs seen by a read_committed reader: %v, want those of the successful calls once each", got)
	}
}

// txnHandler emits "out-<key>" to out for every record, fails the records
// keyed "fail-*", and, with block, blocks in block-4's call (noting
// "blocked") until its context ends.
func txnHandler(out string, block bool, note func(string)) consumer.Handler {
	return consumer.HandlerFunc(func(ctx context.Context, r *kgo.Record) error {
		k := string(r.Key)
		if err := consumer.Emit(ctx, &kgo.Record{Topic: out, Key: []byte("out-" + k)}); err != nil {
			return err
		}
		switch {
		case strings.HasPrefix(k, "fail"):
			return errTransient
		case k == "block-4" && block:
			note("blocked")
			<-ctx.Done()
			return ctx.Err()
		}
		return nil
	})
}

// An exactly-once consumer with a commit interval of ten minutes handles a
// few records, emitting an output for each, and then has nothing more to
// do: it ends its transaction then, so a read_committed reader sees the
// outputs within seconds, not ten minutes later.
func TestExactlyOnceIdleCommitsEarlyOnRealBroker(t *testing.T) {
	verifyNoLeaks(t)
	b := newRealBroker(t, 2)
	b.cfg.ExactlyOnce = true
	b.cfg.CommitInterval = 10 * time.Minute
	out := b.ladder.Topic() + ".out"
	ctx := context.Background()
	if resp, err := b.adm.CreateTopics(ctx, 2, 1, nil, out); err != nil || resp.Error() != nil {
		t.Fatalf("creating %s: %v %v", out, err, resp.Error())
	}
	t.Cleanup(func() { b.adm.DeleteTopics(context.Background(), out) })
	const records = 20
	for i := range records {
		if err := b.cl.ProduceSync(ctx, &kgo.Record{Topic: b.ladder.Topic(), Partition: int32(i % 2), Key: []byte(strconv.Itoa(i))}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	c, err := consumer.New(b.cfg, consumer.HandlerFunc(func(ctx context.Context, r *kgo.Record) error {
		return consumer.Emit(ctx, &kgo.Record{Topic: out, Key: r.Key})
	}), consumer.WithRelay(false))
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	errc := make(chan error, 1)
	started := time.Now()
	go func() { errc <- c.Run(rctx) }()
	defer func() {
		cancel()
		if err := <-errc; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("Run: %v", err)
		}
	}()
	rd, err := kgo.NewClient(kgo.SeedBrokers(b.seeds...), kgo.ConsumeTopics(out), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	seen := map[string]int{}
	for len(seen) < records && time.Since(started) < 30*time.Second {
		pctx, pcancel := context.WithTimeout(ctx, time.Second)
		rd.PollFetches(pctx).EachRecord(func(r *kgo.Record) { seen[string(r.Key)]++ })
		pcancel()
	}
	if len(seen) < records {
		t.Fatalf("after 30s a read_committed reader sees %d of the %d outputs; want all, the consumer idle since it handled them", len(seen), records)
	}
	t.Logf("every output visible to read_committed %v after Run started (commit interval 10m)", time.Since(started).Round(time.Millisecond))
	for k, n := range seen {
		if n != 1 {
			t.Errorf("a read_committed reader sees output %s %d times, want once", k, n)
		}
	}
}
