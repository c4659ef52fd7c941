package consumer_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

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
