package healthtrack_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/kretry/kretry/internal/healthtrack"
)

// TestWritesPerPartition: a partition whose writes fail stays failing while
// another partition writes, until a write of its own succeeds or it is
// revoked; FailingSince is the oldest failure not cleared.
func TestWritesPerPartition(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tr := healthtrack.New("consumer", "g")
		tr.Start()
		tr.Assigned(context.Background(), nil, map[string][]int32{"orders": {0, 1, 2}})
		if s := tr.State(); !s.Joined || s.Partitions != 3 || !s.FailingSince.IsZero() {
			t.Fatalf("after the assignment: %+v", s)
		}
		first := time.Now()
		tr.Wrote("orders", 0, errors.New("timed out"))
		time.Sleep(time.Minute)
		tr.Wrote("orders", 1, errors.New("NOT_ENOUGH_REPLICAS"))
		tr.Wrote("orders", 2, nil)
		if s := tr.State(); !s.FailingSince.Equal(first) || s.LastFailure != "NOT_ENOUGH_REPLICAS" {
			t.Errorf("partitions 0 and 1 failing: %+v, want failing since %v", s, first)
		}
		tr.Wrote("orders", 0, nil)
		if s := tr.State(); !s.FailingSince.Equal(first.Add(time.Minute)) {
			t.Errorf("partition 1 failing: since %v, want %v", s.FailingSince, first.Add(time.Minute))
		}
		tr.Revoked(map[string][]int32{"orders": {1}})
		if s := tr.State(); !s.FailingSince.IsZero() || s.LastFailure != "" || s.Partitions != 2 || !s.Joined {
			t.Errorf("partition 1 revoked: %+v, want nothing failing, 2 partitions, joined", s)
		}
		tr.Wrote("orders", 2, errors.New("x"))
		tr.OnGroupManageError(errors.New("unable to dial"))
		tr.Lost()
		if s := tr.State(); s.Joined || s.Partitions != 0 || !s.FailingSince.IsZero() || s.GroupErr != "unable to dial" {
			t.Errorf("group lost: %+v", s)
		}
		tr.Assigned(context.Background(), nil, map[string][]int32{})
		if s := tr.State(); !s.Joined || s.Partitions != 0 || s.GroupErr != "" {
			t.Errorf("joined with an empty assignment: %+v, want joined, idle by assignment", s)
		}
		tr.Stop()
		if s := tr.State(); s.Running || s.Joined {
			t.Errorf("stopped: %+v", s)
		}
	})
}
