package consumer_test

import (
	"context"
	"math"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/consumer"
	"github.com/kretry/kretry/headers"
)

// history is the kretry metadata of a record of testGroup that failed
// attempts times, the last time in tier, an hour ago.
func history(attempts int, tier string) headers.Metadata {
	first := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	return headers.Metadata{
		Group: testGroup, Attempts: attempts, Tier: tier, DueAt: first.Add(time.Minute),
		OriginalTopic: testTopic, OriginalPartition: 0, OriginalOffset: 7, OriginalTimestamp: first.Add(-time.Second),
		FirstFailureAt: first, LastFailureAt: first.Add(30 * time.Second), Error: "db down",
	}
}

// dlqMetadata returns the kretry metadata of the only DLQ record.
func (c *cluster) dlqMetadata() headers.Metadata {
	c.t.Helper()
	dlq := c.read(c.ladder.DLQ())
	if len(dlq) != 1 {
		c.t.Fatalf("DLQ holds %d records, want 1", len(dlq))
	}
	md, _, err := headers.Decode(dlq[0].Headers)
	if err != nil {
		c.t.Fatalf("the DLQ record's kretry headers: %v", err)
	}
	return md
}

// A record at the largest attempt count the header contract allows that
// fails again is dead-lettered with that count, which kretry's own readers
// accept, not one more (which they called invalid-metadata).
func TestAttemptsSaturate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCluster(t, 1, 1)
		c.produce(&kgo.Record{Key: []byte("k"), Headers: headers.Encode(nil, history(math.MaxInt32, "retry-10m"))})
		r := c.start(consumer.HandlerFunc(func(context.Context, *kgo.Record) error { return errTransient }),
			consumer.WithRelay(false))
		waitFor(t, "the DLQ record", func() bool { return len(c.read(c.ladder.DLQ())) == 1 })
		if err := r.stop(); err != nil {
			t.Fatalf("Run: %v", err)
		}
		md := c.dlqMetadata()
		if md.Attempts != math.MaxInt32 || md.Reason != headers.ReasonExhausted {
			t.Errorf("DLQ record: attempts %d, reason %q; want %d, exhausted", md.Attempts, md.Reason, math.MaxInt32)
		}
	})
}

// A kretry-tier that names no tier of the ladder (forged, here with
// terminal escapes) is never copied into the DLQ record, which says "dlq",
// nor into the logs.
func TestForgedTierIsNotCopied(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCluster(t, 1, 1)
		const forged = "\x1b[2J\x1b[31mretry-forged\r"
		c.produce(&kgo.Record{Key: []byte("k"), Headers: headers.Encode(nil, history(1, forged))})
		var logs logBuffer
		r := c.start(consumer.HandlerFunc(func(context.Context, *kgo.Record) error {
			return consumer.Permanent(errTransient)
		}), consumer.WithRelay(false), consumer.WithLogger(logs.logger()))
		waitFor(t, "the DLQ record", func() bool { return len(c.read(c.ladder.DLQ())) == 1 })
		if err := r.stop(); err != nil {
			t.Fatalf("Run: %v", err)
		}
		if md := c.dlqMetadata(); md.Tier != "dlq" {
			t.Errorf("the DLQ record's kretry-tier = %q, want dlq", md.Tier)
		}
		if l := logs.String(); strings.Contains(l, "\x1b") || strings.Contains(l, "retry-forged") {
			t.Errorf("the forged tier reached the logs:\n%q", l)
		}
	})
}

// A record expired on its way through the ladder keeps the cause of its
// failures in kretry-error, next to the expiry.
func TestExpiredKeepsTheLastError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCluster(t, 1, 1)
		c.cfg.Topics[0].MaxAge = 10 * time.Second // longer than the first tier, as consumer.New wants; the record is an hour old
		md := history(1, "retry-5s")
		md.Error = "db down\x1b[2J\r" + strings.Repeat("x", 2000)
		c.produce(&kgo.Record{Key: []byte("k"), Headers: headers.Encode(nil, md)})
		var logs logBuffer
		r := c.start(consumer.HandlerFunc(func(context.Context, *kgo.Record) error { return nil }),
			consumer.WithRelay(false), consumer.WithLogger(logs.logger()))
		waitFor(t, "the DLQ record", func() bool { return len(c.read(c.ladder.DLQ())) == 1 })
		if err := r.stop(); err != nil {
			t.Fatalf("Run: %v", err)
		}
		// Header text reaches the log quoted and cut.
		if l := logs.String(); strings.ContainsAny(l, "\x1b\r") || strings.Contains(l, strings.Repeat("x", 1000)) ||
			!strings.Contains(l, "last error: db down") {
			t.Errorf("the log line of the dead letter does not hold the last error quoted and cut:\n%q", l)
		}
		md = c.dlqMetadata()
		if md.Reason != headers.ReasonExpired || !strings.Contains(md.Error, "max_age 10s") ||
			!strings.Contains(md.Error, "last error: db down") {
			t.Errorf("DLQ record: reason %q, error %q; want expired, naming max_age and the last error", md.Reason, md.Error)
		}
	})
}

// A record whose next attempt would be due after its max_age goes to the
// DLQ as expired at once, with its error, instead of waiting a tier first.
func TestNextAttemptPastMaxAgeExpiresAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCluster(t, 1, 1)
		c.cfg.Topics[0].MaxAge = 30 * time.Second // 5s fits, 5s + 1m does not
		c.produce(&kgo.Record{Key: []byte("k")})
		var calls counter
		r := c.start(consumer.HandlerFunc(func(_ context.Context, r *kgo.Record) error {
			calls.add(r.Key)
			return errTransient
		}))
		waitFor(t, "the DLQ record", func() bool { return len(c.read(c.ladder.DLQ())) == 1 })
		if err := r.stop(); err != nil {
			t.Fatalf("Run: %v", err)
		}
		steps := c.ladder.Steps()
		if n := len(c.read(steps[0].Topic)); n != 1 {
			t.Errorf("%s holds %d records, want 1: the first retry is due within max_age", steps[0].Topic, n)
		}
		if n := len(c.read(steps[1].Topic)); n != 0 {
			t.Errorf("%s holds %d records, want 0: the second retry would be due after max_age", steps[1].Topic, n)
		}
		if n := calls.get("k"); n != 2 {
			t.Errorf("handled %d times, want 2", n)
		}
		md := c.dlqMetadata()
		if md.Reason != headers.ReasonExpired || md.Attempts != 2 || !strings.Contains(md.Error, "max_age 30s") ||
			!strings.Contains(md.Error, errTransient.Error()) || md.Tier != steps[0].Name {
			t.Errorf("DLQ record: reason %q, attempts %d, tier %q, error %q; want expired after 2 attempts from %s, naming max_age and the handler's error",
				md.Reason, md.Attempts, md.Tier, md.Error, steps[0].Name)
		}
	})
}
