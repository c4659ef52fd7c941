package consumer

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/config"
	"github.com/kretry/kretry/health"
	"github.com/kretry/kretry/internal/batchlimit"
	"github.com/kretry/kretry/internal/dlhook"
	"github.com/kretry/kretry/internal/healthtrack"
	"github.com/kretry/kretry/internal/metrics"
	"github.com/kretry/kretry/internal/partitions"
	"github.com/kretry/kretry/internal/rejoin"
	"github.com/kretry/kretry/internal/telemetry"
	"github.com/kretry/kretry/internal/txnend"
	"github.com/kretry/kretry/internal/txnfence"
	"github.com/kretry/kretry/ladder"
)

// commitTimeout bounds the commit of marked offsets on a revoke and at shutdown.
const commitTimeout = 15 * time.Second

// pollRecords is the most records one poll hands to the partitions' goroutines.
const pollRecords = 1000

// Consumer runs a Handler over the main topics of a config, with the retry
// ladder of each topic. Build it with New; Run it once.
type Consumer struct {
	cfg        *config.Config
	handler    Handler
	opts       options
	ladders    map[string]*ladder.Ladder       // by main topic
	maxAge     map[string]time.Duration        // by main topic; 0: no limit
	inPlace    map[string]*config.RetryInPlace // by main topic; retry_in_place, or WithRetryInPlace
	breakers   map[string]*breaker             // by main topic, those with a circuit_breaker
	clientOpts []kgo.Opt                       // from the config, then WithClientOpts; the group's come in newClient
	metrics    *metrics.Metrics
	health     *healthtrack.Tracker
	relay      relayRunner // nil: WithRelay(false)
	// commitInterval is how often marks are committed (commit_interval).
	commitInterval time.Duration
	started        atomic.Bool
	forwards       sync.Pool // of *pendingForward, recycled once acknowledged
}

// New checks cfg, h and opts and returns a Consumer that has started nothing:
// no connection is made until Run. cfg is checked with cfg.Validate, the
// rules of a config file, and every ladder of cfg is resolved here, so a bad
// config fails now rather than in Run.
func New(cfg *config.Config, h Handler, opts ...Opt) (*Consumer, error) {
	if cfg == nil {
		return nil, errors.New("consumer: nil config: load one with config.Load")
	}
	if h == nil {
		return nil, errors.New("consumer: nil handler: pass a Handler or a HandlerFunc")
	}
	o := defaultOptions()
	for _, opt := range opts {
		if opt != nil {
			opt.apply(&o)
		}
	}
	if err := o.validate(); err != nil {
		return nil, err
	}
	// A Config built in Go is held to the rules of a file (config.Parse).
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("consumer: %w", err)
	}
	ladders, err := cfg.Ladders()
	if err != nil {
		return nil, fmt.Errorf("consumer: %w", err)
	}
	c := &Consumer{
		cfg:     cfg,
		handler: h,
		opts:    o,
		ladders: make(map[string]*ladder.Ladder, len(ladders)),
		maxAge:  make(map[string]time.Duration, len(cfg.Topics)),
		inPlace: map[string]*config.RetryInPlace{},
	}
	for i, l := range ladders {
		if _, dup := c.ladders[l.Topic()]; dup {
			return nil, fmt.Errorf("consumer: topic %s is listed twice in the config: list each main topic once", l.Topic())
		}
		c.ladders[l.Topic()] = l
		if r := cfg.Topics[i].RetryInPlace; r != nil {
			c.inPlace[l.Topic()] = r
		}
		if age := cfg.Topics[i].MaxAge; age < 0 {
			return nil, fmt.Errorf("consumer: topic %s: negative max_age %v: use 0 for no limit", l.Topic(), age)
		} else {
			c.maxAge[l.Topic()] = age
		}
	}
	for topic, r := range o.inPlace {
		if _, ok := c.ladders[topic]; !ok {
			return nil, fmt.Errorf("consumer: WithRetryInPlace(%q): not a topic of the config: give one of its main topics", topic)
		}
		if err := r.Check(); err != nil {
			return nil, fmt.Errorf("consumer: WithRetryInPlace(%q): %w", topic, err)
		}
		c.inPlace[topic] = &r
	}
	base, err := cfg.ClientOpts()
	if err != nil {
		return nil, fmt.Errorf("consumer: %w", err)
	}
	c.commitInterval = cmp.Or(cfg.CommitInterval, config.DefaultCommitInterval)
	if c.commitInterval < 0 {
		c.commitInterval = config.DefaultCommitInterval
	}
	// The producer's delivery timeout from the config, for the consumer's
	// client and the relay's; the user's options may still override it.
	c.clientOpts = slices.Concat(base, cfg.ProducerOpts(), o.clientOpts)
	c.health = healthtrack.New("consumer", cfg.Group)
	if c.metrics, err = metrics.New(o.registerer); err != nil {
		return nil, fmt.Errorf("consumer: %w", err)
	}
	for _, t := range cfg.Topics {
		if t.CircuitBreaker != nil {
			if c.breakers == nil {
				c.breakers = map[string]*breaker{}
			}
			c.breakers[t.Name] = newBreaker(t.Name, *t.CircuitBreaker, o.logger, c.metrics)
		}
	}
	if o.relay {
		if c.relay, err = newRelay(c, ladders); err != nil {
			return nil, fmt.Errorf("consumer: relay: %w", err)
		}
	}
	return c, nil
}

