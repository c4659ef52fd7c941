package relay

import (
	"context"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/headers"
	"github.com/kretry/kretry/internal/safetext"
)

// outcome is what became of one partition's records of a poll.
type outcome struct {
	tp      topicPartition
	done    *kgo.Record   // the last record re-fed, forwarded or skipped, in offset order: marked (it and all before it)
	rewind  *kgo.Record   // the first record not done, if any
	until   time.Time     // when to fetch rewind again
	failure bool          // rewind is for a failed produce, not a due time
	waiting []*kgo.Record // for a not-due rewind: it and the records after it in this poll
	wreads  []read        // what was read of waiting, by index
	wbytes  int           // the size of waiting, as holdRecord sizes records
	tailDue time.Time     // the due time of the last of waiting (until when it cannot be read)
	queue   []*refeed     // the partition's re-feeds in flight, oldest first
	refed   *refedIDs     // what the partition re-fed in this session
	free    []*refeed     // re-feeds to reuse, taken from and given back to the relay's (see newRefeed)
	drained bool          // the relay's free re-feeds ran out in this poll

	// The arrays waiting and wreads lie in, from their start (see grow).
	waitingArr []*kgo.Record
	wreadsArr  []read
}

// handle processes one poll: the partitions in parallel, each in offset
// order, producing the re-feeds of due records without waiting for them.
// Then, still holding rebalances, it marks what is done (acknowledged, in
// order), holds the records not yet due within the budget, and pauses and
// rewinds every other partition that has a record to wait for or a re-feed
// that failed.
func (s *session) handle(ctx context.Context, fetches kgo.Fetches) {
	// What partitions held from earlier polls comes before what they got now.
	s.mu.Lock()
	holds := maps.Clone(s.held)
	recs := make(map[topicPartition][]*kgo.Record, len(s.held))
	for tp, h := range s.held {
		recs[tp] = h.recs
	}
	clear(s.held)
	inflight := maps.Clone(s.inflight)
	s.mu.Unlock()
	fetches.EachPartition(func(p kgo.FetchTopicPartition) {
		if len(p.Records) > 0 {
			tp := topicPartition{p.Topic, p.Partition}
			h, rs := holds[tp], recs[tp]
			// In the array of the partition's hold: only the hold refers to it.
			recs[tp], h.recsArr = grow(h.recsArr, rs, len(p.Records))
			copy(recs[tp][len(rs):], p.Records)
			holds[tp] = h
		}
	})
	outs := make(map[topicPartition]*outcome, len(recs))
	now := time.Now()
	var wg sync.WaitGroup
	for tp, rs := range recs {
		o := &outcome{tp: tp, queue: inflight[tp]}
		outs[tp] = o
		h := holds[tp]
		if len(rs) == len(h.recs) && h.due.After(now) && ctx.Err() == nil {
			// Held, nothing new, its head not due: it waits as partition would find.
			o.rewind, o.until, o.waiting, o.wreads, o.wbytes, o.tailDue = rs[0], h.due, rs, h.reads, h.size, h.tail
			o.waitingArr, o.wreadsArr = h.recsArr, h.readsArr
			continue
		}
		o.refed = s.refedOf(tp)
		wg.Go(func() { s.partition(ctx, o, rs, h) })
	}
	wg.Wait()
	// Settle every partition with re-feeds in flight, polled now or not;
	// block when too many are in flight.
	for tp, q := range inflight {
		if outs[tp] == nil {
			outs[tp] = &outcome{tp: tp, queue: q}
		}
	}
	n := 0
	for _, o := range outs {
		s.settle(o, nil)
		n += len(o.queue)
	}
	s.bound(ctx, outs, n)
	for _, o := range outs {
		s.giveBack(o)
	}
	s.mu.Lock()
	for _, o := range outs {
		if len(o.queue) > 0 {
			s.inflight[o.tp] = o.queue
		} else {
			delete(s.inflight, o.tp)
		}
	}
	s.mu.Unlock()
	s.finish(slices.Collect(maps.Values(outs)))
}

// bound waits, when more than maxInflight of the re-feeds of outs (n) are in
// flight, until at most half of it is left: the producer keeps a batch to
// send meanwhile. It counts what every partition has acknowledged, in order,
// as it comes, so it waits for the oldest re-feeds, not for whole
// partitions' newest. Shutting down (ctx done) it stops waiting; the rest is
// settled then, within the delivery timeout.
func (s *session) bound(ctx context.Context, outs map[topicPartition]*outcome, n int) {
	if n <= maxInflight {
		return
	}
	tick := time.NewTicker(50 * time.Millisecond) // covers a wake-up another waiter took, as in await
	defer tick.Stop()
	for {
		select {
		case <-s.ackc:
		case <-tick.C:
		case <-ctx.Done():
			return
		case <-s.hard.Done():
			return
		}
		n = 0
		for _, o := range outs {
			s.settle(o, nil)
			n += len(o.queue)
		}
		if n <= maxInflight/2 {
			return
		}
	}
}

