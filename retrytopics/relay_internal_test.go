package retrytopics

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// hold holds the nearest not-due partitions within its budgets, however far
// their due time, and leaves the rest to the pause path.
func TestHoldBudget(t *testing.T) {
	now := time.Now()
	recs := func(n, valueBytes int) []*kgo.Record {
		out := make([]*kgo.Record, n)
		for i := range out {
			out[i] = &kgo.Record{Value: make([]byte, valueBytes)}
		}
		return out
	}
	out := func(p int32, due time.Duration, waiting []*kgo.Record) *outcome {
		return &outcome{tp: topicPartition{"t", p}, rewind: waiting[0], until: now.Add(due), waiting: waiting}
	}
	outs := []*outcome{
		out(0, 300*time.Millisecond, recs(holdRecords/2+1, 1)), // third nearest: over the record budget with 1 and 2
		out(1, 100*time.Millisecond, recs(holdRecords/4, 1)),   // nearest: held
		out(2, 200*time.Millisecond, recs(holdRecords/4, 1)),   // held: half the budget in all
		out(3, 10*time.Minute, recs(1, 1)),                     // far, and fits: held
		out(4, 400*time.Millisecond, recs(1, holdBytes)),       // over the byte budget
		out(5, 500*time.Millisecond, recs(1000, 1)),            // fits in what is left
		{tp: topicPartition{"t", 6}, rewind: &kgo.Record{}, until: now.Add(time.Second), failure: true},
		{tp: topicPartition{"t", 7}}, // nothing to wait for
	}
	s := &session{held: map[topicPartition]held{}, holdPaused: map[topicPartition]bool{}}
	s.hold(outs)

	for _, tc := range []struct {
		p    int32
		held bool
	}{{0, false}, {1, true}, {2, true}, {3, true}, {4, false}, {5, true}, {6, false}, {7, false}} {
		o := outs[tc.p]
		h, isHeld := s.held[o.tp]
		if isHeld != tc.held {
			t.Errorf("partition %d held = %v, want %v", tc.p, isHeld, tc.held)
		}
		if isHeld && (o.rewind != nil || len(h.recs) != len(o.waiting) || !h.due.Equal(o.until)) {
			t.Errorf("partition %d held %d records due %v with rewind %v", tc.p, len(h.recs), h.due, o.rewind)
		}
		if !isHeld && tc.p < 7 && o.rewind == nil {
			t.Errorf("partition %d is neither held nor rewound", tc.p)
		}
	}
	if due := s.nextWake(); !due.Equal(now.Add(100 * time.Millisecond)) {
		t.Errorf("nextWake = %v; want the nearest due time, +100ms", due)
	}
	// A partition paused while it holds wakes the loop resumeLead before its
	// last record is due, to be resumed, or at its head's due time if that
	// comes first.
	tp3 := topicPartition{"t", 3}
	s.holdPaused[tp3] = true
	clear(s.held)
	for _, tc := range []struct{ head, tail, want time.Duration }{
		{10 * time.Minute, 10 * time.Minute, 10*time.Minute - resumeLead},
		{10 * time.Minute, 11 * time.Minute, 10 * time.Minute},
		{resumeLead / 2, resumeLead, resumeLead / 2}, // resuming is due already
	} {
		s.held[tp3] = held{recs: outs[3].waiting, due: now.Add(tc.head), tail: now.Add(tc.tail)}
		if due := s.nextWake(); !due.Equal(now.Add(tc.want)) {
			t.Errorf("head +%v, last +%v: nextWake = +%v; want +%v", tc.head, tc.tail, due.Sub(now), tc.want)
		}
	}
	// Re-feeds in flight bring the wake-up to settleEvery from now.
	s.inflight = map[topicPartition][]*refeed{tp3: {{}}}
	if due := s.nextWake(); due.IsZero() || due.After(time.Now().Add(settleEvery)) {
		t.Errorf("nextWake = %v with re-feeds in flight; want within %v", due, settleEvery)
	}
	clear(s.held)
	if due := s.nextWake(); due.IsZero() {
		t.Error("nextWake = zero with re-feeds in flight and nothing held")
	}
	clear(s.inflight)
	if due := s.nextWake(); !due.IsZero() {
		t.Errorf("nextWake = %v with nothing held or in flight; want zero", due)
	}
}
