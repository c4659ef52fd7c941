//go:build integration

package relay_test

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/headers"
	"github.com/kretry/kretry/internal/kafkatest"
	"github.com/kretry/kretry/ladder"
	"github.com/kretry/kretry/relay"
)

// TestRelayFencesVanishedRelayRealBroker: an exactly-once relay with a
// random instance id re-feeds a tier's records in a transaction and
// vanishes (as with kill -9) before it commits; its re-feeds hold the last
// stable offset of the main topic. Another relay of the group takes its
// partitions after the session timeout and fences its transaction, which
// ends before its transaction timeout elapsed (without the fence the
// brokers abort it only after that timeout), and re-feeds every record
// once.
func TestRelayFencesVanishedRelayRealBroker(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	const (
		parts   = 2
		records = 20
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
	newRelay := func(commitInterval time.Duration, reg prometheus.Registerer, opts ...kgo.Opt) *relay.Relay {
		r, err := relay.New([]*ladder.Ladder{l},
			relay.WithExactlyOnce(true), relay.WithCommitInterval(commitInterval), relay.WithDeliveryTimeout(2*time.Second),
			relay.WithGroupOpts(kgo.SessionTimeout(6*time.Second), kgo.HeartbeatInterval(600*time.Millisecond)),
			relay.WithClientOpts(append([]kgo.Opt{kgo.SeedBrokers(brokers...)}, opts...)...),
			relay.WithRegisterer(reg), relay.WithLogger(testLogger(t, slog.LevelInfo)))
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	mainEnd := func() (n int64) {
		for _, o := range kafkatest.EndOffsets(t, ctx, rl.adm, main) {
			n += o
		}
		return n
	}

	// A re-feeds everything in a transaction it does not commit (its
	// ends are held), then vanishes.
	doomed := &killableDialer{}
	hold := &kafkatest.EndHolder{Dial: doomed.DialContext}
	hold.Hold(true)
	a := newRelay(time.Minute, nil, kgo.Dialer(hold.DialContext))
	stopA := runRelay(t, ctx, a)
	defer stopA()
	kafkatest.WaitFor(t, "A's re-feeds, uncommitted", 100*time.Millisecond, time.Minute, func() bool { return mainEnd() >= records })
	ds, err := rl.adm.DescribeTransactions(ctx, a.TransactionalID())
	if err != nil {
		t.Fatal(err)
	}
	txnA, err := ds.On(a.TransactionalID(), nil)
	if err != nil || txnA.State != "Ongoing" {
		t.Fatalf("A's transaction: %+v, %v; want Ongoing", txnA, err)
	}
	timesOut := time.UnixMilli(txnA.StartTimestamp).Add(time.Duration(txnA.TimeoutMillis) * time.Millisecond)
	doomed.kill()
	hold.Hold(false) // its held ends fail on the closed connections
	killed := time.Now()

	reg := prometheus.NewRegistry()
	b := newRelay(time.Second, reg)
	stopB := runRelay(t, ctx, b)
	defer stopB()
	var ended time.Time
	kafkatest.WaitFor(t, "A's transaction ended", 100*time.Millisecond, 2*time.Minute, func() bool {
		ds, err := rl.adm.DescribeTransactions(ctx, a.TransactionalID())
		if err != nil {
			return false
		}
		if d, _ := ds.On(a.TransactionalID(), nil); d.State == "Ongoing" {
			return false
		}
		ended = time.Now()
		return true
	})
	t.Logf("A's transaction (timeout %v) ended %v after A vanished", time.Duration(txnA.TimeoutMillis)*time.Millisecond, ended.Sub(killed).Round(100*time.Millisecond))
	if !ended.Before(timesOut) {
		t.Errorf("A's transaction ended %v after its transaction timeout elapsed: nothing fenced it, the brokers aborted it", ended.Sub(timesOut))
	}
	fenced := func() float64 { // B's registry holds B's series only
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range mfs {
			if f.GetName() == "kretry_fenced_transactions_total" && len(f.GetMetric()) == 1 {
				return f.GetMetric()[0].GetCounter().GetValue()
			}
		}
		return 0
	}
	kafkatest.WaitFor(t, "B counted the fence", 100*time.Millisecond, 30*time.Second, func() bool { return fenced() > 0 })
	if n := fenced(); n != 1 {
		t.Errorf("kretry_fenced_transactions_total{component=relay} = %v, want 1", n)
	}
	kafkatest.WaitFor(t, "every record re-fed and committed by B", 200*time.Millisecond, time.Minute, func() bool {
		return len(readCommitted(t, ctx, brokers, main)) >= records
	})
	for k, n := range readCommitted(t, ctx, brokers, main) {
		if n != 1 {
			t.Errorf("a read_committed reader sees %s %d times", k, n)
		}
	}
}

// readCommitted counts the records of topic a read_committed reader sees,
// by key.
func readCommitted(t *testing.T, ctx context.Context, brokers []string, topic string) map[string]int {
	rd, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
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
