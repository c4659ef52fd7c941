package dlq

import (
	"cmp"
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/time/rate"

	"github.com/kretry/kretry/internal/safetext"
)

// A replay keeps its produces in flight within these bounds: past either,
// it waits for the oldest acknowledgement before it reads on.
const (
	replayMaxInFlight      = 1000
	replayMaxInFlightBytes = 16 << 20
)

// replayCommitEvery is how often a running replay commits the progress its
// acknowledgements made; it also commits when a partition is done and when
// it stops.
const replayCommitEvery = time.Second

// pending is a selected record on its way to its outcome: a replayed
// record's produce, or a skip (or a dry run's outcome) that waits for the
// records before it, so that outcomes are reported in the order met.
type pending struct {
	ev   ReplayEvent
	v    verdict
	out  *kgo.Record   // the produced record; nil when not produced
	size int           // out's key, value and headers
	done chan struct{} // closed with the acknowledgement; nil when not produced
	err  error         // the produce's, set before done is closed
}

func (p *pending) final() bool {
	if p.done == nil {
		return true
	}
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// replayRun is the produce side of one Replay: the records in flight, in the
// order the walk met them, and the progress their acknowledgements allow.
type replayRun struct {
	r      *Reader
	cl     *kgo.Client // produces the replayed records
	c      replayCfg
	sum    *ReplaySummary
	meta   string         // the progress commits' metadata
	counts map[string]int // target topic → partition count
	lim    *rate.Limiter  // nil: no cap

	queue []*pending
	bytes int // of the produces in queue

	// acked is, per DLQ partition, the offset after the newest record that
	// is final together with every selected record before it: progress may
	// go that far.
	acked map[int32]int64
	// failed holds the partitions whose progress stops before a refused
	// produce.
	failed     map[int32]bool
	err        error // the first refused produce or failed commit
	lastCommit time.Time
	txn        *replayTxn // the open transaction of an exactly-once replay; nil otherwise
}

// add takes the outcome the walk gave rec: a replay is produced, a skip
// waits for the records in flight before it. It returns the error that
// stops the walk: a produce or commit that failed, or ctx cancelled while
// the rate cap held the record back.
func (run *replayRun) add(ctx context.Context, rec *Record, v verdict) error {
	if run.err != nil {
		return run.err
	}
	p := &pending{ev: ReplayEvent{Record: rec, Outcome: v.out, Target: v.target, Detail: v.detail}, v: v}
	switch {
	case v.out != Replayed:
	case run.c.dryRun:
		p.ev.Outcome = WouldReplay
	default:
		if run.lim != nil {
			if err := run.wait(ctx); err != nil {
				return err // not produced
			}
		}
		run.produce(ctx, p)
	}
	run.queue = append(run.queue, p)
	for len(run.queue) > 0 && (run.queue[0].final() || len(run.queue) >= replayMaxInFlight || run.bytes >= replayMaxInFlightBytes) {
		run.settle()
	}
	if run.txn != nil && run.err == nil && time.Since(run.lastCommit) >= replayCommitEvery {
		// A transaction a second: what it produced becomes visible with
		// its progress.
		run.drain()
		run.commitAcked()
		run.endTxn(true)
	}
	return run.err
}

// wait holds the next produce back for the rate cap, and meanwhile settles
// the records in flight as they are acknowledged, so that their outcomes are
// reported (and a cancel is seen) without waiting for the cap.
func (run *replayRun) wait(ctx context.Context) error {
	res := run.lim.Reserve() // a burst of 1 and one token: always possible
	d := res.Delay()
	if d == 0 {
		return nil
	}
	if run.txn != nil && time.Since(run.lastCommit)+d >= replayCommitEvery {
		// Commit what the transaction holds rather than keep it open
		// through the wait (the broker aborts one open too long).
		run.drain()
		run.commitAcked()
		run.endTxn(true)
		if run.err != nil {
			res.Cancel()
			return run.err
		}
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		for len(run.queue) > 0 && run.queue[0].final() {
			run.settle()
		}
		var acked <-chan struct{} // nil, never ready, when nothing is in flight
		if len(run.queue) > 0 {
			acked = run.queue[0].done
		}
		if run.err == nil {
			select {
			case <-timer.C:
				return nil
			case <-ctx.Done():
			case <-acked:
				continue
			}
		}
		res.Cancel()
		return cmp.Or(run.err, ctx.Err())
	}
}

// produce starts p's produce. The record is seen through even when ctx is
// cancelled: its acknowledgement decides whether the progress may pass it.
func (run *replayRun) produce(ctx context.Context, p *pending) {
	rec, target := p.ev.Record, p.ev.Target
	out := replayed(rec, p.v)
	if n := run.counts[target]; out.Partition >= 0 && n > 0 {
		out.Partition %= int32(n)
	}
	p.out, p.done = out, make(chan struct{})
	if run.txn != nil {
		run.txn.produced = true
	}
	p.size = len(out.Key) + len(out.Value)
	for _, h := range out.Headers {
		p.size += len(h.Key) + len(h.Value)
	}
	run.bytes += p.size
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), run.c.produceTimeout)
	run.cl.Produce(pctx, out, func(_ *kgo.Record, err error) {
		cancel()
		if err != nil {
			p.err = fmt.Errorf("replaying %s partition %d offset %d to %s: %w", run.r.topic, rec.Partition, rec.Offset, safetext.Text(target), err)
		}
		close(p.done)
	})
}

