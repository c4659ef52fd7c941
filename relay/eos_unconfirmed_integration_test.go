//go:build integration

package relay_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/headers"
	"github.com/kretry/kretry/internal/kafkatest"
	"github.com/kretry/kretry/ladder"
	"github.com/kretry/kretry/relay"
)

// TestRelayExactlyOnceUnconfirmedCommitRealBroker: the broker commits one
// of the relay's transactions, but the connection breaks before its answer
// to the EndTxn arrives (a broker stopped right after it took the request).
// kgo reports the end as failed and rewinds to the tier offsets it last saw
// committed, from before that transaction: the relay re-fed its records a
// second time, in a transaction that commits. A read_committed reader of
// the main topic must see every record once.
func TestRelayExactlyOnceUnconfirmedCommitRealBroker(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	rl := newRealLadder(t, ctx, brokers, time.Second, 1, 1)
	l, tier, main := rl.l, rl.tier, rl.l.Topic()

	park := func(from, n int) {
		now := time.Now()
		var recs []*kgo.Record
		for i := from; i < from+n; i++ {
			md := headers.Metadata{Group: l.Group(), Attempts: 1, Tier: tier.Name, DueAt: now, OriginalTopic: main,
				OriginalOffset: int64(i), OriginalTimestamp: now, FirstFailureAt: now, LastFailureAt: now}
			recs = append(recs, &kgo.Record{Topic: tier.Topic, Key: fmt.Appendf(nil, "k%03d", i), Headers: headers.Encode(nil, md)})
		}
		if err := rl.cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	refed := func() map[string]int { return readCommitted(t, ctx, brokers, main) }

	var loser kafkatest.EndTxnLoser
	var logs kafkatest.Buffer
	r, err := relay.New([]*ladder.Ladder{l}, relay.WithExactlyOnce(true), relay.WithInstanceID("pod-0"),
		relay.WithCommitInterval(200*time.Millisecond), relay.WithDeliveryTimeout(5*time.Second),
		relay.WithClientOpts(kgo.SeedBrokers(brokers...), kgo.Dialer(loser.DialContext)),
		relay.WithLogger(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))))
	if err != nil {
		t.Fatal(err)
	}
	stop := runRelay(t, ctx, r)
	defer stop()

	park(0, 50)
	kafkatest.WaitFor(t, "the first records re-fed and committed", 300*time.Millisecond, time.Minute, func() bool { return len(refed()) == 50 })
	loser.Arm() // the next transaction commits; its answer is lost
	park(50, 50)
	kafkatest.WaitFor(t, "an answer to an EndTxn lost", 100*time.Millisecond, time.Minute, loser.Lost)
	park(100, 50)
	kafkatest.WaitFor(t, "every record re-fed and committed", 300*time.Millisecond, time.Minute, func() bool { return len(refed()) == 150 })
	time.Sleep(3 * time.Second) // room for a second copy to show
	stop()
	if !strings.Contains(logs.String(), "transaction ended with an error") {
		t.Fatalf("the end whose answer was lost did not fail, so this tested nothing; the relay's log:\n%s", logs.String())
	}
	twice := 0
	for _, n := range refed() {
		twice += n - 1
	}
	if twice != 0 {
		t.Errorf("a read_committed reader sees %d records of the main topic twice, want each once", twice)
	}
}
