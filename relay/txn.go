package relay

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kretry/kretry/internal/resync"
)

// TransactionalID returns the transactional id the relay uses in the
// exactly-once mode, kretry/<relay group>/relay/<instance>, and "" when
// exactly-once is off (the relay then uses none). Without WithInstanceID
// the instance is random, and a new one after each fence (see Run).
func (r *Relay) TransactionalID() string {
	if !r.cfg.exactlyOnce {
		return ""
	}
	r.idMu.Lock()
	defer r.idMu.Unlock()
	return "kretry/" + r.cfg.group + "/relay/" + r.cfg.instanceID
}

// mayRejoin reports whether Run may start a new session after err: a
// fenced transaction of a relay without WithInstanceID, whose id nobody else
// holds. With an instance id another instance with the same id may really
// run, and taking the id back would make the two fence each other.
func (r *Relay) mayRejoin(err error) bool {
	return r.randomID && (errors.Is(err, kerr.ProducerFenced) || errors.Is(err, kerr.InvalidProducerEpoch))
}

// transactionTimeout is the relay's default transaction timeout (the
// producer options, config.Config.ProducerOpts, may set another): a
// transaction spans about a commit interval, then waits for its re-feeds'
// acknowledgements.
func (r *Relay) transactionTimeout() time.Duration {
	return min(r.cfg.commitInterval+r.cfg.deliveryTimeout+10*time.Second, 15*time.Minute)
}

