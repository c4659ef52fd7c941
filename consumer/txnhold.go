package consumer

import (
	"context"
	"errors"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Exactly once: after a transaction that was to commit did not (its end
// failed, a forward or an output in it failed, or kgo aborted it at its end),
// the next transaction hands out no record until one can commit again.
// Without the hold, a coordinator failing over (a broker killed) made every
// transaction of the outage abort: each handed out a commit interval of
// records, whose handlers ran, and aborted, and the records were handled
// again, over and over (10,610 handler calls repeated in one run of the
// fault suite's leader kills, bound 5,571).
//
// The hold waits a pause that grows with the failures in a row (none after
// the first: a one-off, such as an EndTxn's answer lost, costs nothing),
// then until the transaction coordinator of the consumer's transactional id
// and the group's coordinator both answer (probeTxn). Every transaction
// needs both: InitProducerID, AddPartitionsToTxn and EndTxn go to the one,
// TxnOffsetCommit to the other. The consumer polls nothing meanwhile;
// rebalances go on (it is between transactions), and Run stops within its
// bounds. A probe that cannot tell (brokers too old to describe
// transactions, a denied describe) lets the transaction through, and so does
// a hold of txnHoldTryAfter, so that the hold never outlasts an outage.
const (
	txnHoldMaxPause  = 5 * time.Second        // the longest pause before the probes
	txnHoldProbe     = 200 * time.Millisecond // the first wait between probes
	txnHoldMaxProbe  = 2 * time.Second        // the longest
	txnProbeTimeout  = 5 * time.Second        // bounds one probe
	txnHoldTryAfter  = time.Minute            // a hold lets a transaction through at least this often
	txnFailedLogStep = 30 * time.Second       // at most one line a step while transactions keep failing
)

// txnHold is what the session knows of the transactions that did not commit
// in a row (poll's goroutine only).
type txnHold struct {
	failures int       // transactions in a row that were to commit and did not
	since    time.Time // when the first of them ended
	failedAt time.Time // when the last ended
	probed   bool      // the hold let a transaction through since the last
	// endErrs counts the ends that failed with an error in the row, and
	// unlogged those not yet in a line of the log, last logged when.
	endErrs  int
	unlogged int
	lastErr  error
	logged   time.Time
}

// holdPause is the pause before the probes after n failures in a row:
// none after the first, then txnAbortBackoff doubling up to
// txnHoldMaxPause.
func holdPause(n int) time.Duration {
	if n <= 1 {
		return 0
	}
	d := txnAbortBackoff
	for i := 2; i < n && d < txnHoldMaxPause; i++ {
		d *= 2
	}
	return min(d, txnHoldMaxPause)
}

// txnNotCommitted notes a transaction that was to commit and did not;
// err is why its end failed, nil when it aborted. The first failed end of a
// row is logged at once, the next ones in one line per txnFailedLogStep.
func (s *session) txnNotCommitted(err error) {
	now := time.Now()
	h := &s.hold
	if h.failures == 0 {
		h.since = now
	}
	h.failures++
	h.failedAt = now
	h.probed = false
	if err == nil {
		return
	}
	s.c.metrics.TransactionsFailed.WithLabelValues("consumer", s.c.cfg.Group).Inc()
	h.endErrs++
	h.lastErr = err
	if h.endErrs == 1 {
		h.logged = now
		s.log.Error("kretry consumer transaction failed; its records will be handled again once a transaction can commit "+
			"(while transactions fail, one line every "+txnFailedLogStep.String()+")", "group", s.c.cfg.Group, "error", err)
		return
	}
	h.unlogged++
	s.logHold(now, nil)
}

// logHold logs, once per txnFailedLogStep, how many ends failed since the
// last line and for how long transactions have not committed; probeErr is
// why the last probe failed, if one did.
func (s *session) logHold(now time.Time, probeErr error) {
	h := &s.hold
	if now.Sub(h.logged) < txnFailedLogStep || (h.unlogged == 0 && probeErr == nil) {
		return
	}
	h.logged = now
	args := []any{"group", s.c.cfg.Group, "failed", h.unlogged, "failing_for", now.Sub(h.since).Round(time.Millisecond)}
	if h.lastErr != nil {
		args = append(args, "error", h.lastErr)
	}
	if probeErr != nil {
		args = append(args, "coordinator", probeErr)
	}
	h.unlogged = 0
	s.log.Error("kretry consumer transactions still fail; it hands out no records until its coordinators answer", args...)
}

// txnCommittedAgain ends a row of transactions that did not commit, with an
// INFO line when one of them failed with an error.
func (s *session) txnCommittedAgain() {
	h := &s.hold
	if h.failures == 0 {
		return
	}
	if h.endErrs > 0 {
		s.log.Info("kretry consumer transactions commit again", "group", s.c.cfg.Group,
			"failed", h.endErrs, "not_committed", h.failures, "for", time.Since(h.since).Round(time.Millisecond))
	}
	s.hold = txnHold{}
}

// holdTxn waits, before the next transaction begins, as the hold says (see
// above), once after each transaction that did not commit (transactions
// that hand out nothing, while the consumer is idle, do not end the row);
// false when ctx ended first.
func (s *session) holdTxn(ctx context.Context) bool {
	h := &s.hold
	if h.failures == 0 || h.probed {
		return true
	}
	// Waiting for a coordinator is the loop's idle wait, as a poll is:
	// liveness holds.
	s.c.health.Polling(true)
	defer s.c.health.Polling(false)
	wait := holdPause(h.failures) - time.Since(h.failedAt)
	held := time.Now()
	for backoff := txnHoldProbe; ; backoff = min(2*backoff, txnHoldMaxProbe) {
		if wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return false
			case <-t.C:
			}
		}
		if ctx.Err() != nil {
			return false
		}
		err := s.probeTxn(ctx)
		if err == nil || time.Since(held) >= txnHoldTryAfter {
			h.probed = true
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		s.logHold(time.Now(), err)
		wait = backoff
	}
}

// probeTxn asks the transaction coordinator of the consumer's
// transactional id to describe its transaction, and the group's coordinator
// to describe the group: nil when both answer, or when an answer cannot
// tell (see above).
func (s *session) probeTxn(ctx context.Context) error {
	pctx, cancel := context.WithTimeout(ctx, txnProbeTimeout)
	defer cancel()
	adm := kadm.NewClient(s.cl)
	txns, err := adm.DescribeTransactions(pctx, s.txnID)
	if err == nil {
		if t, ok := txns[s.txnID]; ok {
			err = t.Err
		}
	}
	if unanswered(err) {
		return err
	}
	groups, err := adm.DescribeGroups(pctx, s.c.cfg.Group)
	if err == nil {
		if g, ok := groups[s.c.cfg.Group]; ok {
			err = g.Err
		}
	}
	if unanswered(err) {
		return err
	}
	return nil
}

// unanswered reports whether err says a coordinator did not answer: it
// could not be reached, it is loading, or it moved. Any other error is an
// answer (TRANSACTIONAL_ID_NOT_FOUND for an id that has not produced yet).
func unanswered(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, context.DeadlineExceeded) || kgo.IsRetryableBrokerErr(err) {
		return true
	}
	if ke, ok := errors.AsType[*kerr.Error](err); ok {
		return ke.Retriable
	}
	if se, ok := errors.AsType[*kadm.ShardErrors](err); ok {
		for _, e := range se.Errs {
			if unanswered(e.Err) {
				return true
			}
		}
	}
	return false
}
