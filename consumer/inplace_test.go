package consumer_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/config"
	"github.com/kretry/kretry/consumer"
	"github.com/kretry/kretry/headers"
)

// retry_in_place {attempts 3, backoff 100ms, max_backoff 150ms}: a blip is
// handled in place without a hop; a record that keeps failing is called 4
// times (waits 100ms, 150ms, 150ms) and then forwarded to the first tier as
// its first failure; a permanent error and a RetryAfter longer than the next
// wait skip the in-place retries; a shorter RetryAfter waits the backoff.
func TestRetryInPlace(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCluster(t, 5, 5)
		c.cfg.Topics[0].RetryInPlace = &config.RetryInPlace{Attempts: 3, Backoff: 100 * time.Millisecond, MaxBackoff: 150 * time.Millisecond}
		var seen deliveries
		h := consumer.HandlerFunc(func(_ context.Context, r *kgo.Record) error {
			n := seen.add(t, r)
			switch string(r.Key) {
			case "blip":
				if n <= 2 {
					return errTransient
				}
			case "down":
				return errTransient
			case "perm":
				return consumer.Permanent(errTransient)
			case "after-long":
				if n == 1 {
					return consumer.RetryAfter(errTransient, 10*time.Second)
				}
			case "after-short":
				if n == 1 {
					return consumer.RetryAfter(errTransient, 50*time.Millisecond)
				}
			}
			return nil
		})
		for i, k := range []string{"blip", "down", "perm", "after-long", "after-short"} {
			c.produce(&kgo.Record{Partition: int32(i), Key: []byte(k)})
		}
		r := c.start(h)
		waitFor(t, "down re-fed from retry-5s", func() bool { return len(seen.get("down")) >= 5 })
		waitFor(t, "after-long re-fed", func() bool { return len(seen.get("after-long")) == 2 })
		waitFor(t, "the DLQ record", func() bool { return len(c.read(c.ladder.DLQ())) == 1 })
		if err := r.stop(); err != nil {
			t.Fatalf("Run: %v", err)
		}

		gaps := func(key string, n int) []time.Duration {
			got := seen.get(key)
			var out []time.Duration
			for i := 1; i < n && i < len(got); i++ {
				out = append(out, got[i].at.Sub(got[i-1].at))
			}
			return out
		}
		if got := seen.get("blip"); len(got) != 3 || got[2].md.Group != "" {
			t.Errorf("blip: %d calls, the last with kretry headers %+v; want 3 in place", len(got), got[len(got)-1].md)
		}
		if g := gaps("blip", 3); len(g) != 2 || g[0] != 100*time.Millisecond || g[1] != 150*time.Millisecond {
			t.Errorf("blip: waits %v, want [100ms 150ms]", g)
		}
		down := seen.get("down")
		for i := range 4 {
			if down[i].md.Group != "" {
				t.Errorf("down: call %d has kretry headers: not in place", i+1)
			}
		}
		if g := gaps("down", 4); len(g) != 3 || g[0] != 100*time.Millisecond || g[1] != 150*time.Millisecond || g[2] != 150*time.Millisecond {
			t.Errorf("down: in-place waits %v, want [100ms 150ms 150ms]", g)
		}
		if md := down[4].md; md.Tier != "retry-5s" || md.Attempts != 1 || down[4].at.Sub(down[3].at) < 5*time.Second {
			t.Errorf("down: call 5 from %q attempts %d after %v; want retry-5s, 1, ≥ 5s", md.Tier, md.Attempts, down[4].at.Sub(down[3].at))
		}
		if n := len(seen.get("perm")); n != 1 {
			t.Errorf("perm: %d calls, want 1: a permanent error skips in-place retries", n)
		}
		dlq, err := headersOf(c.read(c.ladder.DLQ())[0])
		if err != nil || dlq.Reason != headers.ReasonPermanent {
			t.Errorf("DLQ: %+v %v", dlq, err)
		}
		if got := seen.get("after-long"); got[1].md.Tier != "retry-1m" {
			t.Errorf("after-long: second call from %q, want retry-1m, no in-place retry", got[1].md.Tier)
		}
		if got := seen.get("after-short"); len(got) != 2 || got[1].md.Group != "" || got[1].at.Sub(got[0].at) != 100*time.Millisecond {
			t.Errorf("after-short: %d calls, want 2, the second in place after the 100ms backoff (≥ its 50ms)", len(got))
		}
	})
}

