package consumer

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/config"
	"github.com/kretry/kretry/internal/backlog"
)

// Exactly-once mode (exactly_once: true).
//
// The session runs one Kafka transaction per commit interval: it polls and
// hands records to the workers as in at-least-once mode, and the workers'
// forwards (to a tier or the DLQ) and the handlers' outputs (Emit) are
// produced in the transaction. At the boundary the session stops polling,
// waits until every record polled in the transaction is done (quiesce),
// and ends the transaction with the offsets of everything polled
// (kgo.GroupTransactSession): so every record produced in a committed
// transaction belongs to a committed offset, and an aborted transaction
// (a forward or an output that failed, a rebalance during it, a crash)
// leaves nothing visible to read_committed readers, and the records are
// fetched and handled again. Rebalances wait for the boundary
// (BlockRebalanceOnPoll is released only there).

// txnEndTimeout bounds ending a transaction (flush, offsets, EndTxn).
const txnEndTimeout = 30 * time.Second

// txnAbortBackoff and txnAbortMaxBackoff pace the retries of an abort after
// a transaction's end failed.
const (
	txnAbortBackoff    = 500 * time.Millisecond
	txnAbortMaxBackoff = 10 * time.Second
)

// txnState is what the session tracks of the open transaction.
type txnState struct {
	// undone counts the records handed to workers in the open transaction
	// that are not done yet; idle is signalled (cap 1) when it drops to 0.
	undone atomic.Int64
	idle   chan struct{}
	// room is signalled (cap 1) when undone drops below limit, the most
	// records the open transaction may have undone while it polls (see
	// roomInTxn); handed counts those handed out in it, and rate is what
	// the last transaction did a second (poll's goroutine only).
	room   chan struct{}
	limit  atomic.Int64
	handed int64
	rate   float64
	// broken is set when a record of the open transaction cannot be done
	// in it (a failed produce, a worker stopped with records left): the
	// transaction must abort.
	broken atomic.Bool
	// backlog holds the partitions that have more records to fetch than
	// the open transaction's polls brought (see idleNow; poll's goroutine
	// only).
	backlog backlog.Partitions
	// rebalances counts the revoke and lost callbacks (see pollTxn).
	rebalances atomic.Uint64
	// open is whether a transaction was begun and not ended, begun when,
	// and carried whether records were handed out in it (poll's goroutine
	// only).
	open    bool
	begun   time.Time
	carried bool
}

// transactionalID is the consumer's transactional id:
// kretry/<group>/consumer/<instance id>, or a random instance when the
// config has none (KIP-447 fencing through the group keeps a zombie of
// another id from committing).
func (s *session) transactionalID() (string, error) {
	instance := s.c.cfg.InstanceID
	if instance == "" {
		var b [8]byte
		if _, err := rand.Read(b[:]); err != nil {
			return "", fmt.Errorf("consumer: a random transactional id: %w", err)
		}
		instance = hex.EncodeToString(b[:])
	}
	return "kretry/" + s.c.cfg.Group + "/consumer/" + instance, nil
}

// recordsDone counts n records of the open transaction done.
func (t *txnState) recordsDone(n int64) {
	left := t.undone.Add(-n)
	if left == 0 {
		select {
		case t.idle <- struct{}{}:
		default:
		}
	}
	if lim := t.limit.Load(); left < lim && left+n >= lim {
		select {
		case t.room <- struct{}{}:
		default:
		}
	}
}

// Bounds of the records a transaction has undone while it polls: a first
// transaction's, and the least.
const (
	txnFirstLimit = pollRecords
	txnMinLimit   = 100
)

