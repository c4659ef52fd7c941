package relay

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/internal/backlog"
	"github.com/kretry/kretry/internal/batchlimit"
	"github.com/kretry/kretry/internal/dlhook"
	"github.com/kretry/kretry/internal/healthtrack"
	"github.com/kretry/kretry/internal/metrics"
	"github.com/kretry/kretry/internal/partitions"
	"github.com/kretry/kretry/internal/rejoin"
	"github.com/kretry/kretry/internal/telemetry"
	"github.com/kretry/kretry/internal/txnend"
	"github.com/kretry/kretry/ladder"
)

// ErrRunTwice is returned by a second call of Run on one Relay, even after
// the first returned: a Relay runs once, as a consumer.Consumer does.
var ErrRunTwice = errors.New("relay: Run may be called once per Relay: build a new one with New")

// Relay consumes the tier topics of one or more ladders in one consumer group
// and re-feeds each record to its ladder's main topic, at its original
// partition, no earlier than its due time (kretry-due-at).
//
// The original partition is taken modulo the main topic's partition count.
// The relay reads the counts when Run starts, and reads a topic's again when
// a record's partition is not below it, at most every 5 seconds: a main
// topic raised while the relay runs gets the records of its new partitions
// back at those partitions, without a restart.
//
// Per tier partition, records are re-fed in offset order: due records are
// produced back to back (acks=all, idempotent, so a main partition receives
// them in that order and nothing after a failed one), the relay polls on
// without waiting for the acknowledgements (at most 45,000 re-feeds in
// flight), and a record's offset is marked for commit only after its
// re-feed and every one before it are acknowledged.
//
// A record that is not yet due waits without a sleeping goroutine, held in
// memory within WithHoldBytes or in its paused partition: see the
// package doc.
//
// A tier record whose kretry headers cannot be read goes to the ladder's DLQ
// with reason invalid-metadata. A record whose kretry-group is not its
// ladder's group belongs to another group's relay sharing the topic and is
// committed past. A record that is a copy of one the relay re-fed (or
// dead-lettered) from an earlier offset of its partition in this session
// (the same kretry-original-topic, -partition and -offset, kretry-attempts
// and kretry-replays: a consumer that crashed before it committed forwarded
// it again) is committed past after that re-feed, without one of its own;
// each partition remembers the last 4096 such identities until it is
// revoked or lost.
type Relay struct {
	cfg     cfg
	ladders []*ladder.Ladder
	tiers   map[string]tierOf // by tier topic
	topics  []string          // the tier topics, in ladder order
	metrics *metrics.Metrics
	health  *healthtrack.Tracker
	started atomic.Bool // by Run: a Relay runs once
	refeeds freeRefeeds // recycled once acknowledged

	// idMu guards cfg.instanceID, which a new session after a fence
	// replaces when it is random (randomID: no WithInstanceID).
	idMu     sync.Mutex
	randomID bool
}

// tierOf is what the relay knows about one tier topic.
type tierOf struct {
	ladder *ladder.Ladder
	step   ladder.Step

	// The metric series of its re-feeds, resolved once.
	refed    prometheus.Counter
	lateness prometheus.Observer
	skipped  prometheus.Counter // copies of re-fed attempts skipped
	reparked prometheus.Counter // written again to the tier, not yet due
}