// settle waits for the oldest record in flight and takes its outcome: it
// is counted and reported, and the progress of its partition passes it,
// unless its produce was refused.
func (run *replayRun) settle() {
	p := run.queue[0]
	if p.done != nil {
		<-p.done
	}
	run.queue[0] = nil
	run.queue = run.queue[1:]
	run.bytes -= p.size
	ev, sum := p.ev, run.sum
	rec := ev.Record
	switch {
	case p.err != nil:
		// Records after it may still be acknowledged; the progress stays
		// before it, so a new run replays them again rather than lose it.
		run.failed[rec.Partition] = true
		run.fail(p.err)
		return
	case ev.Outcome == Replayed || ev.Outcome == WouldReplay:
		if p.out != nil {
			ev.Partition, ev.Offset = p.out.Partition, p.out.Offset
			run.r.cfg.logger.Debug("replayed", "topic", run.r.topic, "partition", rec.Partition, "offset", rec.Offset,
				"to", ev.Target, "to_partition", ev.Partition, "to_offset", ev.Offset)
		}
	}
	if !run.failed[rec.Partition] {
		run.acked[rec.Partition] = rec.Offset + 1
	}
	final := func() {
		if ev.Outcome == Replayed || ev.Outcome == WouldReplay {
			sum.Replayed++
			sum.ByTarget[ev.Target]++
		} else {
			sum.Skips = append(sum.Skips, skipOf(rec, p.v))
		}
		if run.c.onRecord != nil {
			run.c.onRecord(ev)
		}
	}
	if run.txn != nil {
		// Final once its transaction commits.
		run.txn.outcomes = append(run.txn.outcomes, final)
		return
	}
	final()
	if time.Since(run.lastCommit) >= replayCommitEvery {
		run.commitAcked()
	}
}

// done is the walk's: partition p was examined up to at. Once what is in
// flight is final, the progress goes to at, or only as far as the
// acknowledgements allow when a produce of p was refused.
func (run *replayRun) done(p int32, at int64) error {
	run.drain()
	if run.failed[p] {
		run.commitAcked()
		return run.err
	}
	run.commit(p, at)
	run.endTxn(true)
	return run.err
}

// finish sees every record in flight through and commits what they allow.
func (run *replayRun) finish() error {
	run.drain()
	run.commitAcked()
	run.endTxn(false)
	return run.err
}

func (run *replayRun) drain() {
	for len(run.queue) > 0 {
		run.settle()
	}
}

// commitAcked commits every partition's progress that acknowledgements
// moved past what is committed.
func (run *replayRun) commitAcked() {
	run.lastCommit = time.Now()
	for p, at := range run.acked {
		if at > run.sum.Progress[p] {
			run.commit(p, at)
		}
	}
}

// replayTxn is the open transaction of an exactly-once replay: the records
// produced in it, the progress to commit with them, and the outcomes that
// become final when it commits.
type replayTxn struct {
	id       string // the transactional id
	topicID  [16]byte
	produced bool
	progress map[int32]int64
	outcomes []func()
}

// endTxn commits the open transaction with its progress (nothing in
// flight), reports its outcomes, and begins the next when next is set. A
// refused produce or commit aborts it: its records are never visible to a
// read_committed consumer, and the progress stays where it was committed.
func (run *replayRun) endTxn(next bool) {
	t := run.txn
	if t == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), run.c.produceTimeout)
	defer cancel()
	progress := map[int32]int64{}
	for p, at := range t.progress {
		if at > run.sum.Progress[p] {
			progress[p] = at
		}
	}
	err := run.err
	switch {
	case err != nil:
	case !t.produced:
		// Nothing produced in it: a plain commit of the progress is exact.
		for p, at := range progress {
			if err = run.r.commit(ctx, run.c.group, p, at, run.meta); err != nil {
				break
			}
		}
		if err == nil {
			err = run.cl.EndTransaction(ctx, kgo.TryCommit) // ends nothing on the broker
		}
	default:
		if err = run.cl.Flush(ctx); err == nil {
			err = run.r.txnCommitProgress(ctx, run.cl, t, run.c.group, progress, run.meta)
		}
		if err == nil {
			err = run.cl.EndTransaction(ctx, kgo.TryCommit)
		}
	}
	if err != nil {
		run.fail(err)
		if aerr := run.cl.EndTransaction(ctx, kgo.TryAbort); aerr != nil {
			run.r.cfg.logger.Warn("kretry dlq replay: aborting the transaction failed; the broker aborts it at its timeout",
				"transactional_id", t.id, "error", aerr)
		}
		t.outcomes, t.progress = nil, map[int32]int64{}
		return
	}
	for p, at := range progress {
		run.sum.Progress[p] = at
	}
	for _, f := range t.outcomes {
		f()
	}
	t.produced, t.outcomes, t.progress = false, nil, map[int32]int64{}
	run.lastCommit = time.Now()
	if next {
		if err := run.cl.BeginTransaction(); err != nil {
			run.fail(fmt.Errorf("beginning a replay transaction (%s): %w", t.id, err))
		}
	}
}

func (run *replayRun) commit(p int32, at int64) {
	if done, ok := run.sum.Progress[p]; run.c.dryRun || ok && done >= at {
		return
	}
	if run.txn != nil {
		// Committed with the transaction (endTxn).
		run.txn.progress[p] = max(run.txn.progress[p], at)
		return
	}
	if err := run.r.commit(context.Background(), run.c.group, p, at, run.meta); err != nil {
		run.fail(err)
		return
	}
	run.sum.Progress[p] = at
}

func (run *replayRun) fail(err error) {
	if run.err == nil {
		run.err = err
	}
}