// txnLimit is the most records the next transaction may have handed out and
// not done while it polls: what the workers did in half a commit interval
// in the last transaction (handed out over its length), at least
// txnMinLimit. At the boundary the transaction waits until all of them are
// done, and what it forwarded becomes visible only then: with two commit
// intervals' worth, a busy transaction lasted three (B2eos: 1.5 to 3.2 s with
// a commit interval of 1s, up to 150,000 records undone at the boundary), so
// the relay read a 1s tier's forwards after they fell due.
// Every record handed out must be done before the transaction ends, and an
// abort hands them all out again: in a backlog, polling for a commit
// interval handed out far more than the workers did in one (a transaction
// of the fault suite's leader kills held 8s of handling, all of it handled
// again when the group was lost at its end).
func (t *txnState) txnLimit(interval time.Duration) int64 {
	if t.rate == 0 {
		return txnFirstLimit
	}
	return max(int64(t.rate*interval.Seconds()/2), txnMinLimit)
}

// txnLearnAfter is how long a transaction that follows none with a rate
// (see learnLimit) runs before its own rate sets its limit.
const txnLearnAfter = 20 * time.Millisecond

// learnLimit sets, in a transaction that follows none that measured a rate
// (the session's first, and those after it that ended before one did), the
// limit from what the workers did so far in it: half a commit interval at
// that rate, at least txnFirstLimit. With txnFirstLimit alone, the first
// transaction of a busy consumer kept its workers short of records: B2eos's
// exactly-once runs failed 60,000 to 65,000 records in their first second,
// where the at-least-once runs failed 104,000 to 241,000.
func (t *txnState) learnLimit(interval time.Duration, now time.Time) {
	elapsed := now.Sub(t.begun)
	if t.rate != 0 || elapsed < txnLearnAfter {
		return
	}
	done := t.handed - t.undone.Load()
	t.limit.Store(max(int64(float64(done)/elapsed.Seconds()*interval.Seconds()/2), txnFirstLimit))
}

// roomInTxn waits while the open transaction has limit records or more
// undone: until fewer, the boundary, or ctx; false at the boundary or ctx.
func (t *txnState) roomInTxn(ctx context.Context, boundary time.Time) bool {
	if t.undone.Load() < t.limit.Load() {
		return true
	}
	timer := time.NewTimer(time.Until(boundary))
	defer timer.Stop()
	for t.undone.Load() >= t.limit.Load() {
		select {
		case <-t.room:
		case <-timer.C:
			return false
		case <-ctx.Done():
			return false
		}
	}
	return true
}

// quiesce waits until every record handed out in the open transaction is
// done; false if ctx ended first.
func (t *txnState) quiesce(ctx context.Context) bool {
	for t.undone.Load() > 0 {
		select {
		case <-t.idle:
		case <-ctx.Done():
			return t.undone.Load() <= 0
		}
	}
	return true
}

