package headers_test

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/headers"
)

var (
	t0  = time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
	t1  = t0.Add(time.Minute)
	now = t0.Add(time.Hour)
	// rec is the record that failed: a first delivery, a retry re-fed to
	// its main topic or a replay, as its metadata says.
	rec = &kgo.Record{Topic: "orders", Partition: 3, Offset: 42, Timestamp: t1}
)

// retried is the metadata of a record on its second attempt.
var retried = headers.Metadata{
	Group: "g", Attempts: 1, Tier: "retry-5s", DueAt: t1.Add(5 * time.Second),
	OriginalTopic: "orders", OriginalPartition: 1, OriginalOffset: 7, OriginalTimestamp: t0,
	FirstFailureAt: t1, LastFailureAt: t1, Error: "first", Replays: 2,
}

func TestMetadataFailed(t *testing.T) {
	for _, tc := range []struct {
		name string
		md   headers.Metadata
		want headers.Metadata
	}{
		{"a first delivery: rec is its first delivery, now its first failure", headers.Metadata{},
			headers.Metadata{Group: "g", Attempts: 1, OriginalTopic: "orders", OriginalPartition: 3, OriginalOffset: 42, OriginalTimestamp: t1,
				FirstFailureAt: now, LastFailureAt: now, Error: "boom"}},
		{"a retry keeps its first delivery and first failure; tier and due time are cleared", retried,
			headers.Metadata{Group: "g", Attempts: 2, OriginalTopic: "orders", OriginalPartition: 1, OriginalOffset: 7, OriginalTimestamp: t0,
				FirstFailureAt: t1, LastFailureAt: now, Error: "boom", Replays: 2}},
		{"a replay to its group keeps its first delivery; its failures start again",
			headers.Metadata{Group: "g", OriginalTopic: "orders", OriginalPartition: 1, OriginalOffset: 7, OriginalTimestamp: t0, Replays: 1},
			headers.Metadata{Group: "g", Attempts: 1, OriginalTopic: "orders", OriginalPartition: 1, OriginalOffset: 7, OriginalTimestamp: t0,
				FirstFailureAt: now, LastFailureAt: now, Error: "boom", Replays: 1}},
		{"a replay elsewhere is a first delivery", headers.Metadata{Replays: 1},
			headers.Metadata{Group: "g", Attempts: 1, OriginalTopic: "orders", OriginalPartition: 3, OriginalOffset: 42, OriginalTimestamp: t1,
				FirstFailureAt: now, LastFailureAt: now, Error: "boom", Replays: 1}},
		{"the count saturates", headers.Metadata{Group: "g", Attempts: headers.MaxAttempts, OriginalTopic: "orders", FirstFailureAt: t1},
			headers.Metadata{Group: "g", Attempts: headers.MaxAttempts, OriginalTopic: "orders",
				FirstFailureAt: t1, LastFailureAt: now, Error: "boom"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.md.Failed("g", rec, now, "boom"); got != tc.want {
				t.Errorf("Failed:\n got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestMetadataInTier(t *testing.T) {
	failed := retried.Failed("g", rec, now, "boom")
	want := failed
	want.Tier, want.DueAt = "retry-1m", now.Add(time.Minute)
	if got := failed.InTier("retry-1m", now.Add(time.Minute)); got != want {
		t.Errorf("to a tier:\n got %+v\nwant %+v", got, want)
	}
	// A re-feed: only the tier it leaves and its due time change.
	want = retried
	want.DueAt = t1.Add(6 * time.Second)
	if got := retried.InTier("retry-5s", t1.Add(6*time.Second)); got != want {
		t.Errorf("re-fed:\n got %+v\nwant %+v", got, want)
	}
}

func TestMetadataDeadLettered(t *testing.T) {
	failed := retried.Failed("g", rec, now, "boom")
	want := failed
	want.Reason, want.Tier, want.DueAt = headers.ReasonExhausted, "retry-5s", now
	if got := failed.DeadLettered(headers.ReasonExhausted, "retry-5s", now); got != want {
		t.Errorf("DeadLettered:\n got %+v\nwant %+v", got, want)
	}
}

func TestMetadataReplayed(t *testing.T) {
	dead := retried.Failed("g", rec, now, "boom").DeadLettered(headers.ReasonExhausted, "retry-5s", now)
	noTime := dead
	noTime.OriginalTimestamp = time.Time{}
	for _, tc := range []struct {
		name string
		md   headers.Metadata
		home bool
		want headers.Metadata
	}{
		{"home: its group's, with its first delivery", dead, true,
			headers.Metadata{Group: "g", OriginalTopic: "orders", OriginalPartition: 1, OriginalOffset: 7, OriginalTimestamp: t0, Replays: 3}},
		{"home without the first delivery's time: its group's only", noTime, true, headers.Metadata{Group: "g", Replays: 3}},
		{"elsewhere: a first delivery", dead, false, headers.Metadata{Replays: 3}},
		{"home without a group: a first delivery", headers.Metadata{OriginalTopic: "orders", OriginalTimestamp: t0}, true, headers.Metadata{Replays: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.md.Replayed(tc.home); got != tc.want {
				t.Errorf("Replayed:\n got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}