// partition takes recs, the records of one partition of a poll, in order,
// until one must wait: not due, or its produce failed. The re-feeds of due
// records are started and appended to o.queue, behind those still in flight
// from earlier polls; settle takes them from there once acknowledged.
//
// Re-feeds are produced back to back and not waited for. That keeps order
// where it matters: records of one tier partition that go to one main
// partition are written in offset order by the idempotent producer, and when
// one of them fails, kgo fails every later one buffered for that partition,
// so none of them lands ahead of it. The done records are the prefix before
// the first failure; the partition is rewound there, and a later record that
// was acknowledged anyway (only possible when it went to another main
// partition) is re-fed again: a duplicate, never a loss.
// h is what the partition held, its records first in recs: h.reads what
// earlier polls read of their headers, by index, h.size their size; recs
// lies in h.recsArr, h.reads in h.readsArr (see grow).
func (s *session) partition(ctx context.Context, o *outcome, recs []*kgo.Record, h held) {
	reads, size := h.reads, h.size
	t := s.r.tiers[o.tp.topic]
	limit := s.limits.Of(t.ladder.Topic()) // read once: kgo asks for it once per partition too
	// now is read again before a record counts as not yet due (or not yet
	// after: see repark), so that a record due meanwhile is not held; a due
	// record is never re-fed before it is due, whatever now lags.
	now := time.Now()
	for i, rec := range recs {
		if ctx.Err() != nil {
			return // shutting down: what is not marked is fetched again by the next owner
		}
		var r read
		if i < len(reads) {
			r = reads[i]
		}
		if !r.ok {
			var group string
			var err error
			if r, group, err = readTier(t, rec.Headers, now); err != nil {
				// Rare: the dead letter is written after everything before it.
				if s.settle(o, ctx.Done()); o.rewind != nil || len(o.queue) > 0 {
					return // a failure before it, or shutting down
				}
				if !s.deadLetter(ctx, t, rec, err) {
					o.rewind, o.failure = rec, true
					return
				}
				o.done = rec
				continue
			}
			if !r.ok {
				s.log.Debug("kretry relay skips another group's record", "topic", rec.Topic, "partition", rec.Partition,
					"offset", rec.Offset, "record_group", safetext.Quoted(group))
				o.queue = append(o.queue, &refeed{rec: rec}) // done in its turn
				continue
			}
		}
		if o.refed.copyOf(r.id, rec.Offset) {
			// A copy of an attempt re-fed from an earlier offset (its
			// consumer forwarded it again after a crash): done in its
			// turn, after that re-feed, without waiting for its due time.
			o.queue = append(o.queue, &refeed{rec: rec, copyOf: r.id})
			continue
		}
		if r.due > now.UnixNano() {
			now = time.Now()
		}
		if r.due > now.UnixNano() {
			due := time.Unix(0, r.due)
			o.rewind, o.until, o.waiting, o.waitingArr = rec, due, recs[i:], h.recsArr
			known := reads[min(i, len(reads)):]
			o.wbytes = size
			for _, d := range reads[:len(reads)-len(known)] { // held until now, done
				o.wbytes -= int(d.size)
			}
			if len(known) == 0 { // rec is read: readAll readies and reads the records after it
				r.size = int32(holdRecord(rec))
				o.wbytes += int(r.size)
				known, h.readsArr = grow(h.readsArr, known, 1) // the hold's array, if any: its reads are done
				known[0] = r
			}
			var added int
			o.wreads, o.wreadsArr, added = s.readAll(t, o.waiting, known, h.readsArr, now)
			o.wbytes += added
			o.tailDue = due
			if last := o.wreads[len(o.wreads)-1]; last.ok && last.due > r.due {
				o.tailDue = time.Unix(0, last.due)
			}
			return
		}
		if r.repark {
			if r.after > now.UnixNano() {
				now = time.Now()
			}
			if r.after > now.UnixNano() {
				// Held its tier's delay and still not due: written again to
				// the tier, not remembered (its copy there is no duplicate).
				o.queue = append(o.queue, s.repark(ctx, t, rec, r))
				continue
			}
			r.due, r.repark = r.after, false // due meanwhile
		}
		o.refed.remember(r.id, rec.Offset)
		o.queue = append(o.queue, s.refeed(ctx, o, t, rec, r, limit))
	}
}

// read is what the relay needs of a record's kretry headers to re-feed it.
// A record that waits has its headers read when it is first polled, so that
// it is re-fed without reading them again when it falls due, in a burst. The
// zero read is unread, as is a record of another group or with headers that
// cannot be read: the poll that finds it due reads it again and acts.
type read struct { // 72 bytes, its fields ordered so: one for every held record
	due       int64 // kretry-due-at, or the bound it is held to (see readOf), Unix nanoseconds
	after     int64 // with repark: kretry-due-at, later than due
	size      int32 // in a hold's reads: the record's size, as holdRecord gives it
	repark    bool  // at due it is re-parked in its tier, not re-fed (see readOf)
	canonical bool  // see decode; false also when the relay rewrites kretry-due-at or kretry-tier
	untrusted bool  // kretry-due-at was past its bound
	ok        bool
	id        copyID // the attempt it carries, which its copies carry too: kretry-attempts, -original-partition
}

