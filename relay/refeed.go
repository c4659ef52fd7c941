package relay

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/headers"
)

// refeed is one re-feed in flight, or with produced false a record that
// needs none (another group's, or a copy of one re-fed: copyOf set) and is
// done in its turn. The produced record and its result live in it; one
// re-fed without error is recycled (freeRefeeds): kgo does not touch a
// record once its promise has run.
type refeed struct {
	rec       *kgo.Record
	due       time.Time
	attempts  int32
	untrusted bool      // re-fed at its bound, not at its kretry-due-at
	dueAt     time.Time // with untrusted or parked: the kretry-due-at it carries
	out       kgo.Record
	produced  bool
	parked    bool   // a re-park: out goes to rec's own tier topic (see repark)
	copyOf    copyID // a skipped copy: the attempt it carries (zero otherwise)

	// Set by the produce promise before it marks the re-feed acknowledged;
	// read after acked.Load. ackc is the session's: see await.
	acked atomic.Bool
	err   error
	at    time.Time // when the broker acknowledged it
	ackc  chan struct{}

	promise func(*kgo.Record, error) // f.ack, made once for a recycled refeed
}

// ack is the re-feed's produce promise.
func (f *refeed) ack(_ *kgo.Record, err error) {
	f.err, f.at = err, time.Now()
	ackc := f.ackc // read before acked: once acked, f may be recycled
	f.acked.Store(true)
	select {
	case ackc <- struct{}{}:
	default:
	}
}

// refeedsKept bounds the re-feeds kept on the free list: what one poll
// re-feeds. A poll's re-feeds are settled by the next few polls, so in a
// steady flow nearly every re-feed is a recycled one; those settled beyond
// it at once (after bound waited) spill to a sync.Pool, which the GC
// empties, so that a burst costs no memory for long.
const refeedsKept = maxPollRecords

// refeedChunk is how many re-feeds a partition's goroutine takes from the
// free list at a time: a lock per chunk, not per re-feed.
const refeedChunk = 64

// freeRefeeds is the relay's re-feeds acknowledged without error and
// reset, for reuse: a list of at most refeedsKept, and a sync.Pool beyond
// it. The list costs no pin and atomics per re-feed, and loses none to the
// GC, which a busy relay runs several times a second.
type freeRefeeds struct {
	mu    sync.Mutex
	list  []*refeed
	spill sync.Pool // of *refeed
}

// take moves up to n free re-feeds to dst, from the list first.
func (l *freeRefeeds) take(dst []*refeed, n int) []*refeed {
	l.mu.Lock()
	k := min(n, len(l.list))
	dst = append(dst, l.list[len(l.list)-k:]...)
	clear(l.list[len(l.list)-k:])
	l.list = l.list[:len(l.list)-k]
	l.mu.Unlock()
	for ; k < n; k++ {
		f, _ := l.spill.Get().(*refeed)
		if f == nil {
			break
		}
		dst = append(dst, f)
	}
	return dst
}

// give puts fs on the list, as far as refeedsKept allows, the rest in the
// pool, and clears fs.
func (l *freeRefeeds) give(fs []*refeed) {
	if len(fs) == 0 {
		return
	}
	l.mu.Lock()
	k := min(len(fs), refeedsKept-len(l.list))
	l.list = append(l.list, fs[:k]...)
	l.mu.Unlock()
	for _, f := range fs[k:] {
		l.spill.Put(f)
	}
	clear(fs)
}

// newRefeed returns a re-feed for o's partition, recycled when one is free.
func (s *session) newRefeed(o *outcome) *refeed {
	if len(o.free) == 0 && !o.drained {
		o.free = s.r.refeeds.take(o.free, refeedChunk)
		o.drained = len(o.free) == 0 // allocate for the rest of the poll
	}
	var f *refeed
	if n := len(o.free); n > 0 {
		f, o.free = o.free[n-1], o.free[:n-1]
	} else {
		f = &refeed{}
		f.promise = f.ack
	}
	f.ackc = s.ackc
	return f
}

