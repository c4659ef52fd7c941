//go:build integration

package consumer_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
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

// The relay that Run runs calls the consumer's hook for its own dead
// letters on the real broker: a tier record with unreadable kretry headers
// (invalid-metadata) calls it once, with the tier record, after its dead
// letter is visible to a read_committed reader (in exactly-once mode, once
// the relay's transaction committed: see done).
func TestDeadLetterHookOfTheRelayOnRealBroker(t *testing.T) {
	for _, eos := range []bool{false, true} {
		name := "at least once"
		if eos {
			name = "exactly once"
		}
		t.Run(name, func(t *testing.T) {
			verifyNoLeaks(t)
			b := newRealBroker(t, 1)
			b.cfg.ExactlyOnce = eos
			tier := b.ladder.Steps()[0].Topic
			var mu sync.Mutex
			var got []string
			// At least once, the dead letter is visible to a
			// read_committed reader once acknowledged. Exactly once,
			// its transaction has committed: the brokers write the
			// commit markers after EndTxn returns, so the reader may
			// see it a moment later, and the check is the
			// transaction's state.
			done := func(ctx context.Context) bool {
				if !eos {
					visible := int64(0)
					if lso, lerr := b.adm.ListCommittedOffsets(ctx, b.ladder.DLQ()); lerr == nil {
						lso.Each(func(o kadm.ListedOffset) { visible += o.Offset })
					}
					return visible > 0
				}
				txns, lerr := b.adm.ListTransactions(ctx, nil, nil)
				if lerr != nil {
					t.Errorf("listing transactions: %v", lerr)
					return false
				}
				n := 0
				for id, tx := range txns {
					if strings.HasPrefix(id, "kretry/"+b.cfg.Relay.Group+"/relay/") {
						n++
						if tx.State != "CompleteCommit" && tx.State != "PrepareCommit" {
							return false
						}
					}
				}
				return n == 1
			}
			hook := func(ctx context.Context, rec *kgo.Record, reason headers.Reason, err error) error {
				committed := done(ctx)
				mu.Lock()
				defer mu.Unlock()
				got = append(got, fmt.Sprintf("%s@%d %s %s committed=%v", rec.Topic, rec.Offset, rec.Key, reason, committed))
				if !strings.HasPrefix(err.Error(), "unreadable kretry headers: kretry header kretry-attempts") {
					t.Errorf("the relay's hook call has the error %q", err)
				}
				return nil
			}
			stop := b.run(consumer.HandlerFunc(func(context.Context, *kgo.Record) error { return nil }), consumer.WithDeadLetterHook(hook))
			hs := []kgo.RecordHeader{{Key: headers.HeaderVersion, Value: []byte("1")}, {Key: headers.HeaderGroup, Value: []byte(b.cfg.Group)},
				{Key: headers.HeaderAttempts, Value: []byte("many")}}
			b.produceSync(&kgo.Record{Topic: tier, Partition: 0, Key: []byte("bad"), Headers: hs})
			waitReal(t, 60*time.Second, "the relay's hook call", func() bool {
				mu.Lock()
				defer mu.Unlock()
				return len(got) == 1
			})
			time.Sleep(time.Second) // no second call
			if err := stop(); err != nil {
				t.Fatalf("Run: %v", err)
			}
			if want := tier + "@0 bad invalid-metadata committed=true"; len(got) != 1 || got[0] != want {
				t.Errorf("hook calls %q, want [%q]", got, want)
			}
		})
	}
}
