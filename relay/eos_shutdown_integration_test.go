//go:build integration

package relay_test

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/headers"
	"github.com/kretry/kretry/internal/kafkatest"
	"github.com/kretry/kretry/ladder"
	"github.com/kretry/kretry/relay"
)

// onProduced calls fn with every record the client has produced or failed.
type onProduced func(*kgo.Record, error)

func (f onProduced) OnProduceRecordUnbuffered(r *kgo.Record, err error) { f(r, err) }

// TestRelayExactlyOnceShutdownEndsItsTransaction: Run's ctx is cancelled
// while the relay's transaction holds acknowledged re-feeds, as it ends the
// transaction at the commit interval. Run must end that transaction before it
// returns: one left open holds back every read_committed reader of the main
// partitions it wrote to until the brokers time it out (in the chaos
// suite's rebalance storm, two main partitions were not handled for 31.8s
// after a member left); what was re-fed commits with its tier offsets. The
// relay ended it with Run's cancelled ctx, which failed before the end
// reached the brokers, and did not end it again.
func TestRelayExactlyOnceShutdownEndsItsTransaction(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rl := newRealLadder(t, ctx, brokers, time.Second, 1, 1)
	l, tier, main := rl.l, rl.tier, rl.l.Topic()
	// Due after the commit interval has passed: the poll that re-feeds
	// them ends the transaction.
	now := time.Now()
	var recs []*kgo.Record
	for i := range 50 {
		md := headers.Metadata{Group: l.Group(), Attempts: 1, Tier: tier.Name, DueAt: now.Add(time.Second), OriginalTopic: main,
			OriginalOffset: int64(i), OriginalTimestamp: now, FirstFailureAt: now, LastFailureAt: now}
		recs = append(recs, &kgo.Record{Topic: tier.Topic, Key: fmt.Appendf(nil, "k%02d", i), Headers: headers.Encode(nil, md)})
	}
	if err := rl.cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}

	rctx, stop := context.WithCancel(ctx)
	defer stop()
	var once sync.Once
	// Cancelled once a re-feed is acknowledged: the transaction is open on
	// the brokers.
	stopAtFirstRefeed := onProduced(func(r *kgo.Record, err error) {
		if r.Topic == main && err == nil {
			once.Do(stop)
		}
	})
	r, err := relay.New([]*ladder.Ladder{l},
		relay.WithExactlyOnce(true), relay.WithInstanceID(kafkatest.Name(t, "pod")),
		relay.WithCommitInterval(100*time.Millisecond), relay.WithDeliveryTimeout(5*time.Second),
		relay.WithClientOpts(kgo.SeedBrokers(brokers...), kgo.WithHooks(stopAtFirstRefeed)),
		relay.WithLogger(testLogger(t, slog.LevelInfo)))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Run(rctx); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if rctx.Err() == nil {
		t.Fatal("Run returned before it re-fed anything")
	}

	txns, err := rl.adm.DescribeTransactions(ctx, r.TransactionalID())
	if err != nil {
		t.Fatal(err)
	}
	d := txns[r.TransactionalID()]
	if d.Err != nil {
		t.Fatalf("describing transaction %s: %v", r.TransactionalID(), d.Err)
	}
	t.Logf("transaction %s after Run returned: %s", r.TransactionalID(), d.State)
	switch d.State {
	case "PrepareCommit", "CompleteCommit":
	case "Ongoing":
		t.Errorf("Run returned with its transaction open (partitions %v): read_committed readers of %s wait until the brokers time it out",
			d.Topics.Sorted(), main)
	default:
		t.Errorf("Run ended its transaction %s, want it committed with the re-feeds acknowledged before", d.State)
	}
}
