package relay_test

import (
	"fmt"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/headers"
	"github.com/kretry/kretry/relay"
)

// A re-feed's record is reused for later re-feeds once acknowledged: what
// the main topic holds is still each tier record re-fed as it was (key,
// value, user headers, kretry metadata), over polls that reuse them.
func TestRelayRecycledRefeedsKeepWhatWasProduced(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newVirtualEnv(t, 4, 4)
		r := e.start()
		const batches, per = 6, 250
		want := map[string]*kgo.Record{}
		mds := map[string]headers.Metadata{}
		for b := range batches {
			due := time.Now().Add(-time.Second)
			recs := make([]*kgo.Record, 0, per)
			for i := range per {
				key := fmt.Sprintf("k%d-%d", b, i)
				user := hdr("trace", strings.Repeat("t", (b*per+i)%70), fmt.Sprintf("u%d", i%3), key)
				rec, md := e.tierRecord(0, int32(i%4), key, due, user...)
				mds[key] = md
				rec.Value = []byte(strings.Repeat(key, 1+i%9))
				recs = append(recs, rec)
				want[key] = rec
			}
			e.produce(recs...)
			waitFor(t, fmt.Sprintf("batch %d re-fed", b), func() bool { return len(e.read(relayTopic)) == (b+1)*per })
		}
		if !relay.RecycledRefeeds(r.relay) {
			t.Fatal("no re-feed was recycled: the test shows nothing")
		}
		if err := r.stop(); err != nil {
			t.Fatalf("Run: %v", err)
		}
		got := e.read(relayTopic)
		seen := map[string]bool{}
		for _, g := range got {
			w := want[string(g.Key)]
			if w == nil || seen[string(g.Key)] {
				t.Fatalf("re-fed key %q: unknown or twice", g.Key)
			}
			seen[string(g.Key)] = true
			checkRefed(t, g, w, mds[string(g.Key)], 4)
		}
		if len(seen) != batches*per {
			t.Fatalf("%d records re-fed, want %d", len(seen), batches*per)
		}
	})
}