// New returns a relay over every tier topic of ladders. It starts
// nothing; Run does.
func New(ladders []*ladder.Ladder, opts ...Opt) (*Relay, error) {
	cfg := defaultCfg()
	for _, o := range opts {
		o.apply(&cfg)
	}
	if len(ladders) == 0 {
		return nil, errors.New("relay: no ladders: give the ladder of at least one topic")
	}
	switch {
	case cfg.fetchMaxWait < time.Millisecond:
		return nil, fmt.Errorf("relay: fetch max wait %v: want at least 1ms", cfg.fetchMaxWait)
	case cfg.deliveryTimeout <= 0:
		return nil, fmt.Errorf("relay: delivery timeout %v: want a timeout > 0", cfg.deliveryTimeout)
	case cfg.holdBytes < 0:
		return nil, fmt.Errorf("relay: hold bytes %d: want 0 (hold nothing) or more", cfg.holdBytes)
	case cfg.commitInterval < minCommitInterval:
		return nil, fmt.Errorf("relay: commit interval %v (WithCommitInterval, commit_interval in a config) is under %v, the shortest franz-go commits at: give %v or more (default %v)",
			cfg.commitInterval, minCommitInterval, minCommitInterval, DefaultCommitInterval)
	}
	r := &Relay{cfg: cfg, tiers: map[string]tierOf{}}
	for i, l := range ladders {
		if l == nil {
			return nil, fmt.Errorf("relay: ladder %d is nil", i)
		}
		if cfg.group == "" && l.Group() != ladders[0].Group() {
			return nil, fmt.Errorf("relay: the ladders of %s and %s belong to groups %s and %s: give the relay its group with WithGroup",
				ladders[0].Topic(), l.Topic(), ladders[0].Group(), l.Group())
		}
		for _, s := range l.Steps() {
			if other, dup := r.tiers[s.Topic]; dup {
				return nil, fmt.Errorf("relay: topic %s is a tier of both %s and %s: give each ladder its own tier topics",
					s.Topic, other.ladder.Topic(), l.Topic())
			}
			r.tiers[s.Topic] = tierOf{ladder: l, step: s}
			r.topics = append(r.topics, s.Topic)
		}
		r.ladders = append(r.ladders, l)
	}
	if r.cfg.group == "" {
		r.cfg.group = ladders[0].Group() + "-relay"
	}
	if r.cfg.instanceID == "" {
		r.randomID = true
		r.newInstance()
	}
	r.health = healthtrack.New("relay", r.cfg.group)
	m, err := metrics.New(cfg.reg)
	if err != nil {
		return nil, fmt.Errorf("relay: %w", err)
	}
	r.metrics = m
	for topic, t := range r.tiers {
		t.refed = m.Refed.WithLabelValues(t.ladder.Topic(), t.step.Name)
		t.lateness = m.RefeedLateness.WithLabelValues(t.step.Name)
		t.skipped = m.DuplicateCopiesSkipped.WithLabelValues(t.ladder.Topic(), t.step.Name)
		t.reparked = m.Reparked.WithLabelValues(t.ladder.Topic(), t.step.Name)
		r.tiers[topic] = t
	}
	return r, nil
}

// newInstance gives the relay a new random instance part of its
// transactional id.
func (r *Relay) newInstance() {
	var b [8]byte
	_, _ = rand.Read(b[:])
	r.idMu.Lock()
	r.cfg.instanceID = hex.EncodeToString(b[:])
	r.idMu.Unlock()
}

// Group returns the relay's consumer group.
func (r *Relay) Group() string { return r.cfg.group }

// shutdownSlack is what Run takes at shutdown on top of the delivery
// timeout: to commit and leave the group. Past it the clients' requests are
// cut (kgo.WithContext), so that Run returns even when the brokers do not
// answer.
const shutdownSlack = 5 * time.Second

