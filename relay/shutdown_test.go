package relay_test

import (
	"fmt"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kretry/kretry/relay"
)

// TestRelayShutdownBoundedWithBrokerHung: the broker stops answering
// (produce requests only, or every request) while a re-feed is in flight,
// and then the relay is told to stop. Run returns within the delivery
// timeout plus a few seconds, leaving the tier record of the unacknowledged
// re-feed uncommitted (it is re-fed again later). Before, Run waited for the
// acknowledgement for ever: a re-feed that was sent cannot be timed out by
// the idempotent producer.
func TestRelayShutdownBoundedWithBrokerHung(t *testing.T) {
	eos := []relay.Opt{relay.WithExactlyOnce(true)}
	for _, tc := range []struct {
		name string
		keys []kmsg.Key
		opts []relay.Opt
	}{
		{"produce", []kmsg.Key{kmsg.Produce}, nil},
		// The commit and the leave hang too: Run cuts its requests.
		{"produce-commit-leave", []kmsg.Key{kmsg.Produce, kmsg.OffsetCommit, kmsg.LeaveGroup}, nil},
		{"exactly once/produce", []kmsg.Key{kmsg.Produce}, eos},
		{"exactly once/everything of the transaction", []kmsg.Key{kmsg.Produce, kmsg.TxnOffsetCommit, kmsg.EndTxn, kmsg.AddOffsetsToTxn, kmsg.LeaveGroup}, eos},
	} {
		t.Run(tc.name, func(t *testing.T) { testRelayShutdownBounded(t, tc.keys, tc.opts) })
	}
}

func testRelayShutdownBounded(t *testing.T, keys []kmsg.Key, opts []relay.Opt) {
	synctest.Test(t, func(t *testing.T) {
		e := newVirtualEnv(t, 2, 2)
		first, _ := e.tierRecord(0, 0, "first", time.Now())
		due := time.Now().Add(20 * time.Second)
		hung, _ := e.tierRecord(0, 0, "hung", due)
		e.produce(first, hung)

		const delivery = 5 * time.Second
		r := e.start(append([]relay.Opt{relay.WithDeliveryTimeout(delivery)}, opts...)...)
		waitFor(t, "the first re-feed", func() bool { return len(e.read(relayTopic)) == 1 })
		waitFor(t, "the first re-feed committed", func() bool { return e.committed(relayGroup+"-relay", e.step(0).Topic)[0] == 1 })

		// From now on the broker reads those requests and never answers.
		var hang atomic.Bool
		hang.Store(true)
		for _, key := range keys {
			e.fake.ControlKey(int16(key), func(kmsg.Request) (kmsg.Response, error, bool) {
				e.fake.KeepControl()
				return nil, nil, hang.Load()
			})
		}
		time.Sleep(time.Until(due) + time.Second) // the re-feed of "hung" is in flight

		stopped := time.Now()
		errc := make(chan error, 1)
		go func() { errc <- r.stop() }()
		bound := delivery + 5*time.Second + 5*time.Second // the delivery timeout, the shutdown slack, and kgo's close
		select {
		case err := <-errc:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
			t.Logf("Run returned %v after its context was cancelled, with the broker hung", time.Since(stopped))
		case <-time.After(bound):
			t.Fatalf("Run did not return within %v of its context being cancelled with the broker hung", bound)
		}

		hang.Store(false)
		if got := e.committed(relayGroup+"-relay", e.step(0).Topic)[0]; got != 1 {
			t.Errorf("tier partition 0 committed at %d, want 1: the unacknowledged re-feed stays uncommitted", got)
		}
	})
}

// TestRelayCommitsEveryCommitInterval: what the relay re-fed is committed
// within about a commit interval (1s by default) while it runs, not only at
// franz-go's 5s auto-commit, so a relay killed with kill -9 re-feeds at most
// about a second of its work again.
func TestRelayCommitsEveryCommitInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newVirtualEnv(t, 2, 2)
		r := e.start()
		// A first record, so that the group is joined and the auto-commit
		// ticker runs before the records under test arrive.
		warm, _ := e.tierRecord(0, 1, "warm-up", time.Now())
		e.produce(warm)
		waitFor(t, "the warm-up re-feed", func() bool { return len(e.read(relayTopic)) == 1 })

		for i := range 3 {
			rec, _ := e.tierRecord(0, 0, fmt.Sprint("k", i), time.Now()) // three attempts: copies of one are skipped
			e.produce(rec)
		}
		waitFor(t, "the re-feeds", func() bool { return len(e.read(relayTopic)) == 4 })
		time.Sleep(relay.DefaultCommitInterval + 100*time.Millisecond)
		if got := e.committed(relayGroup+"-relay", e.step(0).Topic)[0]; got != 3 {
			t.Errorf("%v after the re-feeds were acknowledged, tier partition 0 is committed at %d, want 3", relay.DefaultCommitInterval+100*time.Millisecond, got)
		}
		if err := r.stop(); err != nil {
			t.Fatal(err)
		}
	})
}
