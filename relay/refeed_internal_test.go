package relay

import (
	"runtime/debug"
	"testing"
)

// Re-feeds settled beyond what the free list keeps (a burst, after bound
// waited) are not dropped: they spill to a pool that take draws on once the
// list is empty, until the GC empties it.
func TestFreeRefeedsSpill(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(-1)) // no GC empties the pool meanwhile
	var l freeRefeeds
	given := make([]*refeed, refeedsKept+100)
	seen := map[*refeed]bool{}
	for i := range given {
		given[i] = &refeed{}
		seen[given[i]] = true
	}
	l.give(append([]*refeed(nil), given...))
	if len(l.list) != refeedsKept {
		t.Fatalf("the list keeps %d re-feeds, want %d", len(l.list), refeedsKept)
	}
	// All of the spill comes back, but under the race detector sync.Pool
	// drops a quarter of what it is given, at random: some must come back.
	got := l.take(nil, len(given)+10)
	if len(got) <= refeedsKept || len(got) > len(given) {
		t.Fatalf("took back %d re-feeds of %d given (%d kept in the list): want more than the list kept, and no more than were given", len(got), len(given), refeedsKept)
	}
	for _, f := range got {
		if !seen[f] {
			t.Fatal("took a re-feed never given, or one twice")
		}
		delete(seen, f)
	}
}