// recycle resets f, a re-feed of o's partition settled and acknowledged
// without error, onto o's free re-feeds; giveBack returns them to the
// relay's.
func (o *outcome) recycle(f *refeed) {
	*f = refeed{promise: f.promise}
	o.free = append(o.free, f)
}

// giveBack returns o's free re-feeds to the relay's free list.
func (s *session) giveBack(o *outcome) {
	s.r.refeeds.give(o.free)
	o.free = o.free[:0]
}

// refeed starts producing rec to its main topic, at its original partition
// (modulo the main topic's partition count, refreshed when the original
// partition is not below it: see partitions.Counts). The kretry headers go on
// as they are: when they are canonical (as kretry writes them) rec's headers
// are reused, otherwise Encode rewrites them. limit is the main topic's
// batch limit.
func (s *session) refeed(ctx context.Context, o *outcome, t tierOf, rec *kgo.Record, r read, limit int32) *refeed {
	main := t.ladder.Topic()
	f := s.newRefeed(o)
	f.rec, f.due, f.attempts, f.untrusted, f.produced = rec, time.Unix(0, r.due), int32(r.id.attempts), r.untrusted, true
	hs := rec.Headers
	if !r.canonical {
		md, _, _ := headers.Decode(rec.Headers) // read once already
		if r.untrusted {
			f.dueAt = md.DueAt
		}
		md = md.InTier(t.step.Name, f.due)
		hs = headers.Encode(rec.Headers, md)
	}
	f.out = kgo.Record{
		Topic:     main,
		Partition: s.parts.Partition(ctx, main, r.id.partition),
		Key:       rec.Key,
		Value:     rec.Value,
		Headers:   hs,
	}
	if size := batchSize(&f.out); size > int(limit) {
		// Not produced: settle dead-letters it (too-large), as the client or
		// the broker would refuse it, which in a transaction would doom it.
		f.produced, f.at = false, time.Now()
		f.err = fmt.Errorf("%w: with its headers the re-feed takes about %d bytes, and %s takes batches of at most %d (max.message.bytes)",
			kerr.MessageTooLarge, size, main, limit)
		f.acked.Store(true)
		return f
	}
	if !s.dirty.Load() { // a store on every re-feed, from every partition's goroutine, would contend
		s.dirty.Store(true)
	}
	// The producer's RecordDeliveryTimeout bounds the wait; a context could
	// not cut it shorter once the record is sent (idempotence).
	s.prod.Produce(context.Background(), &f.out, f.promise)
	return f
}

// batchSize is at least what rec takes in a record batch of its own, as kgo
// counts it against its batch limit (before compression).
func batchSize(rec *kgo.Record) int {
	const batchOverhead, recordOverhead, headerOverhead = 61, 32, 10
	n := batchOverhead + recordOverhead + len(rec.Key) + len(rec.Value)
	for _, h := range rec.Headers {
		n += headerOverhead + len(h.Key) + len(h.Value)
	}
	return n
}

// maxInflight bounds the re-feeds in flight over all partitions: past it, a
// poll waits for acknowledgements until half of it is left (bound). It and
// the poll after it stay within kgo's MaxBufferedRecords (50,000 by
// default), so that Produce does not block before the relay chooses to wait.
// Every wait delays the due records behind it, as in a burst of records
// falling due together when the broker's acknowledgements lag (B3); a
// higher bound would move the wait into kgo's buffer, not shorten it.
const maxInflight = 9 * maxPollRecords

// settleEvery is how soon the poll loop comes back to mark re-feeds in
// flight when no record arrives.
const settleEvery = 10 * time.Millisecond

