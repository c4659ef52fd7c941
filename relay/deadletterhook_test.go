package relay_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/headers"
	"github.com/kretry/kretry/internal/metrics"
	"github.com/kretry/kretry/relay"
)

// hookCall is one call of a dead-letter hook, with how many dead letters
// a read_committed reader could see when it was made.
type hookCall struct {
	rec     kgo.Record
	reason  headers.Reason
	err     string
	visible int64
}

// The relay's own dead letters (here invalid-metadata) call
// WithDeadLetterHook once each, with the tier record, after the dead
// letter is acknowledged, and in the exactly-once mode after the
// transaction that wrote it committed (a read_committed reader sees it when
// the hook runs). A hook's error and panic are logged and counted, and
// change nothing: the records stay dead-lettered and committed, the relay
// goes on.
func TestRelayDeadLetterHook(t *testing.T) {
	for _, mode := range []struct {
		name string
		eos  bool
	}{{"at least once", false}, {"exactly once", true}} {
		t.Run(mode.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				e := newVirtualEnv(t, 1, 1)
				reg := prometheus.NewRegistry()
				m := newMetrics(t, reg)
				now := time.Now()
				var bad []*kgo.Record
				for _, key := range []string{"bad-1", "bad-2"} {
					r, _ := e.tierRecord(0, 0, key, now)
					for i, h := range r.Headers {
						if h.Key == headers.HeaderAttempts {
							r.Headers[i].Value = []byte("x")
						}
					}
					bad = append(bad, r)
				}
				good, _ := e.tierRecord(0, 0, "good", now)
				e.produce(bad[0], bad[1], good)

				var mu sync.Mutex
				var calls []hookCall
				hook := func(ctx context.Context, rec *kgo.Record, reason headers.Reason, err error) error {
					visible := int64(0)
					if lso, lerr := e.adm.ListCommittedOffsets(ctx, e.ladder.DLQ()); lerr == nil {
						lso.Each(func(o kadm.ListedOffset) { visible += o.Offset })
					}
					mu.Lock()
					calls = append(calls, hookCall{*rec, reason, err.Error(), visible})
					n := len(calls)
					mu.Unlock()
					switch n {
					case 1:
						return errors.New("pager down")
					case 2:
						panic("hook bug")
					}
					return nil
				}
				r := e.start(relay.WithRegisterer(reg), relay.WithExactlyOnce(mode.eos), relay.WithDeadLetterHook(hook))
				waitFor(t, "the good record re-fed and both hook calls", func() bool {
					mu.Lock()
					defer mu.Unlock()
					return len(calls) == 2 && len(e.read(relayTopic)) == 1
				})
				if err := r.stop(); err != nil {
					t.Fatalf("Run: %v", err)
				}

				if len(calls) != 2 {
					t.Fatalf("the hook was called %d times, want 2", len(calls))
				}
				for i, c := range calls {
					if c.rec.Topic != e.step(0).Topic || c.rec.Partition != 0 || c.rec.Offset != int64(i) || string(c.rec.Key) != string(bad[i].Key) ||
						c.reason != headers.ReasonInvalidMetadata || !strings.Contains(c.err, "unreadable kretry headers: kretry header kretry-attempts") {
						t.Errorf("call %d: %s[%d]@%d key %s, reason %s, error %q; want the tier record %s, invalid-metadata, unreadable kretry headers",
							i+1, c.rec.Topic, c.rec.Partition, c.rec.Offset, c.rec.Key, c.reason, c.err, bad[i].Key)
					}
					if c.visible < int64(i+1) {
						t.Errorf("call %d ran while a read_committed reader saw %d dead letters: before its dead letter was committed", i+1, c.visible)
					}
				}
				if n := len(e.read(e.ladder.DLQ())); n != 2 {
					t.Errorf("the DLQ holds %d records, want 2", n)
				}
				for _, result := range []string{metrics.HookError, metrics.HookPanic} {
					if got := metricValue(t, m.DeadLetterHook.WithLabelValues(relayTopic, result)); got != 1 {
						t.Errorf("kretry_dead_letter_hook_calls_total{result=%s} = %v, want 1", result, got)
					}
				}
			})
		})
	}
}
