package consumer

import (
	"context"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/retrytopics"
)

// worker handles the records of one partition, in order, one at a time.
type worker struct {
	s      *session
	tp     topicPartition
	ladder *retrytopics.Ladder

	mu     sync.Mutex
	queue  []*kgo.Record
	paused bool // this worker paused the partition's fetching

	wake chan struct{} // cap 1: records were queued
	quit chan struct{} // closed by stop: take no new record

	// ctx is the handlers' and forwards' context: cancelled when the grace
	// period after stop runs out.
	ctx    context.Context
	cancel context.CancelFunc
	timer  *time.Timer
	done   chan struct{}
}

func newWorker(s *session, tp topicPartition, ladder *retrytopics.Ladder) *worker {
	ctx, cancel := context.WithCancel(s.base)
	return &worker{
		s: s, tp: tp, ladder: ladder,
		wake: make(chan struct{}, 1),
		quit: make(chan struct{}),
		ctx:  ctx, cancel: cancel,
		done: make(chan struct{}),
	}
}

// enqueue appends records fetched for the partition, pausing its fetching
// when the worker is far behind. It runs on the poll goroutine.
func (w *worker) enqueue(recs []*kgo.Record) {
	w.mu.Lock()
	w.queue = append(w.queue, recs...)
	if !w.paused && len(w.queue) >= w.s.c.opts.pauseAt {
		w.paused = true
		w.s.cl.PauseFetchPartitions(map[string][]int32{w.tp.topic: {w.tp.partition}})
	}
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// next returns the partition's next record, or false once the worker is
// stopped.
func (w *worker) next() (*kgo.Record, bool) {
	for {
		select {
		case <-w.quit:
			return nil, false
		default:
		}
		w.mu.Lock()
		if len(w.queue) > 0 {
			rec := w.queue[0]
			w.queue[0] = nil
			w.queue = w.queue[1:]
			if w.paused && len(w.queue) <= w.s.c.opts.resumeAt {
				w.paused = false
				w.s.cl.ResumeFetchPartitions(map[string][]int32{w.tp.topic: {w.tp.partition}})
			}
			w.mu.Unlock()
			return rec, true
		}
		w.queue = nil // drop the drained backing array
		w.mu.Unlock()
		select {
		case <-w.quit:
			return nil, false
		case <-w.wake:
		}
	}
}

func (w *worker) run() {
	defer close(w.done)
	for {
		rec, ok := w.next()
		if !ok {
			return
		}
		if !w.process(rec) {
			// The record is not done and is not marked; the partition's
			// next owner, or this consumer after a restart, gets it again.
			return
		}
	}
}

// stop tells the worker to take no new record and cancels its context after
// grace, or now when grace is 0.
func (w *worker) stop(grace time.Duration) {
	close(w.quit)
	if grace <= 0 {
		w.cancel()
		return
	}
	w.timer = time.AfterFunc(grace, w.cancel)
}

// wait waits for a stopped worker to return.
func (w *worker) wait() {
	<-w.done
	if w.timer != nil {
		w.timer.Stop()
	}
	w.cancel()
}
