package consumer_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/consumer"
	"github.com/kretry/kretry/headers"
	"github.com/kretry/kretry/internal/kafkatest"
	"github.com/kretry/kretry/internal/metrics"
)

// hookCall is what a dead-letter hook was called with.
type hookCall struct {
	topic     string
	offset    int64
	key       string
	reason    headers.Reason
	err       string
	dlqWasOut bool // the DLQ held a record when the call started
}

// The hook is called once per dead letter, after it is acknowledged, with
// the record as handled; a panicking hook and a failing one are logged and
// counted, and their records stay dead-lettered and committed.
func TestDeadLetterHook(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCluster(t, 1, 1)
		reg := prometheus.NewRegistry()
		var logs logBuffer
		var mu sync.Mutex
		var calls []hookCall
		hook := func(ctx context.Context, rec *kgo.Record, reason headers.Reason, err error) error {
			call := hookCall{topic: rec.Topic, offset: rec.Offset, key: string(rec.Key), reason: reason, err: err.Error()}
			call.dlqWasOut = len(c.read(c.ladder.DLQ())) > int(rec.Offset)
			mu.Lock()
			calls = append(calls, call)
			mu.Unlock()
			switch string(rec.Key) {
			case "panics":
				panic("the ticket system is down")
			case "fails":
				return errors.New("alert not sent")
			}
			return nil
		}
		h := consumer.HandlerFunc(func(_ context.Context, r *kgo.Record) error {
			return consumer.Permanent(fmt.Errorf("bad %s", r.Key))
		})
		c.produce(&kgo.Record{Key: []byte("panics")}, &kgo.Record{Key: []byte("fails")}, &kgo.Record{Key: []byte("ok")})
		r := c.start(h, consumer.WithRelay(false), consumer.WithRegisterer(reg), consumer.WithLogger(logs.logger()),
			consumer.WithDeadLetterHook(hook))
		waitFor(t, "three hook calls", func() bool { mu.Lock(); defer mu.Unlock(); return len(calls) == 3 })
		waitFor(t, "three dead letters", func() bool { return len(c.read(c.ladder.DLQ())) == 3 })
		waitFor(t, "every record committed", func() bool { return c.committed(testGroup, testTopic)[0] == 3 })
		if err := r.stop(); err != nil {
			t.Fatalf("Run: %v", err)
		}
		if n := len(c.read(c.ladder.DLQ())); n != 3 {
			t.Errorf("DLQ holds %d records, want 3", n)
		}
		for i, key := range []string{"panics", "fails", "ok"} {
			want := hookCall{topic: testTopic, offset: int64(i), key: key, reason: headers.ReasonPermanent, err: "bad " + key, dlqWasOut: true}
			if calls[i] != want {
				t.Errorf("call %d: %+v, want %+v", i, calls[i], want)
			}
		}
		m, _ := metrics.New(reg)
		for result, want := range map[string]float64{metrics.HookOK: 1, metrics.HookError: 1, metrics.HookPanic: 1, metrics.HookDropped: 0} {
			if got := metricValue(t, m.DeadLetterHook.WithLabelValues(testTopic, result)); got != want {
				t.Errorf("kretry_dead_letter_hook_calls_total{result=%s} = %v, want %v", result, got, want)
			}
		}
		for _, line := range []string{"dead-letter hook panicked", "the ticket system is down", "dead-letter hook failed", "alert not sent"} {
			if !strings.Contains(logs.String(), line) {
				t.Errorf("log has no %q", line)
			}
		}
	})
}

// A hook that does not return holds up no record: the dead letters go on,
// calls beyond its queue are dropped and counted, and Run still returns.
func TestDeadLetterHookSlow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCluster(t, 1, 1)
		reg := prometheus.NewRegistry()
		var logs logBuffer
		started := make(chan struct{}, 100)
		release := make(chan struct{})
		hook := func(ctx context.Context, _ *kgo.Record, _ headers.Reason, _ error) error {
			started <- struct{}{}
			<-release // ignores its ctx: the worst a hook can do
			return nil
		}
		h := consumer.HandlerFunc(func(context.Context, *kgo.Record) error { return consumer.Permanent(errors.New("bad")) })
		for i := range 10 {
			c.produce(&kgo.Record{Key: fmt.Appendf(nil, "k%d", i)})
		}
		r := c.start(h, consumer.WithRelay(false), consumer.WithRegisterer(reg), consumer.WithLogger(logs.logger()),
			consumer.WithDeadLetterHook(hook), consumer.WithDeadLetterHookQueue(2), consumer.WithGracePeriod(time.Second))
		waitFor(t, "ten dead letters", func() bool { return len(c.read(c.ladder.DLQ())) == 10 })
		waitFor(t, "every record committed", func() bool { return c.committed(testGroup, testTopic)[0] == 10 })
		m, _ := metrics.New(reg)
		// One call runs, two wait: seven dropped.
		if got := metricValue(t, m.DeadLetterHook.WithLabelValues(testTopic, metrics.HookDropped)); got != 7 {
			t.Errorf("dropped calls = %v, want 7", got)
		}
		if err := r.stop(); err != nil {
			t.Fatalf("Run: %v", err)
		}
		if n := len(started); n != 1 {
			t.Errorf("hook started %d times, want 1 (it never returns)", n)
		}
		if got := metricValue(t, m.DeadLetterHook.WithLabelValues(testTopic, metrics.HookDropped)); got != 9 {
			t.Errorf("dropped calls after Run = %v, want 9 (the two queued dropped at shutdown)", got)
		}
		if !strings.Contains(logs.String(), "did not return within the grace period") {
			t.Error("no log line for the hook that outlived Run")
		}
		close(release)
	})
}