// settle takes the re-feeds at the front of o.queue that are acknowledged
// and makes the last of their records o.done; with stop set it waits for
// the others until stop is closed. What is not acknowledged stays in
// o.queue. At the first failed one it waits for the rest of the queue (at
// most until stop, or the clients' context, is done), drops it, and makes
// the failed record o's rewind: neither it nor anything after it is marked.
func (s *session) settle(o *outcome, stop <-chan struct{}) {
	t := s.r.tiers[o.tp.topic]
	for i, f := range o.queue {
		if f.produced && !f.acked.Load() && (stop == nil || !s.await(f, stop)) {
			o.queue = o.queue[i:]
			return
		}
		if f.err != nil && isTooLarge(f.err) && s.deadLetterTooLarge(t, f) {
			// Done. After a refusal by the client or the broker the re-feeds
			// behind it failed with it, and the next one is the rewind.
			o.done = f.rec
			continue
		}
		if f.err != nil {
			s.r.health.Wrote(o.tp.topic, o.tp.partition, f.err)
			s.log.Error("kretry relay could not re-feed a record; it stays in its tier and is retried",
				"topic", f.rec.Topic, "partition", f.rec.Partition, "offset", f.rec.Offset,
				"to", f.out.Topic, "error", f.err)
			s.failed.Store(s.txn != nil) // the transaction cannot commit it: it aborts
			rest := stop
			if rest == nil {
				rest = s.hard.Done()
			}
			for _, g := range o.queue[i+1:] { // later ones fail with it, or are duplicates once it is re-fed again
				if g.produced && !s.await(g, rest) {
					break
				}
			}
			o.queue = nil
			o.rewind, o.failure, o.waiting = f.rec, true, nil
			return
		}
		o.done = f.rec
		if f.parked {
			s.reparked(t, f)
		} else if f.produced {
			s.refed(t, f)
			o.recycle(f)
		} else if f.copyOf != (copyID{}) {
			s.skippedCopy(t, f)
		}
	}
	o.queue = nil
}

// markDone marks o.done, and so every record of o's partition before it:
// kgo sorted and walked every record done when given them all.
func (s *session) markDone(o *outcome) {
	if o.done != nil {
		s.mark([]*kgo.Record{o.done})
	}
}

// settleAll waits for the re-feeds in flight of the partitions in tps (all
// when tps is nil) until stop is closed, and marks the records done, up to a
// failed one or one not acknowledged by then: the rest stays unmarked and is
// re-fed again by the next owner. It runs when the poll loop is not handling
// a poll (a revoke, or after the loop).
func (s *session) settleAll(tps map[string][]int32, stop <-chan struct{}) {
	var outs []*outcome
	s.mu.Lock()
	for tp, q := range s.inflight {
		if tps == nil || slices.Contains(tps[tp.topic], tp.partition) {
			outs = append(outs, &outcome{tp: tp, queue: q})
			delete(s.inflight, tp)
		}
	}
	s.mu.Unlock()
	abandoned := 0
	for _, o := range outs {
		s.settle(o, stop)
		s.giveBack(o)
		s.markDone(o)
		abandoned += len(o.queue)
		if len(o.queue) > 0 && s.txn != nil { // kept for endTxn to see
			s.mu.Lock()
			s.inflight[o.tp] = o.queue
			s.mu.Unlock()
		}
	}
	if abandoned > 0 {
		s.log.Warn("kretry relay stops waiting for re-feeds the broker has not acknowledged within the delivery timeout; their tier records stay uncommitted and are re-fed again",
			"refeeds", abandoned)
	}
}

// await waits until f is acknowledged, or stop or the clients' context is
// done; it reports whether f is acknowledged. One goroutine waits at a time
// (the poll loop, or a rebalance callback between polls); a ticker covers a
// wake-up another took.
func (s *session) await(f *refeed, stop <-chan struct{}) bool {
	if f.acked.Load() {
		return true
	}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for !f.acked.Load() {
		select {
		case <-s.ackc:
		case <-tick.C:
		case <-stop:
			return f.acked.Load()
		case <-s.hard.Done():
			return f.acked.Load()
		}
	}
	return true
}