// dueSlack is how far kretry-due-at may be past its bound and still be
// trusted, and past the bound of a hold and still be waited for: the times
// are cut to milliseconds.
const dueSlack = time.Millisecond

// readOf reads md, the kretry headers hs of a record in tier t, at now.
//
// A kretry-due-at later than kretry-last-failure-at plus the longer of t's
// delay and the ladder's RetryAfterMax (a forged header, or a writer's clock
// far ahead) is not trusted: the record is due at the last failure plus t's
// delay, so that it cannot hold its partition for ever.
//
// A trusted kretry-due-at later than the bound of one hold (t's delay after
// the last failure, or after kretry-parked-at when the relay re-parked the
// record since) is waited for only up to that bound: then the record is
// re-parked, written again to t with kretry-parked-at now, so that no
// record holds a tier partition longer than the tier's delay. A
// kretry-parked-at that does not read, or is before the last failure or
// after now, is not trusted: the bound counts from the last failure.
//
// A kretry-tier that is not t's name is not propagated: the re-feed carries
// t's name.
func readOf(t tierOf, md headers.Metadata, canonical bool, hs []kgo.RecordHeader, now time.Time) read {
	r := read{due: md.DueAt.UnixNano(), canonical: canonical, ok: true,
		id: copyID{topic: md.OriginalTopic, offset: md.OriginalOffset, partition: md.OriginalPartition, attempts: md.Attempts, replays: md.Replays}}
	if r.id.topic == t.ladder.Topic() {
		r.id.topic = t.ladder.Topic() // one string for every record of the main topic, not one each
	}
	bound := md.LastFailureAt.Add(t.step.Delay)
	if trusted := md.LastFailureAt.Add(max(t.step.Delay, t.ladder.RetryAfterMax())); md.DueAt.After(trusted.Add(dueSlack)) {
		r.due, r.untrusted, r.canonical = bound.UnixNano(), true, false
		return r
	}
	if !canonical { // kretry-parked-at is outside the contract: a re-parked record is never canonical
		if p, ok := headers.ParkedAt(hs); ok && p.After(md.LastFailureAt) && !p.After(now.Add(dueSlack)) {
			bound = p.Add(t.step.Delay)
		}
	}
	if md.DueAt.After(bound.Add(dueSlack)) {
		r.after, r.due, r.repark = r.due, bound.UnixNano(), true
	}
	if md.Tier != t.step.Name {
		r.canonical = false
	}
	return r
}

// readAll returns what is read of waiting at now, by index: known (what
// earlier polls read of them, by index; it may be shorter), then the rest,
// which it readies to be held (holdRecord); the array they lie in; and
// their size, summed. It grows known in arr, the array it lies in, which
// only the partition's hold refers to (see grow).
func (s *session) readAll(t tierOf, waiting []*kgo.Record, known, arr []read, now time.Time) (reads, readsArr []read, size int) {
	out, arr := grow(arr, known, len(waiting)-len(known))
	for i := len(known); i < len(waiting); i++ {
		n := holdRecord(waiting[i])
		out[i], _, _ = readTier(t, waiting[i].Headers, now) // unread when it cannot be re-fed
		out[i].size = int32(n)
		size += n
	}
	return out, arr, size
}

// nextWake returns when the poll loop must look at the held records again,
// data or not: the earliest due time of a held head, or for a partition
// paused while it holds, holdAhead before its last record is due, when that
// is still ahead (it is resumed then); and settleEvery from now while
// re-feeds are in flight, to mark them; and while a transaction has marks,
// when it may end. Zero: only when records arrive.
func (s *session) nextWake() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	var first time.Time
	if len(s.inflight) > 0 {
		first = now.Add(settleEvery)
	}
	if s.txn != nil && s.dirty.Load() {
		// The end at the commit interval, or sooner when idle (see idle).
		end := s.lastEnd.Add(minCommitInterval)
		if soon := now.Add(idleGap); end.Before(soon) {
			end = soon
		}
		if last := s.lastEnd.Add(s.r.cfg.commitInterval); last.Before(end) {
			end = last
		}
		if first.IsZero() || end.Before(first) {
			first = end
		}
	}
	for tp, h := range s.held {
		at := h.due
		if early := h.tail.Add(-holdAhead); s.holdPaused[tp] && early.After(now) && early.Before(at) {
			at = early
		}
		if first.IsZero() || at.Before(first) {
			first = at
		}
	}
	return first
}
