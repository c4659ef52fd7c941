package retrytopics

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// holdNearDue holds the nearest not-due partitions within its budgets and
// leaves the rest to the pause path.
func TestHoldNearDueBudget(t *testing.T) {
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
		out(0, 300*time.Millisecond, recs(2000, 1)), // third nearest: over the record budget with 0 and 1
		out(1, 100*time.Millisecond, recs(6000, 1)), // nearest: held
		out(2, 200*time.Millisecond, recs(3000, 1)), // held: 9,000 in all
		out(3, 2*time.Second, recs(1, 1)),           // beyond the horizon
		out(4, 400*time.Millisecond, recs(1, holdBytes)),
		out(5, 500*time.Millisecond, recs(1000, 1)), // fits in what is left
		{tp: topicPartition{"t", 6}, rewind: &kgo.Record{}, until: now.Add(time.Second), failure: true},
		{tp: topicPartition{"t", 7}}, // nothing to wait for
	}
	s := &session{held: map[topicPartition]held{}}
	s.holdNearDue(outs)

	for _, tc := range []struct {
		p    int32
		held bool
	}{{0, false}, {1, true}, {2, true}, {3, false}, {4, false}, {5, true}, {6, false}, {7, false}} {
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
	if due, ok := s.nextHeldDue(); !ok || !due.Equal(now.Add(100*time.Millisecond)) {
		t.Errorf("nextHeldDue = %v, %v; want the nearest, +100ms", due, ok)
	}
}
