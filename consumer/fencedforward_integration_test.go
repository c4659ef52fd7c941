//go:build integration

package consumer_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/consumer"
	"github.com/kretry/kretry/internal/kafkatest"
)

// Exactly once without instance_id: a forward refused because the
// consumer's transactional id was taken (INVALID_PRODUCER_EPOCH,
// PRODUCER_FENCED) is a fence, not a refusal of the record: the consumer
// drops its session and rejoins with a new id, and the record goes to its
// tier once. Before, the forward was taken for a write refused for good: it
// was redirected to the DLQ, which failed the same way, and Run stopped with
// "cannot be written to the DLQ" (a worker of the fault suite's leader kills
// exited so).
func TestExactlyOnceFencedForwardIsAFence(t *testing.T) {
	verifyNoLeaks(t)
	b := newRealBroker(t, 1)
	b.cfg.ExactlyOnce = true
	var logs kafkatest.Buffer
	var calls atomic.Int64
	stop := b.run(consumer.HandlerFunc(func(_ context.Context, r *kgo.Record) error {
		calls.Add(1)
		if string(r.Key) == "fail" {
			return errors.New("fails once")
		}
		return nil
	}), consumer.WithRelay(false), consumer.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	ctx := context.Background()
	produce := func(key string) {
		if err := b.cl.ProduceSync(ctx, &kgo.Record{Topic: b.ladder.Topic(), Key: []byte(key)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	produce("ok")
	waitReal(t, 60*time.Second, "the first record handled and committed", func() bool {
		return calls.Load() == 1 && b.committedSum(b.cfg.Group, b.ladder.Topic()) == 1
	})
	fenceByClientID(t, b)
	produce("fail")
	waitReal(t, 90*time.Second, "the failing record committed", func() bool {
		return b.committedSum(b.cfg.Group, b.ladder.Topic()) == 2
	})
	if err := stop(); err != nil {
		t.Fatalf("Run: %v; the log:\n%s", err, logs.String())
	}
	if strings.Contains(logs.String(), "refused for good") {
		t.Errorf("a forward of the fenced producer was taken for a write refused for good; the log:\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), "transaction was fenced") {
		t.Errorf("the consumer was not fenced, so this tested nothing; the log:\n%s", logs.String())
	}
	if got := strings.Join(b.readCommittedKeys(b.ladder.Steps()[0].Topic, 1), ","); got != "fail" {
		t.Errorf("the first tier holds %q for read_committed readers, want fail once", got)
	}
	if got := b.readCommittedKeys(b.ladder.DLQ(), 0); len(got) != 0 {
		t.Errorf("the DLQ holds %q for read_committed readers, want nothing", got)
	}
}