// pollTxn is poll in exactly-once mode: one transaction per commit
// interval, until ctx is done (shutdownTxn ends the last one).
//
// A rebalance waits for the boundary (AllowRebalance), so its revoke runs
// after End and before the next transaction's first poll returns. kgo's
// transact session then marks the next transaction as rebalanced and aborts
// it at its End, whatever it holds: without restartTxn, every rebalance cost
// a whole transaction of handled records, handled again.
func (s *session) pollTxn(ctx context.Context) {
	s.idle = make(chan struct{}, 1)
	s.room = make(chan struct{}, 1)
	seen := s.rebalances.Load()
txns:
	for ctx.Err() == nil {
		if !s.holdTxn(ctx) { // after a transaction that did not commit (txnhold.go)
			return
		}
		if err := s.txn.Begin(); err != nil {
			s.cl.AllowRebalance()
			if fatalTxnErr(err) {
				s.failTxn("beginning a transaction", err)
			} else {
				s.fail(fmt.Errorf("consumer: beginning a transaction: %w", err))
			}
			return
		}
		s.open, s.begun, s.carried, s.handed = true, time.Now(), false, 0
		s.limit.Store(s.txnLimit(s.c.commitInterval))
		boundary := s.begun.Add(s.c.commitInterval)
		handed := false // anything handed out in this transaction
		for first := true; ctx.Err() == nil && time.Now().Before(boundary) && !s.broken.Load(); first = false {
			s.learnLimit(s.c.commitInterval, time.Now())
			if !s.roomInTxn(ctx, boundary) {
				break
			}
			deadline := boundary
			if handed {
				deadline = s.idleBy(boundary)
			}
			pctx, cancel := context.WithDeadline(ctx, deadline)
			s.c.health.Polling(true)
			fetches := s.cl.PollRecords(pctx, pollRecords)
			s.c.health.Polling(false)
			cancel()
			if fetches.IsClientClosed() {
				return
			}
			if n := s.rebalances.Load(); first && n != seen {
				seen = n
				s.restartTxn(ctx) // drops fetches: kgo rewinds to the committed offsets
				s.cl.AllowRebalance()
				continue txns
			}
			s.backlog.Note(fetches, nil) // before the workers have the records
			s.handOut(fetches)
			s.applyRewinds()
			if fetches.NumRecords() > 0 {
				handed = true
			} else if handed && s.idleNow() {
				break
			}
		}
		if ctx.Err() != nil {
			return
		}
		done := s.quiesce(ctx)
		if d := time.Since(s.begun); done && d > 0 {
			s.rate = float64(s.handed) / d.Seconds()
		}
		s.endTxn(ctx, done)
		seen = s.rebalances.Load() // End forgot the rebalances so far
		s.cl.AllowRebalance()
	}
}

// txnIdleGap is how long a poll waits for records before the session,
// everything it handed out done, takes itself for idle (see idleNow).
const txnIdleGap = 50 * time.Millisecond

// idleBy is when a poll that fetches nothing makes the session idle: after
// txnIdleGap, and not before config.MinCommitInterval into the transaction,
// nor after its boundary.
func (s *session) idleBy(boundary time.Time) time.Time {
	at := time.Now().Add(txnIdleGap)
	if earliest := s.begun.Add(config.MinCommitInterval); at.Before(earliest) {
		at = earliest
	}
	if boundary.Before(at) {
		return boundary
	}
	return at
}

// idleNow reports whether the open transaction may end before its commit
// interval, after a poll that fetched nothing: every record handed out in
// it is done, no partition has more records to fetch than its polls brought
// (a poll without records is then the round trip of the next fetch, see
// package backlog), and it is at least config.MinCommitInterval old. So
// what a quiet consumer forwarded and emitted becomes visible to
// read_committed readers as soon as it is done, not up to a commit interval
// later, while a busy consumer ends one transaction per commit interval and
// an idle one at most ten a second.
func (s *session) idleNow() bool {
	return s.undone.Load() == 0 && !s.backlog.Behind() && time.Since(s.begun) >= config.MinCommitInterval
}

// restartTxn ends the open transaction before anything was handed out in
// it, because a revoke ran since the last End (see pollTxn).
func (s *session) restartTxn(ctx context.Context) {
	ectx, cancel := context.WithTimeout(context.WithoutCancel(ctx), txnEndTimeout)
	_, err := s.txn.End(ectx, kgo.TryAbort)
	cancel()
	s.open = false
	switch {
	case fatalTxnErr(err):
		s.failTxn("aborting a transaction", err)
	case err != nil:
		s.txnNotCommitted(err)
		s.abortFailedTxn(ctx)
	}
}

// handOut gives each partition's records to its worker; records of a
// partition that is not ours any more are fetched again by its new owner. In
// a transaction a record no worker takes could be committed unhandled: it
// breaks the transaction (at least once, nothing reads broken).
func (s *session) handOut(fetches kgo.Fetches) {
	fetches.EachError(func(topic string, partition int32, err error) {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, kgo.ErrClientClosed) {
			return
		}
		s.log.Error("kretry consumer fetch failed", "topic", topic, "partition", partition, "error", err)
	})
	fetches.EachPartition(func(p kgo.FetchTopicPartition) {
		if len(p.Records) == 0 {
			return
		}
		s.mu.Lock()
		w := s.workers[topicPartition{p.Topic, p.Partition}]
		s.mu.Unlock()
		if w == nil || !w.enqueue(p.Records) {
			s.broken.Store(true)
		}
		s.carried = true
		s.handed += int64(len(p.Records))
	})
}