// ErrRunTwice is returned by a second call of Run on one Consumer, even
// after the first returned: a Consumer runs once.
var ErrRunTwice = errors.New("consumer: Run may be called once per Consumer: build a new one with New")

// Run joins cfg.Group over every main topic of the config and handles records
// until ctx is done; with the relay (WithRelay, the default) it also runs the
// relay of the same ladders and returns when both have stopped.
//
// Before joining, Run checks that every main, tier and DLQ topic exists; a
// missing one is an error naming it. After ctx is cancelled, Run stops
// fetching, lets in-flight handlers finish within the grace period
// (WithGracePeriod), commits the offsets of every record done, leaves the
// group and returns nil; no goroutine it started outlives it. A record is done
// when its handler returned nil, or when its forward to a retry tier or the
// DLQ was acknowledged by the broker; any other record is delivered again
// later, so delivery is at least once.
//
// In exactly-once mode without instance_id, a transaction fenced by the
// brokers (the consumer lost its group for longer than session_timeout and
// the survivors fenced it, or it ran past the transaction timeout) does not
// stop Run: the consumer drops the session, nothing of the transaction being
// visible, and rejoins with a new transactional id, logged at warn; the
// fifth fence within a minute stops Run with the error. With instance_id a
// fence stops Run with an error.
//
// Run may be called once; a second call returns ErrRunTwice.
func (c *Consumer) Run(ctx context.Context) error {
	if !c.started.CompareAndSwap(false, true) {
		return ErrRunTwice
	}
	defer c.metrics.Ladder.Show(c.tierInfos())()
	c.health.Start()
	defer c.health.Stop()
	defer c.metrics.Health.Show(c)()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	s := c.newSession(ctx, cancel)
	err := s.start(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil // cancelled while starting: nothing to stop
		}
		return err
	}

	var wg sync.WaitGroup
	var relayErr error
	if c.relay != nil {
		wg.Go(func() {
			if err := c.relay.Run(ctx); err != nil && ctx.Err() == nil {
				relayErr = fmt.Errorf("consumer: relay stopped: %w", err)
				c.opts.logger.Error("kretry relay stopped; stopping the consumer", "error", err)
				cancel()
			}
		})
	}
	for _, b := range c.breakers {
		defer b.stop()
	}
	var fences rejoin.Budget
	for {
		err = s.run()
		fenced := s.fenced
		if fenced == nil || ctx.Err() != nil {
			break
		}
		// Exactly once without instance_id: the transactional id was
		// this session's alone, so the fence means the survivors or the
		// brokers ended its transaction (it lost the group for longer
		// than session_timeout, or ran past the transaction timeout).
		// Nothing of it is visible: a new session with a new id rejoins
		// and handles its records again.
		if !fences.Allow(time.Now()) {
			err = fmt.Errorf("consumer: fenced %d times within %v, stopping: %w", rejoin.Limit, rejoin.Window, s.fencedError(fenced))
			s.log.Error("kretry consumer stopping", "error", err)
			break
		}
		s.log.Warn("kretry consumer's transaction was fenced; it drops its session (nothing of its open transaction is visible, "+
			"its records are handled again) and rejoins the group with a new transactional id",
			"group", c.cfg.Group, "transactional_id", s.txnID, "error", fenced)
		s = c.newSession(ctx, cancel)
		if err = s.start(ctx); err != nil {
			if ctx.Err() != nil {
				err = nil // cancelled while starting: nothing to stop
			}
			break
		}
	}
	cancel()
	wg.Wait()
	return errors.Join(err, relayErr)
}

