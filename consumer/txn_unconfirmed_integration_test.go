//go:build integration

package consumer_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/consumer"
	"github.com/kretry/kretry/internal/kafkatest"
)

// Exactly once on the real broker, across a transaction end whose outcome
// the consumer never learns: the broker commits the transaction, but the
// connection breaks before its answer to the EndTxn arrives (a broker
// stopped right after it took the EndTxn, as in the fault suite's broker
// restart). kgo reports the end as failed and rewinds to the offsets it
// last saw committed, from before that transaction: the records were
// handled again and their outputs committed twice (20 of 20 before the
// fix). Every record must be handled once and its output visible once.
func TestExactlyOnceUnconfirmedCommitHandlesNothingTwice(t *testing.T) {
	verifyNoLeaks(t)
	b := newRealBroker(t, 1)
	b.cfg.ExactlyOnce = true
	out := b.ladder.Topic() + ".out"
	ctx := context.Background()
	if resp, err := b.adm.CreateTopics(ctx, 1, 1, nil, out); err != nil || resp.Error() != nil {
		t.Fatalf("creating %s: %v %v", out, err, resp.Error())
	}
	t.Cleanup(func() { b.adm.DeleteTopics(context.Background(), out) })

	var mu sync.Mutex
	calls := map[string]int{}
	h := consumer.HandlerFunc(func(ctx context.Context, r *kgo.Record) error {
		mu.Lock()
		calls[string(r.Key)]++
		mu.Unlock()
		return consumer.Emit(ctx, &kgo.Record{Topic: out, Key: r.Key})
	})
	var loser kafkatest.EndTxnLoser
	var logs kafkatest.Buffer
	stop := b.run(h, consumer.WithRelay(false), consumer.WithClientOpts(kgo.Dialer(loser.DialContext)),
		consumer.WithLogger(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))))

	handled := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(calls)
	}
	produce := func(from, n int) {
		for i := from; i < from+n; i++ {
			if err := b.cl.ProduceSync(ctx, &kgo.Record{Topic: b.ladder.Topic(), Key: []byte(fmt.Sprint("k", i))}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
	}
	produce(0, 20)
	waitReal(t, 60*time.Second, "the first records handled and committed", func() bool {
		return handled() == 20 && b.committedSum(b.cfg.Group, b.ladder.Topic()) == 20
	})
	loser.Arm() // the next transaction commits; its answer is lost
	produce(20, 20)
	waitReal(t, 60*time.Second, "an answer to an EndTxn lost", loser.Lost)
	produce(40, 20)
	waitReal(t, 90*time.Second, "every record handled and committed", func() bool {
		return handled() == 60 && b.committedSum(b.cfg.Group, b.ladder.Topic()) == 60
	})
	if err := stop(); err != nil {
		t.Errorf("Run: %v", err)
	}
	if !strings.Contains(logs.String(), "kretry consumer transaction failed") {
		t.Fatalf("the end whose answer was lost did not fail, so this tested nothing; the consumer's log:\n%s", logs.String())
	}

	mu.Lock()
	again := 0
	for _, n := range calls {
		again += n - 1
	}
	mu.Unlock()
	outputs, dups := map[string]int{}, 0
	for _, k := range b.readCommittedKeys(out, 60) {
		if outputs[k]++; outputs[k] > 1 {
			dups++
		}
	}
	if len(outputs) != 60 || dups != 0 {
		t.Errorf("a read_committed reader sees the outputs of %d records, %d of them twice; want each of the 60 once", len(outputs), dups)
	}
	if again != 0 {
		t.Errorf("%d handler calls of records whose transaction had committed, want 0", again)
	}
}
