//go:build integration

package relay_test

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/headers"
	"github.com/kretry/kretry/internal/kafkatest"
	"github.com/kretry/kretry/ladder"
	"github.com/kretry/kretry/relay"
)

// TestRelayExactlyOnceCrashMidTransactionRealBroker: an exactly-once relay
// re-feeds a tier's records in a transaction and vanishes (as with kill -9)
// before it commits. Its successor (the same instance id, so the same
// transactional id, as a restarted pod) fences it, which aborts the open
// transaction, and re-feeds the records. A read_committed reader of the main
// topic sees every record exactly once: none of the dead relay's re-feeds,
// whose tier offsets were never committed, and no duplicate copy.
func TestRelayExactlyOnceCrashMidTransactionRealBroker(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	const (
		parts   = 2
		records = 200
	)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	rl := newRealLadder(t, ctx, brokers, time.Second, parts, parts)
	l, tier, main := rl.l, rl.tier, rl.l.Topic()

	now := time.Now()
	var recs []*kgo.Record
	for i := range records {
		p := int32(i % parts)
		md := headers.Metadata{Group: l.Group(), Attempts: 1, Tier: tier.Name, DueAt: now, OriginalTopic: main, OriginalPartition: p,
			OriginalOffset: int64(i), OriginalTimestamp: now, FirstFailureAt: now, LastFailureAt: now}
		recs = append(recs, &kgo.Record{Topic: tier.Topic, Partition: p, Key: fmt.Appendf(nil, "k%03d", i), Headers: headers.Encode(nil, md)})
	}
	if err := rl.cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}

	newRelay := func(commitInterval time.Duration, opts ...kgo.Opt) *relay.Relay {
		r, err := relay.New([]*ladder.Ladder{l},
			relay.WithExactlyOnce(true), relay.WithInstanceID("pod-0"),
			relay.WithCommitInterval(commitInterval), relay.WithDeliveryTimeout(2*time.Second),
			relay.WithGroupOpts(kgo.InstanceID("pod-0")),
			relay.WithClientOpts(append([]kgo.Opt{kgo.SeedBrokers(brokers...)}, opts...)...),
			relay.WithLogger(testLogger(t, slog.LevelInfo)))
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	total := func(isolation kgo.IsolationLevel) map[string]int {
		rd, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(main), kgo.FetchIsolationLevel(isolation),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
		if err != nil {
			t.Fatal(err)
		}
		defer rd.Close()
		seen := map[string]int{}
		for {
			pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
			fs := rd.PollFetches(pctx)
			pcancel()
			if fs.NumRecords() == 0 {
				return seen
			}
			fs.EachRecord(func(r *kgo.Record) { seen[string(r.Key)]++ })
		}
	}
	sum := func(m map[string]int) (n int) {
		for _, c := range m {
			n += c
		}
		return n
	}

	// The first relay re-feeds everything in a transaction it does not
	// commit (its ends are held), then vanishes.
	doomed := &killableDialer{}
	hold := &kafkatest.EndHolder{Dial: doomed.DialContext}
	hold.Hold(true)
	a := newRelay(time.Minute, kgo.Dialer(hold.DialContext))
	stopA := runRelay(t, ctx, a)
	defer stopA()
	kafkatest.WaitFor(t, "the first relay's re-feeds, uncommitted", 200*time.Millisecond, time.Minute, func() bool {
		return sum(total(kgo.ReadUncommitted())) >= records
	})
	if n := sum(total(kgo.ReadCommitted())); n != 0 {
		t.Fatalf("a read_committed reader sees %d re-feeds of an open transaction", n)
	}
	doomed.kill()
	hold.Hold(false) // its held ends fail on the closed connections

	b := newRelay(time.Second)
	stopB := runRelay(t, ctx, b)
	defer stopB()
	var committed map[string]int
	kafkatest.WaitFor(t, "every record re-fed and committed", 500*time.Millisecond, 2*time.Minute, func() bool {
		committed = total(kgo.ReadCommitted())
		return len(committed) >= records
	})
	time.Sleep(3 * time.Second) // room for a duplicate to show
	stopB()
	committed = total(kgo.ReadCommitted())
	for k, n := range committed {
		if n != 1 {
			t.Errorf("a read_committed reader sees %s %d times", k, n)
		}
	}
	if len(committed) != records {
		t.Errorf("a read_committed reader sees %d records, want %d", len(committed), records)
	}
	all := sum(total(kgo.ReadUncommitted()))
	if all < 2*records {
		t.Errorf("the main topic holds %d records in all, want the dead relay's aborted %d and the %d committed", all, records, records)
	}
	offs, err := rl.adm.FetchOffsets(ctx, b.Group())
	if err != nil {
		t.Fatal(err)
	}
	var tierCommitted int64
	offs.Each(func(o kadm.OffsetResponse) {
		if o.Topic == tier.Topic {
			tierCommitted += o.At
		}
	})
	if tierCommitted != records {
		t.Errorf("the relay group committed %d tier records, want %d", tierCommitted, records)
	}
	t.Logf("read_committed: %d records, each once; the main topic holds %d (the dead relay's aborted copies included); transactional id %s",
		len(committed), all, b.TransactionalID())
}