// newSession returns a session of Run, not started; stop stops Run.
func (c *Consumer) newSession(ctx context.Context, stop context.CancelFunc) *session {
	s := &session{
		c:        c,
		log:      c.opts.logger,
		workers:  make(map[topicPartition]*worker),
		stopping: make(map[topicPartition]*worker),
		base:     context.WithoutCancel(ctx),
		stop:     stop,
	}
	s.ctx, s.cancel = context.WithCancel(ctx)
	return s
}

// start builds a session's client, provisions (WithProvisioning) and
// checks the topics, reads the partition counts and the batch limits of the
// tier and DLQ topics, and sets the group session timeouts: the first
// session and each one after a fence alike (a new session after a fence
// once kept the first's counts and set no session timeout).
func (s *session) start(ctx context.Context) error {
	cl, hooks, err := s.newClient()
	if err != nil {
		return err
	}
	s.cl, s.clientMetrics = cl, hooks
	if s.c.opts.provision {
		err = s.provision(ctx)
	}
	var counts map[string]int32
	if err == nil {
		counts, err = s.checkTopics(ctx)
	}
	if err != nil {
		cl.Close()
		hooks.Release()
		return err
	}
	s.partitions = partitions.New(cl, s.log, counts)
	s.readLimits(ctx, counts)
	s.setGroupTimeouts(ctx)
	return nil
}

// readLimits reads the max.message.bytes of the tier and DLQ topics.
func (s *session) readLimits(ctx context.Context, counts map[string]int32) {
	targets := slices.Collect(maps.Keys(counts))
	if len(targets) == 0 {
		return
	}
	if err := s.limits.Read(ctx, kadm.NewClient(s.cl), targets); err != nil && ctx.Err() == nil {
		// A forward larger than the default goes to the DLQ without its value (too-large).
		s.log.Warn("kretry consumer could not read the max.message.bytes of its tier and DLQ topics; "+
			"it forwards batches of at most 1,000,012 bytes to those it could not read",
			"topics", strings.Join(targets, ","), "error", err)
	}
}

// run runs a started session until Run's ctx is done, a worker stops Run
// (fail), or its transaction is fenced (fenced), then shuts it down: no
// goroutine it started outlives it.
func (s *session) run() error {
	var wg sync.WaitGroup
	if s.fence != nil {
		wg.Go(func() { s.fence.Run(s.ctx, s.cl) })
	}
	s.hooks = s.startHooks()
	for _, b := range s.c.breakers {
		b.start(s.cl)
	}
	var err error
	if s.txn == nil {
		wg.Go(func() { s.flushOnTime(s.ctx) })
		s.poll(s.ctx)
		err = s.shutdown()
	} else {
		s.pollTxn(s.ctx)
		err = s.shutdownTxn()
	}
	s.hooks.Close()
	s.clientMetrics.Release()
	s.cancel()
	wg.Wait()
	s.failMu.Lock()
	defer s.failMu.Unlock()
	return errors.Join(s.failErr, err)
}

// setGroupTimeouts makes session_timeout and the heartbeat interval
// that follows it the brokers' settings of the consumer's group and of its
// relay's with group_protocol: consumer (config.Config.SetGroupTimeouts).
func (s *session) setGroupTimeouts(ctx context.Context) {
	groups := []string{s.c.cfg.Group}
	if r, ok := s.c.relay.(interface{ Group() string }); ok {
		groups = append(groups, r.Group())
	}
	for _, g := range groups {
		sctx, cancel := context.WithTimeout(ctx, commitTimeout)
		s.c.cfg.SetGroupTimeouts(sctx, s.cl, g, s.log)
		cancel()
	}
}

