package consumer_test

import (
	"context"
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/consumer"
	"github.com/kretry/kretry/headers"
)

// RetryAfter picks the first tier that waits at least d (the last when none
// does), due at the failure + d, also past the last tier's delay (the relay
// re-parks the record until then), counting as an attempt of that tier; it never moves a record back up the ladder, and a
// used-up ladder still ends in the DLQ. Ladder: 5s, 1m, 10m ×2.
func TestRetryAfterPicksTheTierAndDueTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCluster(t, 2, 2)
		var seen deliveries
		// Per delivery of "k": the handler's Retry-After, and where the
		// next delivery must come from (tier, kretry-attempts, wait).
		steps := []struct {
			after    time.Duration
			tier     string
			attempts int
			wait     time.Duration
		}{
			{30 * time.Second, "retry-1m", 2, 30 * time.Second}, // jumps over retry-5s
			{time.Hour, "retry-10m", 3, time.Hour},              // past the last tier: kept, re-parked 5 times
			{time.Second, "retry-10m", 4, time.Second},          // not back up to retry-5s
			{time.Second, "", 5, 0},                             // ladder used up: DLQ
		}
		h := consumer.HandlerFunc(func(_ context.Context, r *kgo.Record) error {
			n := seen.add(t, r)
			if string(r.Key) == "short" {
				if n == 1 {
					return consumer.RetryAfter(errTransient, 2*time.Second)
				}
				return nil
			}
			return consumer.RetryAfter(fmt.Errorf("call %d: %w", n, errTransient), steps[n-1].after)
		})
		c.produce(&kgo.Record{Partition: 0, Key: []byte("k")}, &kgo.Record{Partition: 1, Key: []byte("short")})
		r := c.start(h)
		waitFor(t, "the DLQ record", func() bool { return len(c.read(c.ladder.DLQ())) == 1 })
		waitFor(t, "the second call of short", func() bool { return len(seen.get("short")) == 2 })
		if err := r.stop(); err != nil {
			t.Fatalf("Run: %v", err)
		}

		got := seen.get("k")
		if len(got) != 4 {
			t.Fatalf("k handled %d times, want 4", len(got))
		}
		for i, d := range got[1:] {
			want := steps[i]
			if d.md.Tier != want.tier || d.md.Attempts != want.attempts {
				t.Errorf("delivery %d: tier %q attempts %d, want %q and %d", i+2, d.md.Tier, d.md.Attempts, want.tier, want.attempts)
			}
			if due := d.md.LastFailureAt.Add(want.wait); !d.md.DueAt.Equal(due) {
				t.Errorf("delivery %d: kretry-due-at %v, want the failure %v + %v", i+2, d.md.DueAt, d.md.LastFailureAt, want.wait)
			}
			if waited := d.at.Sub(got[i].at); waited < want.wait || d.at.Before(d.md.DueAt) {
				t.Errorf("delivery %d came %v after the failure, before its Retry-After %v (due %v)", i+2, waited, want.wait, d.md.DueAt)
			}
		}
		dlq, err := headersOf(c.read(c.ladder.DLQ())[0])
		if err != nil {
			t.Fatal(err)
		}
		if dlq.Reason != headers.ReasonExhausted || dlq.Attempts != 5 || dlq.Tier != "retry-10m" {
			t.Errorf("DLQ record: reason %s attempts %d tier %s, want exhausted, 5, retry-10m", dlq.Reason, dlq.Attempts, dlq.Tier)
		}

		short := seen.get("short")
		if md := short[1].md; md.Tier != "retry-5s" || md.Attempts != 1 || !md.DueAt.Equal(md.LastFailureAt.Add(2*time.Second)) {
			t.Errorf("short: tier %q attempts %d due %v after its failure, want retry-5s, 1, 2s", md.Tier, md.Attempts, md.DueAt.Sub(md.LastFailureAt))
		}
		if waited := short[1].at.Sub(short[0].at); waited < 2*time.Second {
			t.Errorf("short re-fed %v after its failure, before its Retry-After 2s", waited)
		}
	})
}

// A RetryAfter longer than the topic's retry_after_max waits
// retry_after_max: the consumer stamps the failure + retry_after_max.
func TestRetryAfterCutToRetryAfterMax(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := newConfig()
		cfg.Topics[0].RetryAfterMax = 30 * time.Minute
		c := newClusterWith(t, cfg, 1, 1)
		var seen deliveries
		h := consumer.HandlerFunc(func(_ context.Context, r *kgo.Record) error {
			if seen.add(t, r) == 1 {
				return consumer.RetryAfter(errTransient, 2*time.Hour)
			}
			return nil
		})
		c.produce(&kgo.Record{Key: []byte("k")})
		r := c.start(h)
		waitFor(t, "the second call", func() bool { return len(seen.get("k")) == 2 })
		if err := r.stop(); err != nil {
			t.Fatalf("Run: %v", err)
		}
		got := seen.get("k")
		md := got[1].md
		if md.Tier != "retry-10m" || !md.DueAt.Equal(md.LastFailureAt.Add(30*time.Minute)) {
			t.Errorf("tier %q due %v after the failure, want retry-10m and retry_after_max 30m", md.Tier, md.DueAt.Sub(md.LastFailureAt))
		}
		if waited := got[1].at.Sub(got[0].at); waited < 30*time.Minute || waited > 31*time.Minute {
			t.Errorf("re-fed %v after the failure, want retry_after_max 30m", waited)
		}
	})
}

func headersOf(r *kgo.Record) (headers.Metadata, error) {
	md, _, err := headers.Decode(r.Headers)
	return md, err
}

// RetryAfter keeps err for errors.Is and errors.As and its text, and the
// classifier still decides: a permanent error wrapped in RetryAfter is
// dead-lettered.
func TestRetryAfterWrapsErr(t *testing.T) {
	if consumer.RetryAfter(nil, time.Second) != nil {
		t.Error("RetryAfter(nil) is not nil")
	}
	err := consumer.RetryAfter(consumer.Permanent(errTransient), time.Second)
	if err.Error() != errTransient.Error() {
		t.Errorf("text %q, want %q", err, errTransient)
	}
	if consumer.DefaultClassifier(err) != consumer.DeadLetter {
		t.Error("a permanent error in RetryAfter is not dead-lettered by DefaultClassifier")
	}
}
