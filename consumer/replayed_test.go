package consumer_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/consumer"
	"github.com/kretry/kretry/headers"
)

// A record replayed from the DLQ carries the group that failed it, its
// first delivery and kretry-replays, and no attempt: that group handles it
// as a new first delivery (max_age counts from the replay), and when it
// fails again its first delivery is kept; another group commits past it.
func TestReplayedRecordGoesBackToItsGroup(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCluster(t, 1, 1)
		c.cfg.Topics[0].MaxAge = time.Hour
		var calls counter
		h := consumer.HandlerFunc(func(_ context.Context, r *kgo.Record) error {
			calls.add(r.Key)
			return consumer.Permanent(errors.New("still failing"))
		})
		now := time.Now()
		first := now.Add(-2 * time.Hour).Truncate(time.Millisecond)
		replayed := func(group string) []kgo.RecordHeader {
			return headers.Encode(nil, headers.Metadata{Group: group, OriginalTopic: testTopic, OriginalPartition: 0,
				OriginalOffset: 7, OriginalTimestamp: first, Replays: 1})
		}
		c.produce(
			&kgo.Record{Key: []byte("theirs"), Timestamp: now, Headers: replayed("another-group")},
			&kgo.Record{Key: []byte("mine"), Timestamp: now, Headers: replayed(testGroup)},
		)
		r := c.start(h, consumer.WithRelay(false))
		waitFor(t, "the DLQ record", func() bool { return len(c.read(c.ladder.DLQ())) == 1 })
		waitFor(t, "the commit past both", func() bool { return c.committed(testGroup, testTopic)[0] == 2 })
		if err := r.stop(); err != nil {
			t.Fatalf("Run: %v", err)
		}
		if calls.get("theirs") != 0 || calls.get("mine") != 1 {
			t.Errorf("handler ran %d times for another group's replay, %d for its own; want 0 and 1", calls.get("theirs"), calls.get("mine"))
		}
		md, ok, err := headers.Decode(c.read(c.ladder.DLQ())[0].Headers)
		if err != nil || !ok || md.Reason != headers.ReasonPermanent || md.Group != testGroup || md.Attempts != 1 || md.Replays != 1 ||
			md.OriginalOffset != 7 || !md.OriginalTimestamp.Equal(first) || md.FirstFailureAt.Before(now) {
			t.Errorf("DLQ record: %+v %v %v; want permanent, attempts 1, replays 1, the first delivery kept, failures from now", md, ok, err)
		}
	})
}