// Run checks that every tier topic exists, joins the relay's group and
// re-feeds records until ctx is done. Then, before it lets the group
// rebalance, it waits for the re-feeds in flight (at most the delivery
// timeout), marks those the broker acknowledged, commits, leaves the group
// and returns nil; a re-feed not acknowledged by then stays uncommitted and
// is re-fed again by the next owner. Run so returns within the delivery
// timeout plus a few seconds of ctx being done, even when the brokers do not
// answer: past that the clients' requests are cut. No goroutine of it
// outlives the call, but for the call of a dead-letter hook that ignores
// its ctx (WithDeadLetterHook). It returns an error without joining when a topic is
// missing. In the exactly-once mode without WithInstanceID, a transaction
// fenced by the brokers (the relay lost its group for longer than its
// session timeout and the survivors fenced it, or it ran past the
// transaction timeout) does not stop Run: the relay drops the session,
// nothing of the transaction being visible, and rejoins with a new
// transactional id, logged at warn; the fifth fence within a minute stops
// Run with the error. With an instance id a fence stops Run with an error.
// Run may be called once; a second call returns ErrRunTwice.
func (r *Relay) Run(ctx context.Context) error {
	if !r.started.CompareAndSwap(false, true) {
		return ErrRunTwice
	}
	defer r.metrics.Ladder.Show(tierInfos(r.ladders))()
	r.health.Start()
	defer r.health.Stop()
	defer r.metrics.Health.Show(r)()

	// hard is the clients' context: cut once shutting down has taken the
	// delivery timeout and shutdownSlack.
	hard, cut := context.WithCancel(context.WithoutCancel(ctx))
	defer cut()
	ran := make(chan struct{})
	var cutter sync.WaitGroup
	cutter.Go(func() {
		select {
		case <-ran:
			return
		case <-ctx.Done():
		}
		t := time.NewTimer(r.cfg.deliveryTimeout + shutdownSlack)
		defer t.Stop()
		select {
		case <-ran:
		case <-t.C:
			r.cfg.logger.Error("kretry relay cuts its Kafka requests: shutting down took longer than the delivery timeout and 5s",
				"delivery_timeout", r.cfg.deliveryTimeout)
			cut()
		}
	})
	defer cutter.Wait()
	defer close(ran)

	// franz-go's client metrics, as kretry_client_*{component="relay-producer",group=...}.
	prodHooks, prodMetrics := telemetry.NewClientMetrics(r.cfg.reg, r.cfg.logger,
		prometheus.Labels{"component": "relay-producer", "group": r.cfg.group})
	defer prodMetrics.Release()

	limits := &batchlimit.Limits{}
	prod, err := kgo.NewClient(r.clientOpts(false, prodHooks, kgo.WithContext(hard), kgo.ProducerBatchMaxBytesFn(limits.Of))...)
	if err != nil {
		return fmt.Errorf("relay: building the Kafka client: %w", err)
	}
	defer prod.Close()
	parts, err := r.checkTopics(ctx, prod)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	if err := limits.Read(ctx, kadm.NewClient(prod), r.targets()); err != nil {
		r.cfg.logger.Warn("kretry relay could not read the max.message.bytes of its target topics; it produces batches of at most 1,000,012 bytes to those it could not read",
			"topics", strings.Join(r.targets(), ","), "error", err)
	}

	var fences rejoin.Budget
	for {
		err := r.runSession(ctx, hard, prod, parts, limits)
		if err == nil || ctx.Err() != nil || !r.mayRejoin(err) {
			return err
		}
		// Exactly once without instance_id: the transactional id was
		// this session's alone, so the fence means the survivors or the
		// brokers ended its transaction (the relay lost its group for
		// longer than session_timeout, or ran past the transaction
		// timeout). Nothing of it is visible: a new session with a new
		// id rejoins and re-feeds its records again.
		if !fences.Allow(time.Now()) {
			err = fmt.Errorf("relay: fenced %d times within %v, stopping: %w", rejoin.Limit, rejoin.Window, err)
			r.cfg.logger.Error("kretry relay stopping", "error", err)
			return err
		}
		old := r.TransactionalID()
		r.newInstance()
		r.cfg.logger.Warn("kretry relay's transaction was fenced; it drops its session (nothing of its open transaction is visible, "+
			"its records are re-fed again) and rejoins the group with a new transactional id",
			"group", r.cfg.group, "transactional_id", old, "new_transactional_id", r.TransactionalID(), "error", err)
	}
}

