package consumer

import "github.com/twmb/franz-go/pkg/kgo"

// mark marks rec for commit once every record before it is done; false:
// stopped while settling earlier forwards, mark nothing more.
func (w *worker) mark(rec *kgo.Record) bool {
	if w.pending.len() == 0 {
		w.markLater(rec)
		return true
	}
	return w.hold(pendingRecord{rec: rec})
}

// markEvery bounds how many done records a worker leaves unmarked.
const markEvery = 256

// markLater notes rec, done, as the newest record to mark: one
// MarkCommitRecords marks the run (see doc.go), after markEvery records,
// when the queue is empty, or on the flusher's time (flushOnTime).
func (w *worker) markLater(rec *kgo.Record) {
	if w.txn {
		w.undone.Add(-1)
		w.s.recordsDone(1)
	}
	w.unmarked.Store(rec)
	w.nUnmarked++
	if w.nUnmarked >= markEvery {
		w.flushMarks()
	}
}

// flushMarks exports the batched metrics and marks the newest done record.
func (w *worker) flushMarks() {
	w.endRun()
	if w.handledN > 0 {
		w.handled.Add(float64(w.handledN))
		w.handledN = 0
	}
	w.durations.Flush()
	w.nUnmarked = 0
	w.markUnmarked()
}

// markUnmarked marks the newest done record unless the worker has returned
// (its partition may be someone else's); worker goroutine and flusher.
func (w *worker) markUnmarked() {
	if w.unmarked.Load() == nil {
		return
	}
	w.markMu.Lock()
	defer w.markMu.Unlock()
	if rec := w.unmarked.Swap(nil); rec != nil && !w.finished {
		w.s.cl.MarkCommitRecords(rec)
	}
}
