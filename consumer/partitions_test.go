package consumer_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/consumer"
)

// A tier and a DLQ raised from 3 to 6 partitions while the consumer runs, as
// "kretry topics apply" does after the main topic was raised, get the
// records of main partitions 4 and 5 at partitions 4 and 5, without a
// restart; before the raise, at 4 and 5 mod 3.
func TestForwardsFollowRaisedPartitions(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCluster(t, 6, 3)
		h := consumer.HandlerFunc(func(_ context.Context, r *kgo.Record) error {
			if strings.HasPrefix(string(r.Key), "dlq-") {
				return consumer.Permanent(errors.New("unknown customer"))
			}
			return errTransient
		})
		tier, dlq := c.ladder.Steps()[0].Topic, c.ladder.DLQ()
		arrived := func(n int) func() bool {
			return func() bool { return len(c.read(tier)) == n && len(c.read(dlq)) == n }
		}

		r := c.start(h, consumer.WithRelay(false))
		c.produce(&kgo.Record{Partition: 5, Key: []byte("tier-before")}, &kgo.Record{Partition: 4, Key: []byte("dlq-before")})
		waitFor(t, "the forwards before the raise", arrived(1))

		for _, topic := range []string{tier, dlq} {
			resp, err := c.adm.UpdatePartitions(context.Background(), 6, topic)
			if err == nil {
				err = resp.Error()
			}
			if err != nil {
				t.Fatalf("raising %s to 6 partitions: %v", topic, err)
			}
		}
		// The forwards before the raise had the counts read; the next read
		// is due this long after.
		time.Sleep(consumer.PartitionRefreshEvery)
		start := time.Now()
		c.produce(&kgo.Record{Partition: 5, Key: []byte("tier-after")}, &kgo.Record{Partition: 4, Key: []byte("dlq-after")})
		waitFor(t, "the forwards after the raise", arrived(2))
		// Not failed and produced again: the producer knows the new
		// partitions.
		// Virtual time. On a loaded machine this once took 5.05s (the
		// cause not found); a producer that never learned of the new
		// partitions waits for its metadata max age, 5m.
		if took := time.Since(start); took > time.Minute {
			t.Errorf("the forwards after the raise took %v, want well under kgo's metadata max age (5m)", took)
		}
		if err := r.stop(); err != nil {
			t.Fatalf("Run: %v", err)
		}

		// By partition, then offset.
		for _, tc := range []struct {
			topic string
			keys  []string
			parts []int32
		}{
			{tier, []string{"tier-before", "tier-after"}, []int32{2, 5}},
			{dlq, []string{"dlq-before", "dlq-after"}, []int32{1, 4}},
		} {
			for i, got := range c.read(tc.topic) {
				if string(got.Key) != tc.keys[i] || got.Partition != tc.parts[i] {
					t.Errorf("forwarded %q to %s[%d], want %q at partition %d", got.Key, tc.topic, got.Partition, tc.keys[i], tc.parts[i])
				}
			}
		}
	})
}
