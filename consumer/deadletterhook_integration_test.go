//go:build integration

package consumer_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/consumer"
	"github.com/kretry/kretry/headers"
)

// The dead-letter hook on the real broker: one call per dead letter, each
// after its DLQ record is on the broker, a panicking call changing nothing.
func TestDeadLetterHookOnRealBroker(t *testing.T) {
	verifyNoLeaks(t)
	b := newRealBroker(t, 2)
	var mu sync.Mutex
	calls := map[string]int{}
	dlqAtCall := map[string]int{}
	hook := func(_ context.Context, rec *kgo.Record, reason headers.Reason, err error) error {
		n := len(b.readAll(b.ladder.DLQ()))
		mu.Lock()
		calls[string(rec.Key)]++
		dlqAtCall[string(rec.Key)] = n
		mu.Unlock()
		if reason != headers.ReasonPermanent || err.Error() != "bad "+string(rec.Key) || rec.Topic != b.ladder.Topic() {
			t.Errorf("hook called with %s, %s, %v", rec.Topic, reason, err)
		}
		if string(rec.Key) == "p" {
			panic("hook panics")
		}
		return nil
	}
	h := consumer.HandlerFunc(func(_ context.Context, r *kgo.Record) error {
		if string(r.Key) == "fine" {
			return nil
		}
		return consumer.Permanent(errors.New("bad " + string(r.Key)))
	})
	b.produceSync(&kgo.Record{Topic: b.ladder.Topic(), Partition: 0, Key: []byte("p")},
		&kgo.Record{Topic: b.ladder.Topic(), Partition: 1, Key: []byte("q")},
		&kgo.Record{Topic: b.ladder.Topic(), Partition: 0, Key: []byte("fine")})
	stop := b.run(h, consumer.WithRelay(false), consumer.WithDeadLetterHook(hook))
	waitReal(t, 60*time.Second, "two hook calls", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(calls) == 2
	})
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	for _, k := range []string{"p", "q"} {
		if calls[k] != 1 || dlqAtCall[k] < 1 {
			t.Errorf("%s: %d calls, DLQ records seen at its call %d; want 1 call after its dead letter", k, calls[k], dlqAtCall[k])
		}
	}
	if n := len(b.readAll(b.ladder.DLQ())); n != 2 {
		t.Errorf("the DLQ holds %d records, want 2", n)
	}
	b.checkCommittedToEnd(b.cfg.Group, b.ladder.Topic())
}