// TestRelayExactlyOnceIdleCommitsEarlyRealBroker: an exactly-once relay
// with a commit interval of a minute re-feeds a tier's records and then has
// nothing more to do: it ends its transaction then, not a minute later, so a
// read_committed reader of the main topic sees the re-feeds within seconds.
// Records due later stay in the tier, uncommitted and not re-fed.
func TestRelayExactlyOnceIdleCommitsEarlyRealBroker(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	const (
		parts   = 2
		records = 50
	)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	rl := newRealLadder(t, ctx, brokers, time.Second, parts, parts)
	l, tier, main := rl.l, rl.tier, rl.l.Topic()
	now := time.Now()
	var recs []*kgo.Record
	for i := range records + 1 {
		due := now
		if i == records {
			due = now.Add(time.Hour) // held or paused, never re-fed here
		}
		p := int32(i % parts)
		md := headers.Metadata{Group: l.Group(), Attempts: 1, Tier: tier.Name, DueAt: due, OriginalTopic: main, OriginalPartition: p,
			OriginalOffset: int64(i), OriginalTimestamp: now, FirstFailureAt: now, LastFailureAt: now}
		recs = append(recs, &kgo.Record{Topic: tier.Topic, Partition: p, Key: fmt.Appendf(nil, "k%03d", i), Headers: headers.Encode(nil, md)})
	}
	if err := rl.cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	r, err := relay.New([]*ladder.Ladder{l}, relay.WithExactlyOnce(true), relay.WithCommitInterval(time.Minute),
		relay.WithClientOpts(kgo.SeedBrokers(brokers...)), relay.WithLogger(testLogger(t, slog.LevelInfo)))
	if err != nil {
		t.Fatal(err)
	}
	started := time.Now()
	stop := runRelay(t, ctx, r)
	defer stop()
	var seen map[string]int
	kafkatest.WaitFor(t, "the re-feeds, committed well within the commit interval", 200*time.Millisecond, 30*time.Second, func() bool {
		seen = readCommitted(t, ctx, brokers, main)
		return len(seen) >= records
	})
	t.Logf("every re-feed visible to read_committed %v after the relay started (commit interval 1m)", time.Since(started).Round(time.Millisecond))
	for k, n := range seen {
		if n != 1 || k == fmt.Sprintf("k%03d", records) {
			t.Errorf("a read_committed reader sees %s %d times; want each due record once and never the one due in an hour", k, n)
		}
	}
}

// TestRelayExactlyOnceRebalanceRealBroker: records fall due over a few
// seconds while a second exactly-once relay joins the group and takes half
// the tier partitions. The rebalance aborts the first relay's open
// transaction; a read_committed reader of the main topic still sees every
// record exactly once, and the tier is committed to its end.
func TestRelayExactlyOnceRebalanceRealBroker(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	const (
		parts   = 4
		records = 400
	)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	rl := newRealLadder(t, ctx, brokers, time.Second, parts, parts)
	l, tier, main := rl.l, rl.tier, rl.l.Topic()

	start := time.Now().Add(2 * time.Second)
	var recs []*kgo.Record
	for i := range records {
		p := int32(i % parts)
		due := start.Add(time.Duration(i) * 10 * time.Millisecond) // over 4s
		failed := due.Add(-tier.Delay)
		md := headers.Metadata{Group: l.Group(), Attempts: 1, Tier: tier.Name, DueAt: due, OriginalTopic: main, OriginalPartition: p,
			OriginalOffset: int64(i), OriginalTimestamp: failed, FirstFailureAt: failed, LastFailureAt: failed}
		recs = append(recs, &kgo.Record{Topic: tier.Topic, Partition: p, Key: fmt.Appendf(nil, "k%03d", i), Headers: headers.Encode(nil, md)})
	}
	if err := rl.cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	newRelay := func(instance string) *relay.Relay {
		r, err := relay.New([]*ladder.Ladder{l}, relay.WithExactlyOnce(true), relay.WithInstanceID(instance),
			relay.WithClientOpts(kgo.SeedBrokers(brokers...)), relay.WithLogger(testLogger(t, slog.LevelWarn)))
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	a := newRelay("a")
	stopA := runRelay(t, ctx, a)
	defer stopA()
	time.Sleep(time.Until(start) + time.Second) // a second of records re-fed by the first relay alone
	b := newRelay("b")
	stopB := runRelay(t, ctx, b)
	defer stopB()

	rd, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(main), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	seen := map[string]int{}
	deadline := time.Now().Add(2 * time.Minute)
	var quiet time.Time
	for {
		pctx, pcancel := context.WithTimeout(ctx, time.Second)
		fs := rd.PollFetches(pctx)
		pcancel()
		fs.EachRecord(func(r *kgo.Record) { seen[string(r.Key)]++ })
		switch {
		case len(seen) < records && time.Now().After(deadline):
			t.Fatalf("a read_committed reader sees %d of %d records", len(seen), records)
		case len(seen) < records:
		case quiet.IsZero():
			quiet = time.Now().Add(3 * time.Second) // room for a duplicate to show
		case time.Now().After(quiet):
			goto done
		}
	}
done:
	stopA()
	stopB()
	for k, n := range seen {
		if n != 1 {
			t.Errorf("a read_committed reader sees %s %d times", k, n)
		}
	}
	offs, err := rl.adm.FetchOffsets(ctx, a.Group())
	if err != nil {
		t.Fatal(err)
	}
	var committed int64
	offs.Each(func(o kadm.OffsetResponse) {
		if o.Topic == tier.Topic {
			committed += o.At
		}
	})
	if committed != records {
		t.Errorf("the relay group committed %d tier records, want %d", committed, records)
	}
	t.Logf("read_committed: %d records through a rebalance of two exactly-once relays, each once", len(seen))
}
