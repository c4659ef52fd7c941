package relay

import (
	"context"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/twmb/franz-go/pkg/kgo"

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

// recordsSize is what recs hold in keys, values and headers: what the hold
// budget counts of them.
func recordsSize(recs []*kgo.Record) int {
	n := 0
	for _, r := range recs {
		n += len(r.Key) + len(r.Value)
		for _, h := range r.Headers {
			n += len(h.Key) + len(h.Value)
		}
	}
	return n
}

// What a partition holds counts the size of exactly the records it holds
// (the budget and kretry_held_bytes go by it), over polls that add to a
// hold, re-feed part of it, or re-feed all it held and start a new hold in
// one poll.
func TestHeldSize(t *testing.T) {
	f := newPollFixture(t, 2)
	ctx := context.Background()
	holds := 0
	check := func(step string) {
		t.Helper()
		total := 0
		for tp, h := range f.s.held {
			if want := recordsSize(h.recs); h.size != want {
				t.Fatalf("%s: %v holds %d records of %d bytes, counted as %d", step, tp, len(h.recs), want, h.size)
			}
			total += h.size
			holds++
		}
		if f.s.heldBytes != total {
			t.Fatalf("%s: the relay counts %d bytes held, its partitions hold %d", step, f.s.heldBytes, total)
		}
	}
	first := time.Now().Add(400 * time.Millisecond)
	f.s.handle(ctx, f.poll(20, first))
	check("held")
	f.s.handle(ctx, f.poll(30, time.Now().Add(3*time.Second)))
	check("added to the holds")
	time.Sleep(time.Until(first.Add(5 * time.Millisecond)))
	f.s.handle(ctx, nil)
	check("the first records re-fed")
	second := time.Now().Add(300 * time.Millisecond)
	f.s.handle(ctx, f.poll(10, second)) // due before the rest: held behind them
	check("added again")

	g := newPollFixture(t, 2)
	due := time.Now().Add(300 * time.Millisecond)
	g.s.handle(ctx, g.poll(20, due))
	time.Sleep(time.Until(due.Add(5 * time.Millisecond)))
	g.s.handle(ctx, g.poll(25, time.Now().Add(3*time.Second))) // re-feeds all it held, holds what it got
	f = g
	check("held anew")
	if holds == 0 {
		t.Fatal("nothing was held: the test shows nothing")
	}
}

// grow keeps a hold's elements in order whichever way it grows: in place,
// moved to the start of the hold's array (clearing the rest, so that no
// record re-fed stays reachable from it), or in a new array, which it also
// takes for a slice that does not lie at the end of the array it is given.
func TestGrow(t *testing.T) {
	ptrs := func(n int) []*int {
		out := make([]*int, n)
		for i := range out {
			out[i] = new(int)
			*out[i] = i
		}
		return out
	}
	for _, tc := range []struct {
		name    string
		arr     func() ([]*int, []*int) // the array and s in it
		n       int
		sameArr bool // grows in arr
	}{
		{"in place", func() ([]*int, []*int) { a := ptrs(10); return a, a[6:8] }, 2, true},
		{"moved to the start", func() ([]*int, []*int) { a := ptrs(10); return a, a[8:] }, 3, true},
		{"no room twice over", func() ([]*int, []*int) { a := ptrs(10); return a, a[4:] }, 4, false},
		{"not at the end of arr", func() ([]*int, []*int) { a := ptrs(10); return a, append([]*int(nil), a[8:]...) }, 3, false},
		{"no arr", func() ([]*int, []*int) { return nil, ptrs(3) }, 2, false},
		{"nothing", func() ([]*int, []*int) { return nil, nil }, 4, false},
	} {
		arr, s := tc.arr()
		want := append([]*int(nil), s...)
		got, gotArr := grow(arr, s, tc.n)
		if len(got) != len(want)+tc.n || &gotArr[:cap(gotArr)][cap(gotArr)-cap(got)] != &got[:1][0] {
			t.Fatalf("%s: grew to %d elements, want %d, at the end of the array returned", tc.name, len(got), len(want)+tc.n)
		}
		for i, p := range want {
			if got[i] != p {
				t.Fatalf("%s: element %d is %v, want %v", tc.name, i, got[i], p)
			}
		}
		if same := cap(arr) > 0 && &gotArr[:1][0] == &arr[:1][0]; same != tc.sameArr {
			t.Fatalf("%s: grew in the array given: %v, want %v", tc.name, same, tc.sameArr)
		}
		if tc.sameArr && &got[0] == &gotArr[0] {
			for i, p := range gotArr[len(got):cap(gotArr)] {
				if p != nil {
					t.Fatalf("%s: element %d after the grown slice still refers to %d", tc.name, len(got)+i, *p)
				}
			}
		}
	}
}
