package relay

import (
	"testing"
	"time"

	"github.com/kretry/kretry/internal/partitions"
	"github.com/kretry/kretry/ladder"
)

// PartitionRefreshEvery is how often a Run reads a topic's partition count
// again, at most.
const PartitionRefreshEvery = partitions.RefreshEvery

// FencedError is the error of an exactly-once relay for svc's ladder, with
// instance id pod-0, whose transactional id was fenced with err.
func FencedError(t *testing.T, err error) error {
	l, lerr := ladder.New("orders", "svc", []ladder.Tier{{Delay: time.Second}})
	if lerr != nil {
		t.Fatal(lerr)
	}
	r, rerr := New([]*ladder.Ladder{l}, WithExactlyOnce(true), WithInstanceID("pod-0"))
	if rerr != nil {
		t.Fatal(rerr)
	}
	return r.fencedError(err)
}

// RecycledRefeeds reports whether r has a re-feed recycled for reuse.
func RecycledRefeeds(r *Relay) bool {
	r.refeeds.mu.Lock()
	defer r.refeeds.mu.Unlock()
	return len(r.refeeds.list) > 0
}
