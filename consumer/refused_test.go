package consumer_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"testing/synctest"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/consumer"
	"github.com/kretry/kretry/retrytopics"
)

// A forward that no retry can mend (here: larger than the producer accepts,
// because the 1 KiB error text pushes the record past the limit) goes to the
// DLQ with a short error instead of blocking its partition for good.
func TestRefusedForwardIsDeadLettered(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCluster(t, 1, 1)
		longErr := errors.New(strings.Repeat("e", 1000))
		h := consumer.HandlerFunc(func(_ context.Context, r *kgo.Record) error {
			if string(r.Key) == "big" {
				return longErr
			}
			return nil
		})
		c.produce(&kgo.Record{Key: []byte("big"), Value: bytes.Repeat([]byte("x"), 999_000)},
			&kgo.Record{Key: []byte("small"), Value: []byte("v")})
		r := c.start(h, consumer.WithRelay(false))
		waitFor(t, "the big record in the DLQ", func() bool { return len(c.read(c.ladder.DLQ())) == 1 })
		if err := r.stop(); err != nil {
			t.Fatalf("Run: %v", err)
		}
		if got := c.committed(testGroup, testTopic)[0]; got != 2 {
			t.Errorf("committed offset %d, want 2: past the dead-lettered record and the one behind it", got)
		}
		if n := len(c.read(c.ladder.Steps()[0].Topic)); n != 0 {
			t.Errorf("%d records in the tier, want 0: the forward there was refused", n)
		}
		dlq := c.read(c.ladder.DLQ())
		if len(dlq) != 1 || string(dlq[0].Key) != "big" || len(dlq[0].Value) != 999_000 {
			t.Fatalf("DLQ holds %d records, want the big one", len(dlq))
		}
		md, _, err := retrytopics.Decode(dlq[0].Headers)
		if err != nil {
			t.Fatal(err)
		}
		if md.Reason != retrytopics.ReasonPermanent || !strings.Contains(md.Error, "refused") || !strings.Contains(md.Error, "MESSAGE_TOO_LARGE") {
			t.Errorf("DLQ record: reason %q, error %q; want permanent and the refusal", md.Reason, md.Error)
		}
	})
}

// A record that neither its tier nor the DLQ accepts stops Run with an error
// that names it, and stays uncommitted: never lost, never spinning silently.
func TestRefusedEverywhereStopsRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCluster(t, 1, 1)
		h := consumer.HandlerFunc(func(_ context.Context, r *kgo.Record) error {
			if string(r.Key) == "huge" {
				return errors.New("boom")
			}
			return nil
		})
		c.produce(&kgo.Record{Key: []byte("huge"), Value: bytes.Repeat([]byte("x"), 999_800)},
			&kgo.Record{Key: []byte("small"), Value: []byte("v")})
		r := c.start(h, consumer.WithRelay(false))
		waitFor(t, "Run to stop on its own", func() bool { return len(r.errc) == 1 })
		err := r.stop()
		if err == nil || !strings.Contains(err.Error(), "orders/0@0 cannot be written to the DLQ") {
			t.Fatalf("Run returned %v, want the error that names orders/0@0", err)
		}
		// The group may be gone (nothing was ever committed): no offset then.
		if os, err := c.adm.FetchOffsets(context.Background(), testGroup); err == nil {
			if o, ok := os.Lookup(testTopic, 0); ok && o.Err == nil && o.At > 0 {
				t.Errorf("committed offset %d, want none: the refused record must stay uncommitted", o.At)
			}
		}
		if n := len(c.read(c.ladder.DLQ())) + len(c.read(c.ladder.Steps()[0].Topic)); n != 0 {
			t.Errorf("%d records written, want 0", n)
		}
	})
}