// A shutdown during an in-place wait ends it at once: the record is neither
// forwarded nor committed, and the next run handles it again.
func TestRetryInPlaceStoppedLeavesTheRecord(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCluster(t, 1, 1)
		c.cfg.Topics[0].RetryInPlace = &config.RetryInPlace{Attempts: 2, Backoff: 10 * time.Second, MaxBackoff: 10 * time.Second}
		var calls counter
		h := consumer.HandlerFunc(func(_ context.Context, r *kgo.Record) error {
			calls.add(r.Key)
			return errTransient
		})
		c.produce(&kgo.Record{Key: []byte("k")})
		r := c.start(h)
		waitFor(t, "the first call", func() bool { return calls.get("k") == 1 })
		time.Sleep(time.Second)
		stopAt := time.Now()
		if err := r.stop(); err != nil {
			t.Fatalf("Run: %v", err)
		}
		if took := time.Since(stopAt); took >= 9*time.Second {
			t.Errorf("Run took %v to stop: the in-place wait was not cut short", took)
		}
		if calls.get("k") != 1 {
			t.Errorf("%d calls before the stop, want 1", calls.get("k"))
		}
		if n := len(c.read(c.ladder.Steps()[0].Topic)); n != 0 {
			t.Errorf("the first tier holds %d records: the stopped record was forwarded", n)
		}
		if off := c.committed(testGroup, testTopic)[0]; off != 0 {
			t.Errorf("committed offset %d, want 0: the record stays for redelivery", off)
		}
		r2 := c.start(h)
		waitFor(t, "the call of the next run", func() bool { return calls.get("k") >= 2 })
		if err := r2.stop(); err != nil && !errors.Is(err, context.Canceled) {
			t.Fatalf("Run: %v", err)
		}
	})
}

// WithRetryInPlace is held to the rules of retry_in_place and names a topic
// of the config.
func TestWithRetryInPlaceChecked(t *testing.T) {
	h := consumer.HandlerFunc(func(context.Context, *kgo.Record) error { return nil })
	for _, c := range []struct {
		topic string
		r     config.RetryInPlace
		want  string
	}{
		{"payments", config.RetryInPlace{Attempts: 1}, `WithRetryInPlace("payments"): not a topic of the config`},
		{testTopic, config.RetryInPlace{Attempts: 40, Backoff: time.Second}, "retry_in_place: its waits take up to 40s together"},
	} {
		_, err := consumer.New(newConfig(), h, consumer.WithRetryInPlace(c.topic, c.r))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("WithRetryInPlace(%s, %+v): %v, want ...%s...", c.topic, c.r, err, c.want)
		}
	}
	if _, err := consumer.New(newConfig(), h, consumer.WithRetryInPlace(testTopic, config.RetryInPlace{Attempts: 3})); err != nil {
		t.Errorf("WithRetryInPlace with 3 attempts at the defaults: %v", err)
	}
}

// A record whose in-place retry returns nil but whose output is refused
// fails then, not at the in-place failure before it: kretry-last-failure-at
// is the output's failure, and kretry-due-at is the tier's delay after it.
func TestOutputRefusedAfterInPlaceRetryFailsThen(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCluster(t, 1, 1)
		c.cfg.Topics[0].RetryInPlace = &config.RetryInPlace{Attempts: 1, Backoff: time.Second, MaxBackoff: time.Second}
		const out = "orders.out"
		if _, err := c.adm.CreateTopics(context.Background(), 1, 1, nil, out); err != nil {
			t.Fatal(err)
		}
		var calls []time.Time // one partition: one call at a time
		h := consumer.HandlerFunc(func(ctx context.Context, r *kgo.Record) error {
			calls = append(calls, time.Now())
			if len(calls) == 1 {
				return errTransient
			}
			time.Sleep(2 * time.Second) // the output fails after the call's start
			// Larger than the producer takes for a topic it knows no limit of.
			return consumer.Emit(ctx, &kgo.Record{Topic: out, Value: make([]byte, 1_100_000)})
		})
		c.produce(&kgo.Record{Key: []byte("k")})
		r := c.start(h, consumer.WithRelay(false))
		tier := c.ladder.Steps()[0]
		waitFor(t, "the forward to the tier", func() bool { return len(c.read(tier.Topic)) == 1 })
		if err := r.stop(); err != nil {
			t.Fatalf("Run: %v", err)
		}
		md, err := headersOf(c.read(tier.Topic)[0])
		if err != nil {
			t.Fatal(err)
		}
		if len(calls) != 2 {
			t.Fatalf("%d calls before the forward, want 2 (one in place)", len(calls))
		}
		if want := calls[1].Add(2 * time.Second); md.LastFailureAt.Before(want.Truncate(time.Millisecond)) {
			t.Errorf("kretry-last-failure-at %v, before the output failed (%v): the in-place failure's (%v)", md.LastFailureAt, want, calls[0])
		}
		if md.DueAt != md.LastFailureAt.Add(tier.Delay) {
			t.Errorf("kretry-due-at %v, want %v after kretry-last-failure-at %v", md.DueAt, tier.Delay, md.LastFailureAt)
		}
		if !strings.Contains(md.Error, "output") {
			t.Errorf("kretry-error %q, want the output's failure", md.Error)
		}
	})
}