// topicPartition names one partition of a main topic.
type topicPartition struct {
	topic     string
	partition int32
}

// session is the state of one Run: the client, the partitions' workers and
// the partition counts of the topics records are forwarded to.
type session struct {
	c          *Consumer
	cl         *kgo.Client
	log        *slog.Logger
	base       context.Context    // values of Run's ctx, never cancelled
	partitions *partitions.Counts // of the tier and DLQ topics
	limits     batchlimit.Limits  // the producer's batch limit of each tier and DLQ topic

	mu       sync.Mutex
	workers  map[topicPartition]*worker
	stopping map[topicPartition]*worker // stopped, not yet returned
	closing  bool                       // set at shutdown: assignments start no workers

	txn   *kgo.GroupTransactSession // exactly_once; nil: at least once (see txn.go)
	fence *txnfence.Fencer          // exactly_once: aborts dead members' transactions (fence.go)
	ender *txnend.Ender             // exactly_once: ends the transactions of txn (see endTxn)
	hooks *dlhook.Runner            // the dead-letter hook's; nil: none
	joins *joinCommits              // commits during a classic join, at least once; nil: none
	// rewinds are the partitions to rewind before the transaction ends,
	// to their first record given back to an open breaker (giveBack).
	rewinds map[*worker]kgo.EpochOffset
	txnState
	hold txnHold // exactly_once: the transactions that did not commit in a row (txnhold.go)

	ctx    context.Context    // the session's: done when Run's is, or when it is fenced
	cancel context.CancelFunc // ends the session
	stop   context.CancelFunc // stops Run
	// fenced is the error that fenced the session's transaction when Run
	// may start a new session (see failTxn); set before cancel.
	fenced        error
	txnID         string                   // exactly_once: the session's transactional id
	clientMetrics *telemetry.ClientMetrics // of cl
	failMu        sync.Mutex
	failErr       error // why a worker stopped Run, if one did
	finalErr      error // why the final commit at shutdown failed, if it did
}

// fail stops Run, which returns err: for what kretry cannot get past without
// losing a record.
func (s *session) fail(err error) {
	s.failMu.Lock()
	if s.failErr == nil {
		s.failErr = err
		s.log.Error("kretry consumer stopping", "error", err)
	}
	s.failMu.Unlock()
	s.stop()
}

// poll fetches records and hands each partition's records to its worker until
// ctx is done. BlockRebalanceOnPoll holds rebalances between PollRecords and
// AllowRebalance, so a revoke never races the hand-off.
func (s *session) poll(ctx context.Context) {
	for {
		s.c.health.Polling(true)
		fetches := s.cl.PollRecords(ctx, pollRecords)
		s.c.health.Polling(false)
		if fetches.IsClientClosed() || ctx.Err() != nil {
			s.cl.AllowRebalance()
			return
		}
		s.handOut(fetches)
		s.cl.AllowRebalance()
	}
}

// flushOnTime marks, every quarter commit interval until ctx is done, the
// records each worker has done but not yet marked: a worker marks by count
// and when its queue runs dry, and a handler that is slow with a backlog
// would otherwise hold back the marks of the records before it. kgo commits
// the marks every commit interval, so a record done is committed within
// about 1.25 commit intervals.
func (s *session) flushOnTime(ctx context.Context) {
	t := time.NewTicker(max(s.c.commitInterval/4, time.Millisecond))
	defer t.Stop()
	var ws []*worker
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.mu.Lock()
		for _, w := range s.workers {
			ws = append(ws, w)
		}
		s.mu.Unlock()
		// Outside s.mu: marking takes kgo's group lock, which kgo may hold
		// while it calls assigned or revoked, which take s.mu.
		for i, w := range ws {
			w.markUnmarked()
			ws[i] = nil
		}
		ws = ws[:0]
		s.commitIfStuck(ctx, time.Now())
	}
}

