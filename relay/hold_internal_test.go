package relay

import (
	"context"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/kretry/kretry/headers"
)

// A record that waits is held with its kretry header keys made the headers
// package's constants, the first record of its partition's wait as well as
// those after it, over polls that add to a hold: kgo's copies of the keys
// are freed while it waits (what the hold budget counts of it assumes so).
func TestHeldKeysInterned(t *testing.T) {
	f := newPollFixture(t, 2)
	due := time.Now().Add(5 * time.Second)
	for range 2 { // the second poll adds to the holds of the first
		f.s.handle(context.Background(), f.poll(50, due))
	}
	if len(f.s.held) != int(f.parts) {
		t.Fatalf("%d partitions hold, want %d", len(f.s.held), f.parts)
	}
	for tp, h := range f.s.held {
		if len(h.recs) != 100 {
			t.Fatalf("%v holds %d records, want 100", tp, len(h.recs))
		}
		for i, rec := range h.recs {
			kretryKeys := 0
			for _, hd := range rec.Headers {
				if !strings.HasPrefix(hd.Key, headers.HeaderPrefix) {
					continue
				}
				kretryKeys++
				if c := internKey(hd.Key); unsafe.StringData(c) != unsafe.StringData(hd.Key) {
					t.Fatalf("%v record %d: header %s is kgo's copy, not the headers package's constant", tp, i, hd.Key)
				}
			}
			if kretryKeys < 10 {
				t.Fatalf("%v record %d has %d kretry headers: the test shows nothing", tp, i, kretryKeys)
			}
		}
	}
}
