package relay

import (
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// The hold/pause policy's constants; the package doc explains the policy.
const (
	// holdBytesPerRecord is what the record budget allows per byte of
	// the byte budget: a record with kretry's headers and a small value.
	holdBytesPerRecord = 640

	// holdAhead is how long before their due time records are fetched and
	// held within the whole budget.
	holdAhead = time.Second

	// holdFar is how far ahead a partition's first waiting record may be due
	// and still be held (within the far part of the budget). One due later
	// is paused and rewound: holding it would save one fetch at the price of
	// its whole fetch's memory for as long as it waits, and so a partition
	// restarts the fetch session with a rewind at most once per holdFar.
	holdFar = 10 * time.Second
)

// holdBudget is what the relay may hold: records and bytes (holdRecord), in
// all and of records due later than holdAhead (a sixteenth: they are fetched
// again a second before they are due when they do not fit, and each held
// record costs about twice its bytes in kgo's structures); a holding
// partition is paused at pauseAt records.
type holdBudget struct {
	records, bytes       int
	farRecords, farBytes int
	pauseAt              int
}

func newHoldBudget(bytes int) holdBudget {
	records := bytes / holdBytesPerRecord
	return holdBudget{records: records, bytes: bytes, farRecords: records / 16, farBytes: bytes / 16, pauseAt: records / 4}
}

// full reports whether what is held leaves no room for one more poll.
func (b holdBudget) full(records, bytes int) bool {
	return records >= b.records*3/4 || bytes >= b.bytes*3/4
}

// held is what a partition holds: records polled but not yet due.
type held struct {
	recs  []*kgo.Record
	reads []read    // of recs, by index
	due   time.Time // of recs[0]
	tail  time.Time // of the last of recs, as far as it can be read
	size  int       // of recs, as holdRecord sizes them

	// The arrays recs and reads lie in, from their start: the next polls
	// add at the back of recs and reads and re-feed from their front, in
	// these arrays as long as they have room (see grow).
	recsArr  []*kgo.Record
	readsArr []read
}

// grow returns s with n elements more at its end, to be set, and the array
// it then lies in, from its start. s lies at the end of arr (the array a
// call returned; nil: none), which it checks. It grows in place when s has room after it;
// else it moves to the start of arr when arr has room for s twice over, so
// that each element added costs at most one moved, and clears the rest of
// arr, which only elements dropped before s and copies of s fill; else it
// moves to a new array with room for as much again.
//
// A hold so keeps its arrays while records come in at the back as fast as
// they are re-fed from the front, where appending to what is left of them
// would allocate anew every few polls.
func grow[T any](arr, s []T, n int) (grown, grownArr []T) {
	need := len(s) + n
	if need <= cap(s) {
		return s[:need], arr
	}
	if all := arr[:cap(arr)]; len(s)+need <= len(all) && cap(s) > 0 && &all[len(all)-cap(s)] == &s[:1][0] {
		copy(all, s)
		clear(all[len(s):])
		return all[:need], all
	}
	grown = make([]T, need, len(s)+need)
	copy(grown, s)
	return grown, grown
}

// pause is a paused partition's timer, which resumes it.
type pause struct {
	timer *time.Timer
}

// finish holds, pauses and rewinds after a poll's outcomes are known.
func (s *session) finish(outs []*outcome) {
	s.hold(outs)
	s.pauseHolders(outs)

	pauses := map[string][]int32{}
	rewinds := map[string]map[int32]kgo.EpochOffset{}
	for _, o := range outs {
		s.markDone(o)
		if o.rewind == nil {
			if o.done != nil {
				delete(s.failures, o.tp)
				s.r.health.Wrote(o.tp.topic, o.tp.partition, nil)
			}
			continue
		}
		if o.failure {
			n := s.failures[o.tp]
			s.failures[o.tp] = n + 1
			o.until = time.Now().Add(min(s.r.cfg.retryBackoff<<min(n, 16), s.r.cfg.maxRetryBackoff))
		} else if o.done != nil {
			delete(s.failures, o.tp)
		}
		pauses[o.tp.topic] = append(pauses[o.tp.topic], o.tp.partition)
		if rewinds[o.tp.topic] == nil {
			rewinds[o.tp.topic] = map[int32]kgo.EpochOffset{}
		}
		rewinds[o.tp.topic][o.tp.partition] = kgo.EpochOffset{Epoch: -1, Offset: o.rewind.Offset}
	}
	if len(pauses) == 0 {
		return
	}
	// Pause first, so that the session restart SetOffsets causes does not
	// fetch what we are about to wait for.
	s.cons.PauseFetchPartitions(pauses)
	s.cons.SetOffsets(rewinds)
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, o := range outs {
		if o.rewind == nil {
			continue
		}
		// Fetched holdAhead early, the head is held and re-fed on time from memory.
		at := o.until
		if early := o.until.Add(-holdAhead); !o.failure && time.Now().Before(early) {
			at = early
		}
		s.pauseUntil(o.tp, at)
	}
	s.countPaused()
}

// hold turns the not-due rewinds of outs into holds, nearest first, within
// the budget; the rest stay rewinds.
func (s *session) hold(outs []*outcome) {
	var waiting []*outcome
	for _, o := range outs {
		if o.rewind != nil && !o.failure {
			waiting = append(waiting, o)
		}
	}
	slices.SortFunc(waiting, func(a, b *outcome) int { return a.until.Compare(b.until) })
	now := time.Now()
	horizon, farthest := now.Add(holdAhead), now.Add(holdFar)
	n, size := 0, 0
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, o := range waiting {
		if o.until.After(farthest) {
			continue // paused and rewound: see holdFar
		}
		maxRecords, maxBytes := s.budget.records, s.budget.bytes
		if o.until.After(horizon) {
			maxRecords, maxBytes = s.budget.farRecords, s.budget.farBytes
		}
		if n+len(o.waiting) > maxRecords || size+o.wbytes > maxBytes {
			continue // paused and rewound
		}
		n, size = n+len(o.waiting), size+o.wbytes
		s.held[o.tp] = held{recs: o.waiting, reads: o.wreads, due: o.until, tail: o.tailDue, size: o.wbytes,
			recsArr: o.waitingArr, readsArr: o.wreadsArr}
		o.rewind = nil
	}
	s.heldRecords, s.heldBytes = n, size
	s.countHeld()
}

// pauseHolders pauses and resumes the holding partitions of outs, without a
// rewind, as the package doc's "Paused while holding" says.
func (s *session) pauseHolders(outs []*outcome) {
	pause := map[string][]int32{}
	resume := map[string][]int32{}
	soon := time.Now().Add(holdAhead)
	s.mu.Lock()
	full := s.budget.full(s.heldRecords, s.heldBytes)
	for _, o := range outs {
		h, holding := s.held[o.tp]
		paused := s.holdPaused[o.tp]
		switch {
		case holding && !paused && (full || h.tail.After(soon) || len(h.recs) >= s.budget.pauseAt):
			s.holdPaused[o.tp] = true
			pause[o.tp.topic] = append(pause[o.tp.topic], o.tp.partition)
		case paused && (!holding || !full && !h.tail.After(soon) && len(h.recs) <= s.budget.pauseAt/2):
			delete(s.holdPaused, o.tp)
			if o.rewind == nil { // a rewound partition stays paused for its timer
				resume[o.tp.topic] = append(resume[o.tp.topic], o.tp.partition)
			}
		}
	}
	s.countPaused()
	s.mu.Unlock()
	if len(pause) > 0 {
		s.cons.PauseFetchPartitions(pause)
	}
	if len(resume) > 0 {
		s.cons.ResumeFetchPartitions(resume)
	}
}

// pauseUntil arms the timer that resumes tp at until. s.mu is held; the
// caller counts the pause (countPaused).
func (s *session) pauseUntil(tp topicPartition, until time.Time) {
	if old := s.paused[tp]; old != nil {
		old.timer.Stop() // cannot happen while the partition is paused; kept safe
	}
	p := &pause{}
	p.timer = time.AfterFunc(time.Until(until), func() { s.resume(tp, p) })
	s.paused[tp] = p
}

// resume is the timer of a pause: the head record of tp is due.
func (s *session) resume(tp topicPartition, p *pause) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.paused[tp] != p {
		return // revoked, lost or stopped meanwhile
	}
	delete(s.paused, tp)
	s.countPaused()
	s.cons.ResumeFetchPartitions(map[string][]int32{tp.topic: {tp.partition}})
}

// holdRecord readies r, a record about to be held, and returns its size as
// the hold budget counts it: keys, values and headers. Its kretry header
// keys become the package's constants, so that the copies kgo allocated for
// them are freed while it waits. Each record is sized once, when it starts
// to wait: read.size keeps it.
func holdRecord(r *kgo.Record) int {
	n := len(r.Key) + len(r.Value)
	for j := range r.Headers {
		h := &r.Headers[j]
		h.Key = internKey(h.Key)
		n += len(h.Key) + len(h.Value)
	}
	return n
}