// runSession runs one session of Run: the group's client, from joining to
// leaving. It returns the fenced error of an exactly-once session whose
// transaction was fenced, after closing its client.
func (r *Relay) runSession(ctx, hard context.Context, prod *kgo.Client, parts map[string]int32, limits *batchlimit.Limits) error {
	// franz-go's client metrics, as kretry_client_*{component="relay-consumer",group=...}.
	consHooks, consMetrics := telemetry.NewClientMetrics(r.cfg.reg, r.cfg.logger,
		prometheus.Labels{"component": "relay-consumer", "group": r.cfg.group})
	defer consMetrics.Release()

	s := &session{r: r, prod: prod, parts: partitions.New(prod, r.cfg.logger, parts), log: r.cfg.logger,
		paused: map[topicPartition]*pause{}, held: map[topicPartition]held{}, holdPaused: map[topicPartition]bool{},
		inflight: map[topicPartition][]*refeed{}, refedIDs: map[topicPartition]*refedIDs{}, failures: map[topicPartition]int{}, budget: newHoldBudget(r.cfg.holdBytes),
		hard: hard, ackc: make(chan struct{}, 1), marks: map[topicPartition]kgo.EpochOffset{}, limits: limits}
	s.fetch = &fetchSizes{}
	s.hooks = r.startHooks(context.WithoutCancel(ctx))
	defer s.hooks.Close() // after the last transaction ended: its calls are queued
	var cons *kgo.Client
	if r.cfg.exactlyOnce {
		// One client consumes and produces, in transactions that commit the
		// tier offsets with the re-feeds.
		fence := r.newFencer()
		s.ender = txnend.New(r.cfg.logger)
		txn, err := kgo.NewGroupTransactSession(r.clientOpts(true, consHooks, kgo.WithContext(hard), s.ender.Opt(),
			kgo.OnPartitionsAssigned(s.fetch.assigned(r.onAssigned(fence))), kgo.WithHooks(r.health, fence),
			kgo.OnPartitionsRevoked(s.revoked), kgo.OnPartitionsLost(s.lost), kgo.ProducerBatchMaxBytesFn(limits.Of))...)
		if err != nil {
			return fmt.Errorf("relay: building the Kafka client: %w", err)
		}
		s.txn, cons, s.prod = txn, txn.Client(), txn.Client()
		defer runFencer(ctx, fence, cons)()
		if err := txn.Begin(); err != nil {
			txn.Close()
			return fmt.Errorf("relay: beginning a transaction: %w", err)
		}
		s.lastEnd = time.Now()
	} else {
		var err error
		cons, err = kgo.NewClient(r.clientOpts(true, consHooks, kgo.WithContext(hard),
			kgo.OnPartitionsAssigned(s.fetch.assigned(r.health.Assigned)), kgo.WithHooks(r.health), // joined, and the error that lost the group
			kgo.OnPartitionsRevoked(s.revoked), kgo.OnPartitionsLost(s.lost))...)
		if err != nil {
			return fmt.Errorf("relay: building the Kafka client: %w", err)
		}
	}
	s.cons = cons
	s.fetch.start(cons)
	s.log.Info("kretry relay started", "group", r.cfg.group, "topics", strings.Join(r.topics, ","), "exactly_once", r.cfg.exactlyOnce)

	var wake time.Time // when to poll again, data or not; see nextWake
	for {
		pctx, pcancel := ctx, context.CancelFunc(func() {})
		if !wake.IsZero() {
			pctx, pcancel = context.WithDeadline(ctx, wake)
		}
		r.health.Polling(true)
		fetches := cons.PollRecords(pctx, r.cfg.maxPollRecords)
		r.health.Polling(false)
		pcancel()
		if ctx.Err() != nil || fetches.IsClientClosed() {
			break // still holding rebalances: the marks are settled first
		}
		if s.txn != nil && (s.doomed.Load() || s.broken) {
			// A rebalance since the transaction began: it can only abort,
			// and kgo rewinds every partition, so this poll is dropped. The
			// same after a transaction that could not end, retried after a
			// backoff.
			wake = time.Time{}
			if s.broken && time.Since(s.lastEnd) < r.cfg.retryBackoff {
				wake = s.lastEnd.Add(r.cfg.retryBackoff)
			} else if err := s.endTxnWithin(false); err != nil {
				return s.closeFenced(err)
			}
			if s.broken {
				wake = s.lastEnd.Add(r.cfg.retryBackoff)
			}
			cons.AllowRebalance()
			continue
		}
		fetches.EachError(func(topic string, p int32, err error) {
			if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, kgo.ErrClientClosed) {
				return
			}
			s.log.Error("kretry relay fetch failed; kgo retries", "topic", topic, "partition", p, "error", err)
		})
		s.handle(ctx, fetches)
		s.sizeFetches(fetches)
		s.noteBacklog(fetches)
		if s.txn != nil && s.dirty.Load() && (time.Since(s.lastEnd) >= r.cfg.commitInterval || s.idle(fetches.NumRecords() > 0)) {
			if err := s.endTxnWithin(true); err != nil {
				return s.closeFenced(err)
			}
		}
		wake = s.nextWake()
		cons.AllowRebalance()
	}

	if s.txn != nil {
		// Commit what was re-fed with its offsets, within the delivery
		// timeout, before the final rebalance.
		if s.dirty.Load() {
			ectx, ecancel := context.WithTimeout(hard, r.cfg.deliveryTimeout)
			if err := s.endTxn(ectx, true, false); err != nil {
				s.log.Error("kretry relay could not commit its last transaction; its re-feeds are aborted and re-fed again", "error", err)
			}
			ecancel()
		}
		s.stop()
		s.txn.AllowRebalance()
		s.txn.Close()
		s.log.Info("kretry relay stopped", "group", r.cfg.group)
		return nil
	}

	// Settle before the final rebalance: wait for the re-feeds in flight up
	// to the delivery timeout, mark what was acknowledged, commit it.
	sctx, scancel := context.WithTimeout(hard, r.cfg.deliveryTimeout)
	s.settleAll(nil, sctx.Done())
	scancel()
	s.stop()
	cctx, ccancel := context.WithTimeout(hard, shutdownSlack)
	if err := cons.CommitMarkedOffsets(cctx); err != nil {
		s.log.Error("kretry relay could not commit its last offsets; those records will be re-fed again", "error", err)
	}
	ccancel()
	cons.AllowRebalance()
	cons.Close()
	s.log.Info("kretry relay stopped", "group", r.cfg.group)
	return nil
}