// endTxn ends the open transaction: with a commit of the offsets of every
// record polled in it when all of them are done (done) and nothing broke
// it, with an abort otherwise, after which kgo rewinds to the committed
// offsets and the records are fetched again.
func (s *session) endTxn(ctx context.Context, done bool) bool {
	s.applyRewinds()
	try := kgo.TryCommit
	if !done || s.broken.Load() {
		try = kgo.TryAbort
	}
	if try == kgo.TryCommit {
		s.awaitJoin(ctx)
		s.awaitPreviousTxn(ctx)
	}
	ectx, cancel := context.WithTimeout(context.WithoutCancel(ctx), txnEndTimeout)
	// Not s.txn.End: a group session lost while the transaction was open
	// (the brokers unreachable for a moment) made End wait txnEndTimeout
	// for a heartbeat that never came, while the open transaction held
	// back every read_committed reader of the partitions it wrote to
	// (internal/txnend).
	committed, err := s.ender.End(ectx, s.txn, try)
	cancel()
	s.open = false
	s.backlog.Reset()
	s.hooks.TxnEnded(committed && err == nil)
	s.broken.Store(false)
	switch {
	case fatalTxnErr(err):
		s.failTxn("ending a transaction", err)
	case err != nil:
		s.txnNotCommitted(err)
		s.abortFailedTxn(ctx)
	case !committed && try == kgo.TryCommit:
		s.txnNotCommitted(nil)
		s.log.Info("kretry consumer transaction aborted (a rebalance, or a coordinator that did not answer); its records will be handled again", "group", s.c.cfg.Group)
	case !committed && done:
		s.txnNotCommitted(nil) // a forward or an output failed in it
		s.log.Info("kretry consumer transaction aborted; its records will be handled again", "group", s.c.cfg.Group)
	case !committed:
		s.log.Info("kretry consumer transaction aborted; its records will be handled again", "group", s.c.cfg.Group)
	case s.carried:
		s.txnCommittedAgain() // not an empty one: kgo ends it without asking the brokers
	}
	return committed
}

// awaitJoin waits, before the open transaction commits, until no join and
// sync of the group is in flight. kgo's End builds the transaction's offset
// commit with the member's generation when End starts, holds it while a
// join and sync are in flight, then sends it with that generation, which
// the join has ended: the brokers refuse it (ILLEGAL_GENERATION), the
// transaction aborts, and every record it handled is handled again. Such a
// join is common in a rebalance: kgo holds a rejoin until AllowRebalance at
// a boundary, but not the JoinGroup then sent, which the brokers answer once
// every member has rejoined at its own boundary; the next transaction runs
// meanwhile (65 to 1,047 records handled twice a run of the chaos suite's
// rebalance storm). After the join, End commits with the new generation.
// The offsets of partitions the join moves away are still this member's to
// commit: a cooperative rebalance gives them to another member only after
// this one has revoked them, after End, and KIP-447 holds that member's
// offset fetch until the transaction has ended.
//
// CommitOffsetsSync waits for the join and sync in flight as End's commit
// does; given only a topic without partitions it commits nothing (kgo drops
// empty topics). The wait ends MinTransactionMargin before the transaction
// times out (a member the brokers wait for until its session times out);
// End then aborts, as it did without the wait.
func (s *session) awaitJoin(ctx context.Context) {
	deadline := s.begun.Add(s.c.cfg.TransactionTimeout() - config.MinTransactionMargin)
	wctx, cancel := context.WithDeadline(context.WithoutCancel(ctx), deadline)
	defer cancel()
	s.cl.CommitOffsetsSync(wctx, map[string]map[int32]kgo.EpochOffset{s.c.cfg.Topics[0].Name: {}}, nil)
}