// mark marks recs, done in offset order: for commit (at least once), or in
// the open transaction (exactly once).
func (s *session) mark(recs []*kgo.Record) {
	if len(recs) == 0 {
		return
	}
	if s.txn == nil {
		s.cons.MarkCommitRecords(recs...)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range recs {
		tp := topicPartition{r.Topic, r.Partition}
		if m, ok := s.marks[tp]; !ok || m.Offset <= r.Offset {
			s.marks[tp] = kgo.EpochOffset{Epoch: r.LeaderEpoch, Offset: r.Offset + 1}
		}
	}
	s.dirty.Store(true)
}

// errNothingMarked stops a transaction's offset commit that would carry no
// offset of this relay's: the transaction aborts.
var errNothingMarked = errors.New("relay: no offsets marked in the transaction")

// endTxn ends the open transaction and begins the next. With commit, it
// waits for the re-feeds in flight (bounded by ctx), marks them, and
// commits them with the marked tier offsets (kgo.PreTxnCommitFnContext
// writes the marks into the commit: kgo would commit every polled offset,
// the held records' too). Otherwise, or when anything failed or a rebalance
// intervened, it aborts: kgo rewinds every partition to its committed
// offset, and the relay drops what it held, paused and marked. With next it
// begins the next transaction; only an error doing that is returned.
func (s *session) endTxn(ctx context.Context, commit, next bool) error {
	if commit {
		if err := s.prod.Flush(ctx); err != nil {
			commit = false
		}
	}
	s.settleAll(nil, ctx.Done())
	s.mu.Lock()
	marks := maps.Clone(s.marks)
	commit = commit && !s.failed.Load() && len(s.inflight) == 0
	s.mu.Unlock()
	rewrite := func(req *kmsg.TxnOffsetCommitRequest) error {
		n := 0
		for i := range req.Topics {
			t := &req.Topics[i]
			ps := t.Partitions[:0]
			for _, p := range t.Partitions {
				if m, ok := marks[topicPartition{t.Topic, p.Partition}]; ok {
					p.Offset, p.LeaderEpoch = m.Offset, m.Epoch
					ps = append(ps, p)
				}
			}
			t.Partitions = ps
			n += len(ps)
		}
		req.Topics = slices.DeleteFunc(req.Topics, func(t kmsg.TxnOffsetCommitRequestTopic) bool { return len(t.Partitions) == 0 })
		if n == 0 {
			return errNothingMarked
		}
		return nil
	}
	try := kgo.TryAbort
	if commit && len(marks) > 0 {
		try = kgo.TryCommit
	}
	// Not s.txn.End: a group session lost while the transaction was open
	// (the brokers unreachable for a moment) made End wait for ctx, the
	// delivery timeout, for a heartbeat that never came, while the open
	// transaction held back every read_committed reader of the main
	// partitions it re-fed to (internal/txnend).
	committed, err := s.ender.End(kgo.PreTxnCommitFnContext(ctx, rewrite), s.txn, try)
	s.doomed.Store(false)
	s.broken = false
	if err != nil && !errors.Is(err, errNothingMarked) {
		if fenced(err) {
			return s.r.fencedError(err)
		}
		s.log.Warn("kretry relay's transaction ended with an error; its re-feeds are aborted and re-fed again", "error", err)
		s.broken = true // ended or not: ended again (a no-op when it did) before the next begins
		s.unconfirmed = true
	} else if s.unconfirmed {
		// The failed end may have committed (see package resync).
		if rerr := resync.Committed(ctx, s.cons, s.r.cfg.group); rerr != nil {
			s.log.Warn("kretry relay could not read its committed offsets after a failed transaction; it tries again", "error", rerr)
			s.broken = true
		} else {
			s.unconfirmed = false
		}
	}
	s.hooks.TxnEnded(committed)
	if !committed {
		s.resetAfterAbort()
	} else {
		s.mu.Lock()
		clear(s.marks)
		s.mu.Unlock()
	}
	s.dirty.Store(false)
	s.failed.Store(false)
	s.lastEnd = time.Now()
	s.backlog.Reset()
	if !next || s.broken || s.hard.Err() != nil {
		return nil // shutting down, or ended again after a backoff
	}
	if err := s.txn.Begin(); err != nil {
		if fenced(err) {
			return s.r.fencedError(err)
		}
		s.log.Warn("kretry relay could not begin a transaction; it tries again", "error", err)
		s.broken = true
	}
	return nil
}

// fencedError says why the relay may not go on with its transactional id,
// naming every cause the brokers' error can stand for: they answer alike
// when another producer took the id and when they aborted a transaction open
// past the transaction timeout.
func (r *Relay) fencedError(err error) error {
	return fmt.Errorf("relay: transactional id %s: %w: another relay instance runs with the same instance id "+
		"(give each its own), the id is not authorized, the relay lost its group for longer than its session timeout "+
		"with a transaction open and the survivors fenced it, or a transaction was open longer than the transaction "+
		"timeout and the brokers aborted it (a broker or network stall longer than the delivery timeout)",
		r.TransactionalID(), err)
}

// fenced reports whether err says the relay may not go on producing with
// its transactional id: this relay is a zombie and must stop.
func fenced(err error) bool {
	return errors.Is(err, kerr.ProducerFenced) || errors.Is(err, kerr.InvalidProducerEpoch) ||
		errors.Is(err, kerr.TransactionalIDAuthorizationFailed)
}

// idleGap is how far ahead nothing held may fall due for the relay to be
// idle (see idle): an end takes a few round trips, and a re-feed due while
// it runs waits for it.
const idleGap = 50 * time.Millisecond

// idle reports whether the open transaction may end before its commit
// interval: the last poll fetched nothing, no partition it re-feeds has
// more records to fetch than its polls brought (a poll without records is
// then the round trip of the next fetch, see package backlog), no held
// record falls due within idleGap, and the last end is at least
// minCommitInterval ago. So a quiet
// relay's re-feeds become visible to read_committed readers as soon as they
// are acknowledged, not up to a commit interval later, while a busy relay
// ends one transaction per commit interval and an idle one at most ten a
// second.
func (s *session) idle(fetched bool) bool {
	if fetched || s.backlog.Behind() || time.Since(s.lastEnd) < minCommitInterval {
		return false
	}
	soon := time.Now().Add(idleGap)
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, h := range s.held {
		if h.due.Before(soon) {
			return false
		}
	}
	return true
}

// noteBacklog notes, after a poll was handled, which partitions it re-feeds
// have more committed records to fetch (see package backlog): one neither
// paused nor holding records not yet due.
func (s *session) noteBacklog(fetches kgo.Fetches) {
	if s.txn == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.backlog.Note(fetches, func(topic string, partition int32) bool {
		tp := topicPartition{topic, partition}
		_, held := s.held[tp]
		return held || s.paused[tp] != nil || s.holdPaused[tp]
	})
}

// endTxnWithin is endTxn while running: within the delivery timeout, then
// the next transaction begins. Not within Run's ctx, which shutting down
// cancels: an end cut short leaves the transaction open on the brokers,
// holding back the read_committed readers of every partition it wrote to
// until the brokers time it out (the clients' context, hard, bounds it).
func (s *session) endTxnWithin(commit bool) error {
	ectx, cancel := context.WithTimeout(s.hard, s.r.cfg.deliveryTimeout)
	defer cancel()
	return s.endTxn(ectx, commit, true)
}

// resetAfterAbort drops what the relay holds, pauses and marks after an
// aborted transaction: kgo has rewound every partition to its committed
// offset, so all of it is fetched again.
func (s *session) resetAfterAbort() {
	s.mu.Lock()
	clear(s.marks)
	clear(s.inflight)
	clear(s.failures)
	all := map[string][]int32{}
	for tp := range s.held {
		all[tp.topic] = append(all[tp.topic], tp.partition)
	}
	for tp := range s.paused {
		all[tp.topic] = append(all[tp.topic], tp.partition)
	}
	for tp := range s.holdPaused {
		all[tp.topic] = append(all[tp.topic], tp.partition)
	}
	s.mu.Unlock()
	s.release(s.cons, all)
}