// closeFenced ends a session whose transaction was fenced (err): no timer
// touches the client after it, and the client leaves the group.
func (s *session) closeFenced(err error) error {
	s.stop()
	s.txn.AllowRebalance()
	s.txn.Close()
	return err
}

type topicPartition struct {
	topic     string
	partition int32
}

// session is the state of one Run.
type session struct {
	r     *Relay
	prod  *kgo.Client
	cons  *kgo.Client
	fetch *fetchSizes        // cons's, idle or busy
	parts *partitions.Counts // of the main and DLQ topics
	log   *slog.Logger

	mu         sync.Mutex
	closed     bool
	paused     map[topicPartition]*pause
	held       map[topicPartition]held      // see holdBudget
	holdPaused map[topicPartition]bool      // paused by pauseHolders
	inflight   map[topicPartition][]*refeed // re-feeds not yet settled, per partition, in order
	refedIDs   map[topicPartition]*refedIDs // what each partition re-fed, to skip copies; dropped with the partition
	failures   map[topicPartition]int       // consecutive failed produces; poll goroutine only

	// heldRecords and heldBytes are what held holds, as of the last poll;
	// heldByTier its bytes by tier name, as kretry_held_bytes shows them;
	// pausedByTier the paused partitions, as kretry_paused_partitions.
	heldRecords, heldBytes int
	heldByTier             map[string]int
	pausedByTier           map[string]int
	budget                 holdBudget

	// hard is the clients' context, cut when shutting down takes too long;
	// ackc wakes a goroutine that waits for acknowledgements (see await).
	hard   context.Context
	ackc   chan struct{}
	limits *batchlimit.Limits // of the main and DLQ topics
	hooks  *dlhook.Runner     // the dead-letter hook's; nil: none

	// The exactly-once mode: txn is the session (nil otherwise); marks the
	// next offset of each partition done in the open transaction (s.mu);
	// dirty whether it produced or marked anything, failed whether a
	// produce of it failed (both poll goroutine only); doomed whether a
	// rebalance since it began dooms it; lastEnd when the last one ended.
	txn    *kgo.GroupTransactSession
	ender  *txnend.Ender // ends txn's transactions (see endTxn)
	marks  map[topicPartition]kgo.EpochOffset
	dirty  atomic.Bool // set by the partitions' goroutines too
	failed atomic.Bool
	broken bool // the last transaction did not end: end it again (poll goroutine only)
	// unconfirmed: an end failed, and may have committed: the next end
	// that succeeds moves fetching to the committed offsets (poll goroutine
	// only).
	unconfirmed bool
	doomed      atomic.Bool
	lastEnd     time.Time
	// backlog: the partitions re-fed in the open transaction that have
	// more records to fetch (noteBacklog; poll goroutine only).
	backlog backlog.Partitions
}