// assigned starts a worker for each partition assigned.
func (s *session) assigned(ctx context.Context, cl *kgo.Client, assigned map[string][]int32) {
	s.c.health.Assigned(ctx, cl, assigned)
	if s.fence != nil {
		s.fence.Trigger() // a dead member's partitions may be among them
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return
	}
	for topic, partitions := range assigned {
		ladder := s.c.ladders[topic]
		for _, p := range partitions {
			tp := topicPartition{topic, p}
			if s.workers[tp] != nil {
				continue
			}
			w := newWorker(s, tp, ladder)
			s.workers[tp] = w
			go w.run()
		}
	}
}

// revoked stops and waits for the workers of the revoked partitions, then
// commits what they marked. It also makes the final commit at shutdown:
// closing the client revokes every partition from the group's own goroutine
// once any join in flight is done. (A commit from another goroutine waits for
// a join in flight on a lock, which in a synctest bubble stops the clock the
// join waits on.)
func (s *session) revoked(ctx context.Context, cl *kgo.Client, revoked map[string][]int32) {
	s.rebalances.Add(1)
	s.c.health.Revoked(revoked)
	s.stopWorkers(revoked, s.c.opts.grace)
	if s.c.cfg.ExactlyOnce { // not s.txn, which newClient sets after the client may call back
		return // exactly once: offsets commit in the transactions
	}
	ctx, cancel := context.WithTimeout(ctx, commitTimeout)
	defer cancel()
	err := cl.CommitMarkedOffsets(ctx)
	s.mu.Lock()
	closing := s.closing
	s.mu.Unlock()
	if err != nil {
		s.log.Error("kretry consumer commit on revoke failed; records done since the last commit will be handled again",
			"group", s.c.cfg.Group, "error", err)
		if closing {
			s.failMu.Lock()
			s.finalErr = fmt.Errorf("consumer: committing offsets at shutdown: %w; records done since the last commit will be handled again", err)
			s.failMu.Unlock()
		}
	}
}

// lost stops the workers of partitions another member may already own: their
// handlers are cancelled at once and nothing is committed.
func (s *session) lost(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
	s.rebalances.Add(1)
	s.c.health.Lost()
	s.stopWorkers(lost, 0)
}

// stopWorkers stops the workers of the given partitions (all of them when
// tps is nil), waits for them, and resumes the partitions they paused: a pause
// outlives a rebalance in franz-go, and a partition reassigned to us later
// must not stay paused.
func (s *session) stopWorkers(tps map[string][]int32, grace time.Duration) {
	s.mu.Lock()
	var stopping, running []*worker
	take := func(tp topicPartition) {
		if w := s.workers[tp]; w != nil {
			stopping = append(stopping, w)
			delete(s.workers, tp)
			s.stopping[tp] = w
		} else if w := s.stopping[tp]; w != nil {
			// Stopped by another call (a revoke during shutdown): its
			// partition is not ours to give away until it has returned.
			running = append(running, w)
		}
	}
	if tps == nil {
		for tp := range s.workers {
			take(tp)
		}
	} else {
		for topic, partitions := range tps {
			for _, p := range partitions {
				take(topicPartition{topic, p})
			}
		}
	}
	s.mu.Unlock()
	for _, w := range stopping {
		w.stop(grace)
	}
	for _, w := range running {
		if grace <= 0 {
			w.cancel()
		}
		<-w.done
	}
	resume := make(map[string][]int32)
	for _, w := range stopping {
		w.wait()
		resume[w.tp.topic] = append(resume[w.tp.topic], w.tp.partition)
	}
	s.mu.Lock()
	for _, w := range stopping {
		if s.stopping[w.tp] == w {
			delete(s.stopping, w.tp)
		}
	}
	s.mu.Unlock()
	if len(resume) > 0 {
		s.cl.ResumeFetchPartitions(resume)
	}
}

// shutdown stops every worker within the grace period and leaves the group
// by closing the client, whose final revoke commits the marks (revoked).
func (s *session) shutdown() error {
	s.mu.Lock()
	s.closing = true
	s.mu.Unlock()
	s.stopWorkers(nil, s.c.opts.grace)
	s.cl.CloseAllowingRebalance()
	s.failMu.Lock()
	defer s.failMu.Unlock()
	return s.finalErr
}

// relayRunner is the part of relay.Relay that Run uses.
type relayRunner interface {
	Run(ctx context.Context) error
	HealthState() health.State
}
