package consumer_test

import (
	"context"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/config"
	"github.com/kretry/kretry/consumer"
	"github.com/kretry/kretry/headers"
)

// Attempt and RecordMetadata count every call, in place and through the
// tiers: with retry_in_place {attempts 2} a record failing every call is
// called 1, 2, 3 in place, then 4, 5, 6 after retry-5s, then 7 after
// retry-1m; the in-place retries travel in kretry-in-place-retries.
func TestAttemptCountsInPlaceAndTiers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCluster(t, 1, 1)
		c.cfg.Topics[0].RetryInPlace = &config.RetryInPlace{Attempts: 2, Backoff: 100 * time.Millisecond}
		var mu sync.Mutex
		var got []consumer.Metadata
		var inPlace []int
		h := consumer.HandlerFunc(func(_ context.Context, r *kgo.Record) error {
			md := consumer.RecordMetadata(r)
			hmd, _, _ := headers.Decode(r.Headers)
			mu.Lock()
			defer mu.Unlock()
			if consumer.Attempt(r) != md.Attempt {
				t.Errorf("Attempt %d, RecordMetadata's %d", consumer.Attempt(r), md.Attempt)
			}
			got = append(got, md)
			inPlace = append(inPlace, hmd.InPlaceRetries)
			if len(got) >= 7 {
				return nil
			}
			return fmt.Errorf("call %d: %w", len(got), errTransient)
		})
		c.produce(&kgo.Record{Key: []byte("k")})
		r := c.start(h)
		waitFor(t, "the seventh call", func() bool { mu.Lock(); defer mu.Unlock(); return len(got) == 7 })
		if err := r.stop(); err != nil {
			t.Fatalf("Run: %v", err)
		}
		wantTier := []string{"", "", "", "retry-5s", "retry-5s", "retry-5s", "retry-1m"}
		wantHeader := []int{0, 0, 0, 2, 2, 2, 4}
		for i, md := range got {
			if md.Attempt != i+1 || md.Tier != wantTier[i] || inPlace[i] != wantHeader[i] {
				t.Errorf("call %d: Attempt %d tier %q kretry-in-place-retries %d; want %d, %q, %d", i+1, md.Attempt, md.Tier, inPlace[i], i+1, wantTier[i], wantHeader[i])
			}
			wantErr := ""
			if i > 0 {
				wantErr = fmt.Sprintf("call %d: %v", i, errTransient)
			}
			if md.LastError != wantErr || (i > 0) == md.FirstFailureAt.IsZero() || md.LastFailureAt.Before(md.FirstFailureAt) {
				t.Errorf("call %d: last error %q, failures %v..%v; want %q", i+1, md.LastError, md.FirstFailureAt, md.LastFailureAt, wantErr)
			}
			if i > 0 && !md.FirstFailureAt.Equal(got[1].FirstFailureAt) {
				t.Errorf("call %d: first failure %v, want %v", i+1, md.FirstFailureAt, got[1].FirstFailureAt)
			}
		}
	})
}

// Without kretry metadata (a record not from kretry, or a first call),
// Attempt is 1 and the rest is zero.
func TestAttemptOfAPlainRecord(t *testing.T) {
	if a := consumer.Attempt(&kgo.Record{}); a != 1 {
		t.Errorf("Attempt = %d, want 1", a)
	}
	if md := consumer.RecordMetadata(&kgo.Record{Context: context.Background()}); md != (consumer.Metadata{Attempt: 1}) {
		t.Errorf("RecordMetadata = %+v", md)
	}
}

// Re-fed records of the group go on with the run of handler calls timed
// together (handle), one clock read per run; a record that may not reach the
// handler (here another group's) ends it. Every call is counted once in
// kretry_handler_duration_seconds, with the exact sum (virtual time stands
// still while the worker works).
func TestHandlerDurationOverRetries(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCluster(t, 1, 1)
		reg := prometheus.NewRegistry()
		now := time.Now()
		refed := func(group string) []kgo.RecordHeader {
			return headers.Encode(nil, headers.Metadata{Group: group, Attempts: 1, Tier: "retry-5s", DueAt: now, OriginalTopic: testTopic,
				OriginalTimestamp: now, FirstFailureAt: now, LastFailureAt: now, Error: "boom"})
		}
		var recs []*kgo.Record
		calls := 0 // of the handler: the plain records and the group's retries
		for i := range 300 {
			r := &kgo.Record{Key: []byte("fast")}
			switch {
			case i%4 == 1:
				r.Headers = refed(testGroup)
			case i%40 == 2:
				r.Headers = refed("another-group") // skipped
			}
			if i == 121 || i == 201 { // retries, each before another group's
				r.Key = []byte("slow")
			}
			if r.Headers == nil || i%4 == 1 {
				calls++
			}
			recs = append(recs, r)
		}
		var handled atomic.Int64
		h := consumer.HandlerFunc(func(_ context.Context, r *kgo.Record) error {
			handled.Add(1)
			if string(r.Key) == "slow" {
				time.Sleep(3 * time.Millisecond)
			}
			return nil
		})
		// The worker's clock runs a minute before the records: a run timed
		// from the wrong start shows in the sum.
		c.produce(&kgo.Record{Key: []byte("first")})
		calls++
		r := c.start(h, consumer.WithRelay(false), consumer.WithRegisterer(reg))
		waitFor(t, "the first call", func() bool { return handled.Load() == 1 })
		time.Sleep(time.Minute)
		c.produce(recs...)
		waitFor(t, "every call", func() bool { return handled.Load() >= int64(calls) })
		waitFor(t, "every record committed", func() bool { return c.committed(testGroup, testTopic)[0] == int64(1+len(recs)) })
		if err := r.stop(); err != nil {
			t.Fatalf("Run: %v", err)
		}
		if n := handled.Load(); n != int64(calls) {
			t.Fatalf("%d handler calls, want %d", n, calls)
		}
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, mf := range mfs {
			if mf.GetName() != "kretry_handler_duration_seconds" {
				continue
			}
			found = true
			hist := mf.GetMetric()[0].GetHistogram()
			if got := hist.GetSampleCount(); got != uint64(calls) {
				t.Errorf("count = %d, want the %d calls", got, calls)
			}
			if sum := hist.GetSampleSum(); math.Abs(sum-0.006) > 1e-9 {
				t.Errorf("sum = %v s, want the slow calls' 2 × 3 ms", sum)
			}
			for _, b := range hist.GetBucket() {
				want := uint64(calls - 2)
				if b.GetUpperBound() >= 0.003 {
					want = uint64(calls)
				}
				if b.GetCumulativeCount() != want {
					t.Errorf("bucket le=%v: %d, want %d", b.GetUpperBound(), b.GetCumulativeCount(), want)
				}
			}
		}
		if !found {
			t.Error("no kretry_handler_duration_seconds")
		}
	})
}
