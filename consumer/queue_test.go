package consumer

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

// The partition queue (enqueue's queueRecs, take's drain) hands records out
// in the order they came, however fetches and takes interleave, and its
// backing array holds no record that is not queued (the GC keeps nothing
// alive through it).
func TestQueueKeepsOrderAndNoStaleRecords(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var w worker
	var model []*kgo.Record
	next := 0
	for step := range 20000 {
		if r.IntN(2) == 0 {
			recs := make([]*kgo.Record, 1+r.IntN(300))
			for i := range recs {
				recs[i] = &kgo.Record{Offset: int64(next)}
				next++
			}
			w.queueRecs(recs)
			model = append(model, recs...)
		} else {
			// As take does.
			n := min(len(w.queue), 1+r.IntN(takeMax))
			clear(w.queue[:n])
			w.queue = w.queue[n:]
			model = model[n:]
			if len(w.queue) == 0 && r.IntN(2) == 0 {
				w.queue = nil
			}
		}
		if !slices.Equal(w.queue, model) {
			t.Fatalf("step %d: the queue holds %d records, not the %d queued in order", step, len(w.queue), len(model))
		}
		if w.qarr != nil {
			live := 0
			for _, rec := range w.qarr[:cap(w.qarr)] {
				if rec != nil {
					live++
				}
			}
			if live != len(w.queue) {
				t.Fatalf("step %d: the backing array holds %d records, the queue %d", step, live, len(w.queue))
			}
		}
	}
}

// The pending records come out oldest first through wrap-arounds, and a
// popped slot keeps nothing.
func TestPendingQueueOrder(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	var q pendingQueue
	var model []*kgo.Record
	for step := range 50000 {
		if q.len() < maxPending && r.IntN(3) > 0 {
			rec := &kgo.Record{Offset: int64(step)}
			q.push(pendingRecord{rec: rec})
			model = append(model, rec)
		} else if q.len() > 0 {
			if q.at(0).rec != model[0] {
				t.Fatalf("step %d: oldest is offset %d, want %d", step, q.at(0).rec.Offset, model[0].Offset)
			}
			q.pop()
			model = model[1:]
		}
		if q.len() != len(model) {
			t.Fatalf("step %d: len %d, want %d", step, q.len(), len(model))
		}
		live := 0
		for _, p := range q.ring {
			if p.rec != nil {
				live++
			}
		}
		if live != len(model) {
			t.Fatalf("step %d: the ring holds %d records, want %d", step, live, len(model))
		}
	}
	for i, rec := range model {
		if q.at(i).rec != rec {
			t.Fatalf("record %d out of order", i)
		}
	}
	q.clear()
	if q.len() != 0 || slices.ContainsFunc(q.ring, func(p pendingRecord) bool { return p.rec != nil }) {
		t.Fatal("clear left records")
	}
}

// The queue's bytes (enqueueBytes, take's dequeueBytes) are counted by
// batch: exact while no batch is partly taken or the records are of one
// size, never negative, and 0 once the queue is empty, however fetches and
// takes interleave.
func TestQueuedBytes(t *testing.T) {
	for _, uniform := range []bool{true, false} {
		r := rand.New(rand.NewPCG(5, 6))
		var w worker
		var sizes []int   // of the queued records, oldest first
		var batches []int // records of each batch still queued, oldest first
		partly := false   // the oldest batch is partly taken
		exactChecks := 0
		for step := range 20000 {
			if r.IntN(2) == 0 {
				recs := make([]*kgo.Record, 1+r.IntN(300))
				for i := range recs {
					v := make([]byte, 100)
					if !uniform {
						v = make([]byte, r.IntN(2000))
					}
					recs[i] = &kgo.Record{Value: v, Headers: []kgo.RecordHeader{{Key: "k", Value: v[:len(v)/2]}}}
					sizes = append(sizes, recordBytes(recs[i]))
				}
				w.enqueueBytes(recs)
				batches = append(batches, len(recs))
			} else if len(sizes) > 0 {
				n := min(len(sizes), 1+r.IntN(takeMax))
				if r.IntN(3) == 0 {
					n = batches[0] // to the oldest batch's end
				}
				w.dequeueBytes(n)
				sizes = sizes[n:]
				for n > 0 {
					if n < batches[0] {
						batches[0] -= n
						partly = true
						break
					}
					n -= batches[0]
					batches, partly = batches[1:], false
				}
			}
			exact := 0
			for _, s := range sizes {
				exact += s
			}
			switch {
			case w.queuedBytes < 0:
				t.Fatalf("uniform %v, step %d: queuedBytes %d < 0", uniform, step, w.queuedBytes)
			case len(sizes) == 0 && w.queuedBytes != 0:
				t.Fatalf("uniform %v, step %d: queuedBytes %d with the queue empty", uniform, step, w.queuedBytes)
			case uniform || !partly:
				exactChecks++
				if w.queuedBytes != exact {
					t.Fatalf("uniform %v, step %d: queuedBytes %d, want %d", uniform, step, w.queuedBytes, exact)
				}
			}
		}
		if exactChecks < 1000 {
			t.Fatalf("uniform %v: only %d steps checked exactly", uniform, exactChecks)
		}
	}
}