// awaitPreviousTxn waits, before the open transaction commits, until the
// brokers have completed the previous one. EndTxn returns once the
// coordinator has decided a transaction (PrepareCommit, PrepareAbort); it
// writes the markers after, and until it has, it refuses to add a partition
// to the next transaction (CONCURRENT_TRANSACTIONS). A produce that meets
// this is retried by kgo, but End's TxnOffsetCommit is not: with KIP-890's
// transactions (Kafka 4) it adds the group's offsets partition itself, and
// kgo takes CONCURRENT_TRANSACTIONS in its answer for an abort. So a
// transaction that produced nothing and ended soon after the previous one
// (a quick transaction after a rebalance, the last one at shutdown, or any
// on a loaded broker whose markers lag: the broker itself retries only
// briefly) aborted, and every record it handled was handled again (10 to
// 75 records a run of TestExactlyOnceRebalanceStormHandlesNothingTwice
// under two CPU burners; at shutdown, "the last transaction did not
// commit").
//
// The wait asks the transaction coordinator to describe the transaction
// (one round trip, which finds it completed or already ongoing when
// the markers are written) and ends at the same deadline as awaitJoin's; a
// describe that fails or cannot tell does not wait (End then commits or
// aborts as without it).
func (s *session) awaitPreviousTxn(ctx context.Context) {
	deadline := s.begun.Add(s.c.cfg.TransactionTimeout() - config.MinTransactionMargin)
	wctx, cancel := context.WithDeadline(context.WithoutCancel(ctx), deadline)
	defer cancel()
	adm := kadm.NewClient(s.cl)
	for backoff := txnMarkersBackoff; ; backoff = min(2*backoff, txnMarkersMaxBackoff) {
		txns, err := adm.DescribeTransactions(wctx, s.txnID)
		if err != nil {
			return
		}
		if t, ok := txns[s.txnID]; !ok || t.Err != nil || (t.State != "PrepareCommit" && t.State != "PrepareAbort") {
			return
		}
		t := time.NewTimer(backoff)
		select {
		case <-wctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// txnMarkersBackoff and txnMarkersMaxBackoff pace awaitPreviousTxn's
// describes while the previous transaction's markers are being written.
const (
	txnMarkersBackoff    = 10 * time.Millisecond
	txnMarkersMaxBackoff = 200 * time.Millisecond
)

// fatalTxnErr reports whether err means this instance may not go on
// producing with its transactional id.
func fatalTxnErr(err error) bool {
	return errors.Is(err, kerr.ProducerFenced) || errors.Is(err, kerr.InvalidProducerEpoch) ||
		errors.Is(err, kerr.TransactionalIDAuthorizationFailed)
}

// producerStateErr reports whether a produce error is about the producer,
// not the record: its transactional id taken or its transaction ended by the
// brokers (fatalTxnErr), or its transaction or sequence state lost. The
// transaction aborts, and its end says whether the consumer was fenced
// (failTxn); the record is written again, not dead-lettered for it (a worker
// of the fault suite's leader kills redirected such forwards to the DLQ,
// which failed alike, and Run stopped).
func producerStateErr(err error) bool {
	return fatalTxnErr(err) || errors.Is(err, kerr.InvalidTxnState) || errors.Is(err, kerr.TransactionAbortable) ||
		errors.Is(err, kerr.InvalidProducerIDMapping) || errors.Is(err, kerr.UnknownProducerID) ||
		errors.Is(err, kerr.OutOfOrderSequenceNumber)
}

// fencedTxnErr reports whether err means the brokers fenced the consumer's
// producer: another producer took its transactional id, or the brokers
// aborted its transaction (the survivors' fence after it lost the group,
// the transaction timeout).
func fencedTxnErr(err error) bool {
	return errors.Is(err, kerr.ProducerFenced) || errors.Is(err, kerr.InvalidProducerEpoch)
}

// failTxn ends the session on an error of fatalTxnErr while doing what.
// Without instance_id a fence ends only the session: its transactional id
// was its own (random), so nobody else holds it, and Run starts a new
// session with a new id (fenced). With instance_id another instance with
// the same id may really run, and taking the id back would make the two
// fence each other: Run stops with the error, as on every other such error.
func (s *session) failTxn(what string, err error) {
	err = fmt.Errorf("%s: %w", what, err)
	if s.c.cfg.InstanceID == "" && fencedTxnErr(err) {
		s.fenced = err
		s.cancel()
		return
	}
	s.fail(s.fencedError(err))
}

// fencedError says why the consumer may not go on with its transactional
// id, naming every cause the brokers' error can stand for.
func (s *session) fencedError(err error) error {
	return fmt.Errorf("consumer: transactional id %s: %w: another consumer with the transactional id of this one took over "+
		"(give each instance its own instance_id), the id is not authorized, the consumer lost its group for longer than "+
		"session_timeout with a transaction open and the survivors fenced it, or the transaction was open longer than "+
		"the transaction timeout (%v: three times session_timeout, at least commit_interval + %v) and the brokers aborted it "+
		"(make handlers faster, or raise session_timeout)", s.txnID, err, s.c.cfg.TransactionTimeout(), config.MinTransactionMargin)
}

// abortFailedTxn aborts a transaction whose End failed (its flush ran out of
// time, the brokers unreachable): the client may still be in it, and Begin
// fails until it is aborted. It retries with a backoff until the abort
// succeeds or Run stops. A transaction whose end failed before the brokers
// had its EndTxn leaves nothing visible, and its records are fetched and
// handled again; one whose EndTxn the brokers had may have committed, so
// fetching resumes from the offsets the brokers hold (resyncOffsets).
func (s *session) abortFailedTxn(ctx context.Context) {
	backoff := txnAbortBackoff
	for {
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), txnEndTimeout)
		_, err := s.txn.End(actx, kgo.TryAbort)
		cancel()
		switch {
		case err == nil:
			s.log.Info("kretry consumer aborted the failed transaction; it goes on from the offsets committed on the brokers", "group", s.c.cfg.Group)
			s.mu.Lock()
			closing := s.closing
			s.mu.Unlock()
			if !closing {
				s.resyncOffsets(ctx) // the failed end may have committed
			}
			return
		case fatalTxnErr(err):
			s.failTxn("aborting a failed transaction", err)
			return
		}
		s.log.Error("kretry consumer could not abort the failed transaction; retrying", "group", s.c.cfg.Group, "in", backoff, "error", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, txnAbortMaxBackoff)
	}
}

// shutdownTxn is shutdown in exactly-once mode: the records handed out get
// the grace period to be done, then the transaction commits if all are,
// and aborts otherwise; the group is left.
func (s *session) shutdownTxn() error {
	s.mu.Lock()
	s.closing = true
	s.mu.Unlock()
	grace := s.c.opts.grace
	if s.fenced != nil {
		grace = 0 // nothing of the transaction can commit
	}
	qctx, cancel := context.WithTimeout(s.base, grace)
	done := s.quiesce(qctx)
	cancel()
	s.stopWorkers(nil, 0)
	var err error
	// A failed end is aborted once more at most (abortFailedTxn stops with
	// ectx); an abort that does not get through leaves the transaction to
	// time out on the broker, invisible.
	ectx, ecancel := context.WithTimeout(s.base, txnEndTimeout)
	defer ecancel()
	// Run may have stopped between two transactions: nothing to end then.
	if s.open && !s.endTxn(ectx, done) && done {
		err = errors.New("consumer: the last transaction did not commit at shutdown; its records will be handled again")
	}
	s.cl.CloseAllowingRebalance()
	return err
}