// Exactly once: the hook is called after the transaction that wrote the
// dead letter committed, with the record's offset committed in it.
func TestDeadLetterHookExactlyOnce(t *testing.T) {
	c := newClusterOn(t, 1, 1, false)
	c.cfg.ExactlyOnce = true
	var mu sync.Mutex
	var committedAtCall []int64
	hook := func(ctx context.Context, rec *kgo.Record, _ headers.Reason, _ error) error {
		mu.Lock()
		defer mu.Unlock()
		committedAtCall = append(committedAtCall, c.committed(testGroup, testTopic)[0])
		return nil
	}
	h := consumer.HandlerFunc(func(context.Context, *kgo.Record) error { return consumer.Permanent(errors.New("bad")) })
	c.produce(&kgo.Record{Key: []byte("a")}, &kgo.Record{Key: []byte("b")})
	r := c.start(h, consumer.WithRelay(false), consumer.WithDeadLetterHook(hook))
	kafkatest.WaitFor(t, "two hook calls", 100*time.Millisecond, time.Minute, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(committedAtCall) == 2
	})
	if err := r.stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	for i, off := range committedAtCall {
		if off <= int64(i) {
			t.Errorf("call %d: the group's committed offset was %d, want > %d (called before the transaction committed)", i, off, i)
		}
	}
}

// The relay that Run runs calls the consumer's hook for its own dead
// letters too (here a tier record with unreadable kretry headers:
// invalid-metadata), with the tier record, and its calls and the
// consumer's are never concurrent.
func TestDeadLetterHookOfTheRelay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCluster(t, 1, 1)
		var mu sync.Mutex
		var calls []hookCall
		running, overlapped := 0, false
		hook := func(ctx context.Context, rec *kgo.Record, reason headers.Reason, err error) error {
			mu.Lock()
			running++
			overlapped = overlapped || running > 1
			calls = append(calls, hookCall{topic: rec.Topic, offset: rec.Offset, key: string(rec.Key), reason: reason, err: err.Error()})
			mu.Unlock()
			time.Sleep(time.Second) // a slow hook: a second call would overlap it
			mu.Lock()
			running--
			mu.Unlock()
			return nil
		}
		h := consumer.HandlerFunc(func(_ context.Context, r *kgo.Record) error {
			return consumer.Permanent(fmt.Errorf("bad %s", r.Key))
		})
		tier := c.ladder.Steps()[0].Topic
		md := history(1, "retry-1s")
		hs := headers.Encode(nil, md)
		for i, h := range hs {
			if h.Key == headers.HeaderDueAt {
				hs[i].Value = []byte("tomorrow")
			}
		}
		c.produce(&kgo.Record{Key: []byte("main")}, &kgo.Record{Topic: tier, Key: []byte("tier"), Headers: hs})
		r := c.start(h, consumer.WithDeadLetterHook(hook))
		waitFor(t, "two hook calls", func() bool { mu.Lock(); defer mu.Unlock(); return len(calls) == 2 && running == 0 })
		if err := r.stop(); err != nil {
			t.Fatalf("Run: %v", err)
		}
		if overlapped {
			t.Error("the consumer's and the relay's hook calls overlapped")
		}
		byKey := map[string]hookCall{}
		for _, call := range calls {
			byKey[call.key] = call
		}
		if got := byKey["main"]; got.topic != testTopic || got.reason != headers.ReasonPermanent || got.err != "bad main" {
			t.Errorf("the consumer's call: %+v", got)
		}
		if got := byKey["tier"]; got.topic != tier || got.offset != 0 || got.reason != headers.ReasonInvalidMetadata ||
			!strings.Contains(got.err, "unreadable kretry headers: kretry header kretry-due-at") {
			t.Errorf("the relay's call: %+v, want the tier record %s@0, invalid-metadata", got, tier)
		}
	})
}
