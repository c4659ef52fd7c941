package retrytopics

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kretry/kretry/internal/metrics"
	"github.com/kretry/kretry/internal/partitions"
	"github.com/kretry/kretry/internal/telemetry"
)

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
// without waiting for the acknowledgements (at most 20,000 re-feeds in
// flight), and a record's offset is marked for commit only after its
// re-feed and every one before it are acknowledged.
//
// A record that is not yet due waits without a sleeping goroutine. When it
// is due within the next second, it is held in memory with the records
// polled after it, within a budget over all partitions (WithRelayHoldBytes,
// default 64 MiB of keys, values and headers, and one record per 640 bytes
// of it, nearest due first), and the poll loop polls with a deadline at its
// due time and re-feeds it then, from memory. A record due later is held
// within a quarter of the budget. A partition whose last held record is due
// more than a second from now, or that holds a quarter of the budget's
// records, is paused without a rewind while it holds them, and every holder
// is paused while the relay holds three quarters of its budget. Past the
// budget, a partition is paused, rewound to its head and resumed by a timer a
// second before the head is due: such a partition holds nothing, so a
// backlog of millions costs no more memory than the budget. A burst of
// records that fall due together is so fetched in the second before it is
// due, and re-fed without a fetch when it is.
//
// A tier record whose kretry headers cannot be read goes to the ladder's DLQ
// with reason invalid-metadata. A record whose kretry-group is not its
// ladder's group belongs to another group's relay sharing the topic and is
// committed past.
type Relay struct {
	cfg     relayCfg
	ladders []*Ladder
	tiers   map[string]tierOf // by tier topic
	topics  []string          // the tier topics, in ladder order
	metrics *metrics.Metrics
	running atomic.Bool
}

// tierOf is what the relay knows about one tier topic.
type tierOf struct {
	ladder *Ladder
	step   Step

	// The metric series of its re-feeds, resolved once.
	refed    prometheus.Counter
	lateness prometheus.Observer
}

// RelayOpt configures NewRelay.
type RelayOpt interface{ apply(*relayCfg) }

type relayOpt func(*relayCfg)

func (o relayOpt) apply(c *relayCfg) { o(c) }

type relayCfg struct {
	group           string
	logger          *slog.Logger
	clientOpts      []kgo.Opt
	reg             prometheus.Registerer
	fetchMaxWait    time.Duration
	deliveryTimeout time.Duration
	maxPollRecords  int
	retryBackoff    time.Duration
	maxRetryBackoff time.Duration
	holdBytes       int
	commitInterval  time.Duration
	groupOpts       []kgo.Opt
	producerOpts    []kgo.Opt
	exactlyOnce     bool
	instanceID      string
}

// Defaults of the relay options.
const (
	DefaultRelayFetchMaxWait    = 100 * time.Millisecond
	DefaultRelayDeliveryTimeout = 30 * time.Second

	// DefaultRelayCommitInterval is how often the relay commits the tier
	// offsets it marked: see WithRelayCommitInterval.
	DefaultRelayCommitInterval = time.Second
	// DefaultRelaySessionTimeout is the relay's group session timeout, with
	// a heartbeat every DefaultRelayHeartbeatInterval: how long a relay that
	// died without leaving (kill -9) holds its partitions. franz-go's default
	// is 45s.
	DefaultRelaySessionTimeout    = 10 * time.Second
	DefaultRelayHeartbeatInterval = time.Second

	// DefaultRelayHoldBytes is how much of the records due soon the relay
	// holds in memory by default: see WithRelayHoldBytes.
	DefaultRelayHoldBytes = 64 << 20
)

// relayMaxPollRecords bounds one poll, and so how long the relay holds off a
// rebalance: the poll's re-feeds are acknowledged before the next poll.
const relayMaxPollRecords = 5000

// The relay's fetch sizes, unless WithRelayClientOpts sets them.
const (
	relayFetchMaxBytes          = 8 << 20
	relayFetchMaxPartitionBytes = 512 << 10
)

func defaultRelayCfg() relayCfg {
	return relayCfg{
		logger:          slog.New(slog.DiscardHandler),
		fetchMaxWait:    DefaultRelayFetchMaxWait,
		deliveryTimeout: DefaultRelayDeliveryTimeout,
		maxPollRecords:  relayMaxPollRecords,
		holdBytes:       DefaultRelayHoldBytes,
		retryBackoff:    time.Second,
		maxRetryBackoff: 30 * time.Second,
		commitInterval:  DefaultRelayCommitInterval,
	}
}

// shutdownSlack is what Run takes at shutdown on top of the delivery
// timeout: to commit and leave the group. Past it the clients' requests are
// cut (kgo.WithContext), so that Run returns even when the brokers do not
// answer.
const shutdownSlack = 5 * time.Second

// WithRelayGroup sets the relay's consumer group. Default: the ladders'
// group followed by "-relay" ("orders-service-relay"); required when the
// ladders belong to different groups.
func WithRelayGroup(group string) RelayOpt {
	return relayOpt(func(c *relayCfg) { c.group = group })
}

// WithRelayLogger sets the logger: one line per re-feed at debug, problems
// at warn and error. Default: discard everything.
func WithRelayLogger(l *slog.Logger) RelayOpt {
	return relayOpt(func(c *relayCfg) {
		if l != nil {
			c.logger = l
		}
	})
}

// WithRelayClientOpts adds kgo options to the relay's clients: seed brokers,
// TLS, SASL, a dialer. They override the relay's fetch sizes (8 MiB per
// fetch, 512 KiB per partition); the options the relay's guarantees rest on
// (group, topics, commit mode, partitioner, acks, fetch max wait) are set
// after these and win. Default: none (kgo's default seed, localhost:9092).
func WithRelayClientOpts(opts ...kgo.Opt) RelayOpt {
	return relayOpt(func(c *relayCfg) { c.clientOpts = append(c.clientOpts, opts...) })
}

// WithRelayRegisterer sets where the relay's metrics (kretry_refed_total,
// kretry_refeed_lateness_seconds, kretry_paused_partitions, and the
// forwarded and dead-lettered counts of invalid records) are registered.
// Default: nil, counted but exported nowhere.
func WithRelayRegisterer(reg prometheus.Registerer) RelayOpt {
	return relayOpt(func(c *relayCfg) { c.reg = reg })
}

// WithRelayFetchMaxWait sets how long a broker may hold a fetch of the tier
// topics open when it has nothing new. A resumed partition is fetched after
// the fetch in flight returns, so this bounds the lateness the relay adds on
// top of its produce round trip. Default DefaultRelayFetchMaxWait, 100ms.
func WithRelayFetchMaxWait(d time.Duration) RelayOpt {
	return relayOpt(func(c *relayCfg) { c.fetchMaxWait = d })
}

// WithRelayDeliveryTimeout bounds how long one re-feed (or DLQ forward) may
// wait for the broker's acknowledgement before it counts as failed; a failed
// re-feed is not committed, its partition is rewound and retried after a
// backoff. Default DefaultRelayDeliveryTimeout, 30s.
func WithRelayDeliveryTimeout(d time.Duration) RelayOpt {
	return relayOpt(func(c *relayCfg) { c.deliveryTimeout = d })
}

// WithRelayCommitInterval sets how often the relay commits the tier offsets
// of the records it re-fed (and the broker acknowledged): a relay that dies
// re-feeds again at most about this much of its work. It also commits on
// every revoke and at shutdown. Default DefaultRelayCommitInterval, 1s.
func WithRelayCommitInterval(d time.Duration) RelayOpt {
	return relayOpt(func(c *relayCfg) { c.commitInterval = d })
}

// WithRelayGroupOpts adds kgo group options to the relay's consuming client
// only: config.Config.GroupOpts gives them (session timeout, heartbeat,
// static membership with kgo.InstanceID, KIP-848 with
// kgo.ServerSideBalancer...). They are applied after the relay's defaults
// (DefaultRelaySessionTimeout, DefaultRelayHeartbeatInterval, an auto-commit
// of marks every WithRelayCommitInterval) and after WithRelayClientOpts, and
// override them.
func WithRelayGroupOpts(opts ...kgo.Opt) RelayOpt {
	return relayOpt(func(c *relayCfg) { c.groupOpts = append(c.groupOpts, opts...) })
}

// WithRelayProducerOpts adds kgo options to the relay's producing client
// only (config.Config.ProducerOpts gives them), after WithRelayClientOpts
// and the delivery timeout; the acks, partitioner and batch limits the
// relay's guarantees rest on are set after them. Give the delivery timeout
// with WithRelayDeliveryTimeout too: the relay's own waits follow it.
func WithRelayProducerOpts(opts ...kgo.Opt) RelayOpt {
	return relayOpt(func(c *relayCfg) { c.producerOpts = append(c.producerOpts, opts...) })
}

// WithRelayExactlyOnce turns on the exactly-once mode: the relay's re-feeds
// (and dead letters) and the tier offsets of the records they came from
// commit together in Kafka transactions of about WithRelayCommitInterval
// each (KIP-447: a relay that lost its partitions cannot commit), and it
// reads the tiers read_committed. A crash or a rebalance aborts the open
// transaction: its re-feeds never become visible to read_committed readers,
// and the records are re-fed again by the next owner, once. Its
// transactional id is kretry/<relay group>/relay/<instance> (see
// WithRelayInstanceID). Default: off (at least once).
func WithRelayExactlyOnce(on bool) RelayOpt {
	return relayOpt(func(c *relayCfg) { c.exactlyOnce = on })
}

// WithRelayInstanceID names this relay instance in its transactional id in
// the exactly-once mode: give each instance its own, stable across restarts
// (the pod name of a StatefulSet), so that a restarted instance fences the
// transaction its previous run left open at once. Default: a random id per
// Relay, whose open transaction the broker aborts after its timeout.
func WithRelayInstanceID(id string) RelayOpt {
	return relayOpt(func(c *relayCfg) { c.instanceID = id })
}

// WithRelayHoldBytes bounds the records the relay holds in memory ahead of
// their due time, so that it re-feeds them when due without fetching them
// then: n bytes of keys, values and headers in all, and one record per 640
// bytes of n, so that small records count their overhead too. Records due
// within the next second may take all of it; records due later a quarter. A
// partition whose records do not fit is paused, rewound, and fetched again a
// second before they are due. The process needs about two to three times n
// on top of its other memory while the relay holds that much (Go's heap with
// its default GOGC). 0 holds nothing: every partition whose first record is
// not due is paused and rewound. Default DefaultRelayHoldBytes, 64 MiB. The
// relay exports what it holds as kretry_held_bytes.
func WithRelayHoldBytes(n int) RelayOpt {
	return relayOpt(func(c *relayCfg) { c.holdBytes = n })
}

// NewRelay returns a relay over every tier topic of ladders. It starts
// nothing; Run does.
func NewRelay(ladders []*Ladder, opts ...RelayOpt) (*Relay, error) {
	cfg := defaultRelayCfg()
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
	case cfg.commitInterval <= 0:
		return nil, fmt.Errorf("relay: commit interval %v: want an interval > 0", cfg.commitInterval)
	}
	r := &Relay{cfg: cfg, tiers: map[string]tierOf{}}
	for i, l := range ladders {
		if l == nil {
			return nil, fmt.Errorf("relay: ladder %d is nil", i)
		}
		if cfg.group == "" && l.Group() != ladders[0].Group() {
			return nil, fmt.Errorf("relay: the ladders of %s and %s belong to groups %s and %s: give the relay its group with WithRelayGroup",
				ladders[0].Topic(), l.Topic(), ladders[0].Group(), l.Group())
		}
		for _, s := range l.steps {
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
		var b [8]byte
		_, _ = rand.Read(b[:])
		r.cfg.instanceID = hex.EncodeToString(b[:])
	}
	m, err := metrics.New(cfg.reg)
	if err != nil {
		return nil, fmt.Errorf("relay: %w", err)
	}
	r.metrics = m
	for topic, t := range r.tiers {
		t.refed = m.Refed.WithLabelValues(t.ladder.Topic(), t.step.Name)
		t.lateness = m.RefeedLateness.WithLabelValues(t.step.Name)
		r.tiers[topic] = t
	}
	return r, nil
}

// Group returns the relay's consumer group.
func (r *Relay) Group() string { return r.cfg.group }

// TransactionalID returns the transactional id the relay uses in the
// exactly-once mode: kretry/<relay group>/relay/<instance>.
func (r *Relay) TransactionalID() string {
	return "kretry/" + r.cfg.group + "/relay/" + r.cfg.instanceID
}

// transactionTimeout is the relay's transaction timeout: a transaction spans
// about a commit interval, then waits for its re-feeds' acknowledgements.
func (r *Relay) transactionTimeout() time.Duration {
	return min(r.cfg.commitInterval+r.cfg.deliveryTimeout+10*time.Second, 15*time.Minute)
}

// Run checks that every tier topic exists, joins the relay's group and
// re-feeds records until ctx is done. Then, before it lets the group
// rebalance, it waits for the re-feeds in flight (at most the delivery
// timeout), marks those the broker acknowledged, commits, leaves the group
// and returns nil; a re-feed not acknowledged by then stays uncommitted and
// is re-fed again by the next owner. Run so returns within the delivery
// timeout plus a few seconds of ctx being done, even when the brokers do not
// answer: past that the clients' requests are cut. No goroutine of it
// outlives the call. It returns an error without joining when a topic is
// missing. A Relay runs once at a time.
func (r *Relay) Run(ctx context.Context) error {
	if !r.running.CompareAndSwap(false, true) {
		return errors.New("relay: Run is already running")
	}
	defer r.running.Store(false)

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

	// franz-go's client metrics, as kretry_client_*{component="relay-producer"|"relay-consumer",group=...}.
	prodHooks, prodMetrics := telemetry.NewClientMetrics(r.cfg.reg, r.cfg.logger,
		prometheus.Labels{"component": "relay-producer", "group": r.cfg.group})
	defer prodMetrics.Release()
	consHooks, consMetrics := telemetry.NewClientMetrics(r.cfg.reg, r.cfg.logger,
		prometheus.Labels{"component": "relay-consumer", "group": r.cfg.group})
	defer consMetrics.Release()

	limits := &batchLimits{}
	prod, err := kgo.NewClient(r.clientOpts(false, prodHooks, kgo.WithContext(hard), kgo.ProducerBatchMaxBytesFn(limits.of))...)
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
	limits.read(ctx, kadm.NewClient(prod), r.targets(), r.cfg.logger)

	s := &session{r: r, prod: prod, parts: partitions.New(prod, r.cfg.logger, parts), log: r.cfg.logger,
		paused: map[topicPartition]*pause{}, held: map[topicPartition]held{}, holdPaused: map[topicPartition]bool{},
		inflight: map[topicPartition][]*refeed{}, failures: map[topicPartition]int{}, budget: newHoldBudget(r.cfg.holdBytes),
		hard: hard, ackc: make(chan struct{}, 1), marks: map[topicPartition]kgo.EpochOffset{}, limits: limits}
	var cons *kgo.Client
	if r.cfg.exactlyOnce {
		// One client consumes and produces, in transactions that commit the
		// tier offsets with the re-feeds.
		txn, err := kgo.NewGroupTransactSession(r.clientOpts(true, consHooks, kgo.WithContext(hard),
			kgo.OnPartitionsRevoked(s.revoked), kgo.OnPartitionsLost(s.lost), kgo.ProducerBatchMaxBytesFn(limits.of))...)
		if err != nil {
			return fmt.Errorf("relay: building the Kafka client: %w", err)
		}
		s.txn, cons, s.prod = txn, txn.Client(), txn.Client()
		if err := txn.Begin(); err != nil {
			txn.Close()
			return fmt.Errorf("relay: beginning a transaction: %w", err)
		}
		s.lastEnd = time.Now()
	} else {
		cons, err = kgo.NewClient(r.clientOpts(true, consHooks, kgo.WithContext(hard), kgo.OnPartitionsRevoked(s.revoked), kgo.OnPartitionsLost(s.lost))...)
		if err != nil {
			return fmt.Errorf("relay: building the Kafka client: %w", err)
		}
	}
	s.cons = cons
	s.log.Info("kretry relay started", "group", r.cfg.group, "topics", strings.Join(r.topics, ","), "exactly_once", r.cfg.exactlyOnce)

	var wake time.Time // when to poll again, data or not; see nextWake
	for {
		pctx, pcancel := ctx, context.CancelFunc(func() {})
		if !wake.IsZero() {
			pctx, pcancel = context.WithDeadline(ctx, wake)
		}
		fetches := cons.PollRecords(pctx, r.cfg.maxPollRecords)
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
			} else if err := s.endTxnWithin(ctx, false); err != nil {
				return err
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
		if s.txn != nil && s.dirty.Load() && time.Since(s.lastEnd) >= r.cfg.commitInterval {
			if err := s.endTxnWithin(ctx, true); err != nil {
				return err
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

// clientOpts returns the options of the producing client, or with consume
// set of the group's consuming client: the user's first, then the relay's.
func (r *Relay) clientOpts(consume bool, hooks kgo.Opt, extra ...kgo.Opt) []kgo.Opt {
	name := "producer"
	if consume {
		name = "consumer"
	}
	var opts []kgo.Opt
	if consume {
		// Defaults the caller may override: a resumed partition needs only
		// its due records, and smaller fetches bound the memory that a burst
		// of resumed partitions (or well-compressed batches) can take.
		opts = append(opts, kgo.FetchMaxBytes(relayFetchMaxBytes), kgo.FetchMaxPartitionBytes(relayFetchMaxPartitionBytes),
			kgo.SessionTimeout(DefaultRelaySessionTimeout), kgo.HeartbeatInterval(DefaultRelayHeartbeatInterval),
			kgo.AutoCommitInterval(r.cfg.commitInterval))
	}
	opts = append(opts, r.cfg.clientOpts...)
	if consume {
		opts = append(opts, r.cfg.groupOpts...)
	}
	opts = append(opts, kgo.WithLogger(telemetry.Logger(r.cfg.logger.With("component", "kgo", "client", "relay-"+name))))
	if hooks != nil {
		opts = append(opts, hooks)
	}
	if !consume {
		opts = append(opts, kgo.RecordDeliveryTimeout(r.cfg.deliveryTimeout))
		opts = append(opts, r.cfg.producerOpts...)
		opts = append(opts,
			kgo.RecordPartitioner(kgo.ManualPartitioner()),
			kgo.RequiredAcks(kgo.AllISRAcks()),
			kgo.ProducerLinger(0),
		)
		return append(opts, extra...)
	}
	opts = append(opts,
		kgo.ConsumerGroup(r.cfg.group),
		kgo.ConsumeTopics(r.topics...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.BlockRebalanceOnPoll(),
		kgo.FetchMaxWait(r.cfg.fetchMaxWait),
	)
	if !r.cfg.exactlyOnce {
		return append(append(opts, kgo.AutoCommitMarks()), extra...)
	}
	opts = append(opts, kgo.RecordDeliveryTimeout(r.cfg.deliveryTimeout))
	opts = append(opts, r.cfg.producerOpts...)
	opts = append(opts,
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(0),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.TransactionalID(r.TransactionalID()),
		kgo.TransactionTimeout(r.transactionTimeout()),
	)
	return append(opts, extra...)
}

// targets returns the topics the relay writes to: every main topic and DLQ.
func (r *Relay) targets() []string {
	var out []string
	for _, l := range r.ladders {
		out = append(out, l.Topic(), l.DLQ())
	}
	return out
}

// batchLimits is the producer's batch limit per topic: the topic's
// max.message.bytes, so that a record the topic accepts is not refused by
// the client's default limit (1,000,012 bytes) first.
type batchLimits struct {
	mu sync.Mutex
	m  map[string]int32
}

// The bounds kgo takes for a batch limit, and its default.
const (
	minBatchBytes     = 512
	maxBatchBytes     = 1 << 30
	defaultBatchBytes = 1000012
)

// of is the kgo.ProducerBatchMaxBytesFn: kgo asks once per partition, when it
// first produces to it, after read.
func (b *batchLimits) of(topic string) int32 {
	b.mu.Lock()
	defer b.mu.Unlock()
	if n, ok := b.m[topic]; ok {
		return n
	}
	return defaultBatchBytes
}

// read reads the max.message.bytes of topics. Without the right to describe
// configs the relay keeps kgo's default and says so.
func (b *batchLimits) read(ctx context.Context, adm *kadm.Client, topics []string, log *slog.Logger) {
	configs, err := describeConfigs(ctx, adm, topics)
	if err != nil {
		log.Warn("kretry relay could not read the max.message.bytes of its target topics; it produces batches of at most 1,000,012 bytes",
			"topics", strings.Join(topics, ","), "error", err)
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.m = map[string]int32{}
	for t, c := range configs {
		b.m[t] = min(max(c.maxMessageBytes, minBatchBytes), maxBatchBytes)
	}
}

// checkTopics checks that every tier, main and DLQ topic exists and returns
// the partition count of each main and DLQ topic.
func (r *Relay) checkTopics(ctx context.Context, cl *kgo.Client) (map[string]int32, error) {
	names := slices.Clone(r.topics)
	for _, l := range r.ladders {
		names = append(names, l.Topic(), l.DLQ())
	}
	details, err := kadm.NewClient(cl).ListTopics(ctx, names...)
	if err != nil {
		return nil, fmt.Errorf("relay: listing topics %s: %w", strings.Join(names, ", "), err)
	}
	mains := map[string]bool{}
	for _, l := range r.ladders {
		mains[l.Topic()] = true
	}
	parts := map[string]int32{}
	for _, name := range names {
		d, ok := details[name]
		switch {
		case (!ok || errors.Is(d.Err, kerr.UnknownTopicOrPartition)) && mains[name]:
			return nil, fmt.Errorf("main topic %s does not exist: create it first, then run \"kretry topics apply -c kretry.yaml\" for its retry and DLQ topics", name)
		case !ok || errors.Is(d.Err, kerr.UnknownTopicOrPartition):
			return nil, fmt.Errorf(`topic %s does not exist: run "kretry topics apply -c kretry.yaml"`, name)
		case d.Err != nil:
			return nil, fmt.Errorf("relay: topic %s: %w", name, d.Err)
		case len(d.Partitions) == 0:
			return nil, fmt.Errorf("relay: topic %s has no partitions", name)
		}
		parts[name] = int32(len(d.Partitions))
	}
	return parts, nil
}

type topicPartition struct {
	topic     string
	partition int32
}

// pause is a paused partition and the timer that resumes it.
type pause struct {
	timer *time.Timer
	tier  string
}

// session is the state of one Run.
type session struct {
	r     *Relay
	prod  *kgo.Client
	cons  *kgo.Client
	parts *partitions.Counts // of the main and DLQ topics
	log   *slog.Logger

	mu         sync.Mutex
	closed     bool
	paused     map[topicPartition]*pause
	held       map[topicPartition]held      // see holdBudget
	holdPaused map[topicPartition]bool      // paused by pauseHolders
	inflight   map[topicPartition][]*refeed // re-feeds not yet settled, per partition, in order
	failures   map[topicPartition]int       // consecutive failed produces; poll goroutine only

	// heldRecords and heldBytes are what held holds, as of the last poll;
	// heldByTier its bytes by tier name, as kretry_held_bytes shows them.
	heldRecords, heldBytes int
	heldByTier             map[string]int
	budget                 holdBudget

	// hard is the clients' context, cut when shutting down takes too long;
	// ackc wakes a goroutine that waits for acknowledgements (see await).
	hard   context.Context
	ackc   chan struct{}
	limits *batchLimits // of the main and DLQ topics

	// The exactly-once mode: txn is the session (nil otherwise); marks the
	// next offset of each partition done in the open transaction (s.mu);
	// dirty whether it produced or marked anything, failed whether a
	// produce of it failed (both poll goroutine only); doomed whether a
	// rebalance since it began dooms it; lastEnd when the last one ended.
	txn     *kgo.GroupTransactSession
	marks   map[topicPartition]kgo.EpochOffset
	dirty   atomic.Bool // set by the partitions' goroutines too
	failed  atomic.Bool
	broken  bool // the last transaction did not end: end it again (poll goroutine only)
	doomed  atomic.Bool
	lastEnd time.Time
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
	committed, err := s.txn.End(kgo.PreTxnCommitFnContext(ctx, rewrite), try)
	s.doomed.Store(false)
	s.broken = false
	if err != nil && !errors.Is(err, errNothingMarked) {
		if fenced(err) {
			return fmt.Errorf("relay: transactional id %s: %w: another relay instance runs with the same instance id; give each its own", s.r.TransactionalID(), err)
		}
		s.log.Warn("kretry relay's transaction ended with an error; its re-feeds are aborted and re-fed again", "error", err)
		s.broken = true // ended or not: ended again (a no-op when it did) before the next begins
	}
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
	if !next || s.broken || s.hard.Err() != nil {
		return nil // shutting down, or ended again after a backoff
	}
	if err := s.txn.Begin(); err != nil {
		if fenced(err) {
			return fmt.Errorf("relay: transactional id %s: %w: another relay instance runs with the same instance id; give each its own", s.r.TransactionalID(), err)
		}
		s.log.Warn("kretry relay could not begin a transaction; it tries again", "error", err)
		s.broken = true
	}
	return nil
}

// fenced reports whether err says another producer took the relay's
// transactional id: this relay is a zombie and must stop.
func fenced(err error) bool {
	return errors.Is(err, kerr.ProducerFenced) || errors.Is(err, kerr.InvalidProducerEpoch) ||
		errors.Is(err, kerr.TransactionalIDAuthorizationFailed)
}

// endTxnWithin is endTxn while running: within the delivery timeout (and
// ctx), then the next transaction begins.
func (s *session) endTxnWithin(ctx context.Context, commit bool) error {
	ectx, cancel := context.WithTimeout(ctx, s.r.cfg.deliveryTimeout)
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

// outcome is what became of one partition's records of a poll.
type outcome struct {
	tp      topicPartition
	done    []*kgo.Record // re-fed, forwarded or skipped: to mark
	rewind  *kgo.Record   // the first record not done, if any
	until   time.Time     // when to fetch rewind again
	failure bool          // rewind is for a failed produce, not a due time
	waiting []*kgo.Record // for a not-due rewind: it and the records after it in this poll
	wreads  []read        // what was read of waiting, by index
	wbytes  int           // recordSize of waiting, summed
	tailDue time.Time     // the due time of the last of waiting (until when it cannot be read)
	queue   []*refeed     // the partition's re-feeds in flight, oldest first
}

// Records not yet due are held in memory rather than paused for: the first
// record of a partition that is not due is kept, with the records polled
// after it, and re-fed by the poll loop, which polls with a deadline at the
// earliest due time. A rewind would cost more: kgo's SetOffsets restarts the
// fetch session of every partition and drops what they had buffered, which
// at a steady flow of records into a tier cost seconds of lateness. And what
// is held by its due time costs no fetch when it falls due, when a burst of
// re-feeds needs the CPU and the broker.
//
// What is held at once is bounded, nearest due first, by the hold budget
// (WithRelayHoldBytes), and by a quarter of it for a partition whose first
// waiting record is due later than holdAhead from now. A partition past
// the budget is paused, rewound to its first waiting record, and resumed by a
// timer holdAhead before that record is due; it holds nothing meanwhile, so a
// tier's backlog costs no memory. A holding partition is paused without a
// rewind while the last record it holds is due later than holdAhead from
// now, or while it holds a quarter of the budget's records, and every
// holding partition is paused while the relay holds three quarters of its
// budget: what one more poll brings still fits. A burst of records that fall
// due together is thus fetched and held in the second before it is due, and
// re-fed from memory.
const (
	// holdBytesPerRecord is what the record budget allows per byte of
	// the byte budget: a record with kretry's headers and a small value.
	holdBytesPerRecord = 640

	// holdAhead is how long before their due time records are fetched and
	// held within the whole budget.
	holdAhead = time.Second
)

// holdBudget is what the relay may hold: records and bytes (recordsSize), in
// all and of records due later than holdAhead; a holding partition is
// paused at pauseAt records.
type holdBudget struct {
	records, bytes       int
	farRecords, farBytes int
	pauseAt              int
}

func newHoldBudget(bytes int) holdBudget {
	records := bytes / holdBytesPerRecord
	return holdBudget{records: records, bytes: bytes, farRecords: records / 4, farBytes: bytes / 4, pauseAt: records / 4}
}

// full reports whether what is held leaves no room for one more poll.
func (b holdBudget) full(records, bytes int) bool {
	return records >= b.records*3/4 || bytes >= b.bytes*3/4
}

// recordsSize is what recs hold in keys, values and headers: what the hold
// budget counts. Each record is counted when it is fetched and when it leaves
// what its partition holds, not on every poll.
func recordsSize(recs []*kgo.Record) int {
	n := 0
	for _, r := range recs {
		n += len(r.Key) + len(r.Value)
		for _, h := range r.Headers {
			n += len(h.Key) + len(h.Value)
		}
	}
	return n
}

// internKeys makes the kretry header keys of recs, records about to be
// held, the package's constants, so that the copies kgo allocated for them
// are freed while the records wait.
func internKeys(recs []*kgo.Record) {
	for _, r := range recs {
		for j := range r.Headers {
			if i := indexOf(r.Headers[j].Key); i >= 0 {
				r.Headers[j].Key = known[i]
			}
		}
	}
}

// held is what a partition holds: records polled but not yet due.
type held struct {
	recs  []*kgo.Record
	reads []read    // of recs, by index
	due   time.Time // of recs[0]
	tail  time.Time // of the last of recs, as far as it can be read
	size  int       // recordSize of recs, summed
}

// nextWake returns when the poll loop must look at the held records again,
// data or not: the earliest due time of a held head, or for a partition
// paused while it holds, holdAhead before its last record is due, when that
// is still ahead (it is resumed then); and settleEvery from now while
// re-feeds are in flight, to mark them. Zero: only when records arrive.
func (s *session) nextWake() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	var first time.Time
	if len(s.inflight) > 0 {
		first = now.Add(settleEvery)
	}
	if s.txn != nil && s.dirty.Load() {
		if end := s.lastEnd.Add(s.r.cfg.commitInterval); first.IsZero() || end.Before(first) {
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

// handle processes one poll: the partitions in parallel, each in offset
// order, producing the re-feeds of due records without waiting for them.
// Then, still holding rebalances, it marks what is done (acknowledged, in
// order), holds the records not yet due within the budget, and pauses and
// rewinds every other partition that has a record to wait for or a re-feed
// that failed.
func (s *session) handle(ctx context.Context, fetches kgo.Fetches) {
	// What partitions held from earlier polls comes before what they got now.
	s.mu.Lock()
	recs := make(map[topicPartition][]*kgo.Record, len(s.held))
	reads := make(map[topicPartition][]read, len(s.held))
	sizes := make(map[topicPartition]int, len(s.held)) // recordSize of recs, summed
	for tp, h := range s.held {
		recs[tp], reads[tp], sizes[tp] = h.recs, h.reads, h.size
	}
	clear(s.held)
	inflight := maps.Clone(s.inflight)
	s.mu.Unlock()
	fetches.EachPartition(func(p kgo.FetchTopicPartition) {
		if len(p.Records) > 0 {
			tp := topicPartition{p.Topic, p.Partition}
			recs[tp] = append(slices.Clip(recs[tp]), p.Records...)
			sizes[tp] += recordsSize(p.Records)
		}
	})
	outs := make(map[topicPartition]*outcome, len(recs))
	var wg sync.WaitGroup
	for tp, rs := range recs {
		o := &outcome{tp: tp, queue: inflight[tp]}
		outs[tp] = o
		wg.Go(func() { s.partition(ctx, o, rs, reads[tp], sizes[tp]) })
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
	// Past maxInflight, wait for whole partitions' re-feeds until half of
	// it is left in flight: the producer keeps a batch to send meanwhile.
	for _, o := range outs {
		if n <= maxInflight/2 {
			break
		}
		left := len(o.queue)
		s.settle(o, ctx.Done()) // shutting down: the rest is settled then, within the delivery timeout
		n -= left - len(o.queue)
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

// finish holds, pauses and rewinds after a poll's outcomes are known.
func (s *session) finish(outs []*outcome) {
	s.hold(outs)
	s.pauseHolders(outs)

	pauses := map[string][]int32{}
	rewinds := map[string]map[int32]kgo.EpochOffset{}
	for _, o := range outs {
		s.mark(o.done)
		if o.rewind == nil {
			if len(o.done) > 0 {
				delete(s.failures, o.tp)
			}
			continue
		}
		if o.failure {
			n := s.failures[o.tp]
			s.failures[o.tp] = n + 1
			o.until = time.Now().Add(min(s.r.cfg.retryBackoff<<min(n, 16), s.r.cfg.maxRetryBackoff))
		} else if len(o.done) > 0 {
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
		// Resume holdAhead before the head is due: it is fetched, held, and
		// re-fed at its due time from memory, so the fetch does not add to
		// its lateness. Unless it is that close already (the hold budget
		// was full): then at the due time.
		at := o.until
		if early := o.until.Add(-holdAhead); !o.failure && time.Now().Before(early) {
			at = early
		}
		s.pauseUntil(o.tp, at)
	}
}

// pauseHolders pauses the holding partitions whose last held record is due
// later than holdAhead from now or that hold budget.pauseAt records, and every
// holding partition while the relay holds three quarters of its budget or
// more: what one more poll brings then still fits, so records held already
// are not rewound for lack of room. It resumes the partitions it paused that
// hold nothing now, or whose last record is near and that hold no more than
// half of that, while the relay holds less than three quarters of its
// budget.
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
			s.r.metrics.PausedPartitions.WithLabelValues(s.r.tiers[o.tp.topic].step.Name).Inc()
			pause[o.tp.topic] = append(pause[o.tp.topic], o.tp.partition)
		case paused && (!holding || !full && !h.tail.After(soon) && len(h.recs) <= s.budget.pauseAt/2):
			s.unholdPause(o.tp)
			if o.rewind == nil { // a rewound partition stays paused for its timer
				resume[o.tp.topic] = append(resume[o.tp.topic], o.tp.partition)
			}
		}
	}
	s.mu.Unlock()
	if len(pause) > 0 {
		s.cons.PauseFetchPartitions(pause)
	}
	if len(resume) > 0 {
		s.cons.ResumeFetchPartitions(resume)
	}
}

// hold turns the not-due rewinds of outs into holds, nearest first, within
// the hold budget, or its far part for a head due later than holdAhead from
// now; the rest stay rewinds.
func (s *session) hold(outs []*outcome) {
	var waiting []*outcome
	for _, o := range outs {
		if o.rewind != nil && !o.failure {
			waiting = append(waiting, o)
		}
	}
	slices.SortFunc(waiting, func(a, b *outcome) int { return a.until.Compare(b.until) })
	horizon := time.Now().Add(holdAhead)
	n, size := 0, 0
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, o := range waiting {
		maxRecords, maxBytes := s.budget.records, s.budget.bytes
		if o.until.After(horizon) {
			maxRecords, maxBytes = s.budget.farRecords, s.budget.farBytes
		}
		if n+len(o.waiting) > maxRecords || size+o.wbytes > maxBytes {
			continue // paused and rewound
		}
		n, size = n+len(o.waiting), size+o.wbytes
		s.held[o.tp] = held{recs: o.waiting, reads: o.wreads, due: o.until, tail: o.tailDue, size: o.wbytes}
		o.rewind = nil
	}
	s.heldRecords, s.heldBytes = n, size
	s.countHeld()
}

// countHeld brings kretry_held_bytes to what held holds. s.mu is held. It
// adds the differences, so that relays sharing a registry add up.
func (s *session) countHeld() {
	sums := map[string]int{}
	for tp, h := range s.held {
		sums[s.r.tiers[tp.topic].step.Name] += h.size
	}
	for tier, n := range sums {
		if d := n - s.heldByTier[tier]; d != 0 {
			s.r.metrics.HeldBytes.WithLabelValues(tier).Add(float64(d))
		}
	}
	for tier, n := range s.heldByTier {
		if _, ok := sums[tier]; !ok && n != 0 {
			s.r.metrics.HeldBytes.WithLabelValues(tier).Sub(float64(n))
		}
	}
	s.heldByTier = sums
}

// pauseUntil arms the timer that resumes tp at until. s.mu is held.
func (s *session) pauseUntil(tp topicPartition, until time.Time) {
	tier := s.r.tiers[tp.topic].step.Name
	if old := s.paused[tp]; old != nil {
		old.timer.Stop() // cannot happen while the partition is paused; kept safe
	} else {
		s.r.metrics.PausedPartitions.WithLabelValues(tier).Inc()
	}
	p := &pause{tier: tier}
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
	s.r.metrics.PausedPartitions.WithLabelValues(p.tier).Dec()
	s.cons.ResumeFetchPartitions(map[string][]int32{tp.topic: {tp.partition}})
}

// release drops the pauses of partitions that are leaving this member and
// resumes them: kgo keeps pauses across rebalances, and a partition that
// comes back later must be fetched from its committed offset.
func (s *session) release(cl *kgo.Client, tps map[string][]int32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for topic, ps := range tps {
		for _, p := range ps {
			tp := topicPartition{topic, p}
			delete(s.held, tp) // unmarked: the next owner fetches them again
			s.unholdPause(tp)
			if st := s.paused[tp]; st != nil {
				st.timer.Stop()
				delete(s.paused, tp)
				s.r.metrics.PausedPartitions.WithLabelValues(st.tier).Dec()
			}
		}
	}
	s.countHeld()
	cl.ResumeFetchPartitions(tps)
}

// unholdPause forgets that tp is paused while it holds. s.mu is held.
func (s *session) unholdPause(tp topicPartition) {
	if s.holdPaused[tp] {
		delete(s.holdPaused, tp)
		s.r.metrics.PausedPartitions.WithLabelValues(s.r.tiers[tp.topic].step.Name).Dec()
	}
}

// revoked runs in kgo's group goroutine, between polls (BlockRebalanceOnPoll).
// What the revoked partitions re-fed is marked once acknowledged, then
// committed.
func (s *session) revoked(ctx context.Context, cl *kgo.Client, tps map[string][]int32) {
	if s.txn != nil {
		// The open transaction aborts (the session's wrapper dooms it):
		// nothing of these partitions is committed outside it.
		s.doomed.Store(true)
		s.release(cl, tps)
		return
	}
	sctx, cancel := context.WithTimeout(ctx, s.r.cfg.deliveryTimeout)
	s.settleAll(tps, sctx.Done())
	cancel()
	s.release(cl, tps)
	if err := cl.CommitMarkedOffsets(ctx); err != nil {
		s.log.Error("kretry relay could not commit offsets of revoked partitions; their records will be re-fed again",
			"error", err)
	}
}

// lost drops what the lost partitions have in flight, unmarked: another
// member may own them already.
func (s *session) lost(_ context.Context, cl *kgo.Client, tps map[string][]int32) {
	s.doomed.Store(s.txn != nil)
	s.mu.Lock()
	for topic, ps := range tps {
		for _, p := range ps {
			delete(s.inflight, topicPartition{topic, p})
		}
	}
	s.mu.Unlock()
	s.release(cl, tps)
}

// stop drops every timer; after it no timer touches the client.
func (s *session) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	clear(s.held)
	s.countHeld()
	for tp := range s.holdPaused {
		s.unholdPause(tp)
	}
	for tp, p := range s.paused {
		p.timer.Stop()
		delete(s.paused, tp)
		s.r.metrics.PausedPartitions.WithLabelValues(p.tier).Dec()
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
// reads holds what earlier polls read of recs' headers, by index (it may be
// shorter than recs); size is recordSize of recs, summed.
func (s *session) partition(ctx context.Context, o *outcome, recs []*kgo.Record, reads []read, size int) {
	t := s.r.tiers[o.tp.topic]
	for i, rec := range recs {
		if ctx.Err() != nil {
			return // shutting down: what is not marked is fetched again by the next owner
		}
		var r read
		if i < len(reads) {
			r = reads[i]
		}
		if !r.ok {
			md, ok, canonical, err := decodeHeaders(rec.Headers)
			if err == nil && (!ok || md.Group == "") {
				err = fmt.Errorf("kretry header %s: %w: a record in a retry tier must carry the kretry headers", HeaderGroup, ErrHeaderMissing)
			}
			if err != nil {
				// Rare: the dead letter is written after everything before it.
				if s.settle(o, ctx.Done()); o.rewind != nil || len(o.queue) > 0 {
					return // a failure before it, or shutting down
				}
				if !s.deadLetter(ctx, t, rec, err) {
					o.rewind, o.failure = rec, true
					return
				}
				o.done = append(o.done, rec)
				continue
			}
			if md.Group != t.ladder.Group() {
				s.log.Debug("kretry relay skips another group's record", "topic", rec.Topic, "partition", rec.Partition,
					"offset", rec.Offset, "record_group", quoted(md.Group))
				o.queue = append(o.queue, &refeed{rec: rec}) // done in its turn
				continue
			}
			r = readOf(t, md, canonical)
		}
		if due := time.Unix(0, r.due); time.Now().Before(due) {
			o.rewind, o.until, o.waiting = rec, due, recs[i:]
			o.wbytes = size - recordsSize(recs[:i])
			known := reads[min(i, len(reads)):]
			internKeys(o.waiting[len(known):]) // newly waiting: held from now on
			if len(known) == 0 {
				known = []read{r}
			}
			o.wreads = s.readAll(t, o.waiting, known)
			o.tailDue = due
			if last := o.wreads[len(o.wreads)-1]; last.ok && last.due > r.due {
				o.tailDue = time.Unix(0, last.due)
			}
			return
		}
		o.queue = append(o.queue, s.refeed(ctx, t, rec, r))
	}
}

// read is what the relay needs of a record's kretry headers to re-feed it.
// A record that waits has its headers read when it is first polled, so that
// it is re-fed without reading them again when it falls due, in a burst. The
// zero read is unread, as is a record of another group or with headers that
// cannot be read: the poll that finds it due reads it again and acts.
type read struct {
	due       int64 // kretry-due-at, or the bound it is held to (see readOf), Unix nanoseconds
	attempts  int32
	partition int32 // kretry-original-partition
	canonical bool  // see decodeHeaders; false also when the relay rewrites kretry-due-at or kretry-tier
	untrusted bool  // kretry-due-at was past its bound
	ok        bool
}

// dueSlack is how far kretry-due-at may be past kretry-last-failure-at plus
// the tier's delay and still be trusted: both are cut to milliseconds.
const dueSlack = time.Millisecond

// readOf reads md, the kretry headers of a record in tier t. A
// kretry-due-at later than kretry-last-failure-at plus t's delay (a forged
// header, or a writer's clock far ahead) is not trusted: the record is due
// at that bound, so that it cannot hold its partition for ever. A
// kretry-tier that is not t's name is not propagated: the re-feed carries
// t's name.
func readOf(t tierOf, md Metadata, canonical bool) read {
	r := read{due: md.DueAt.UnixNano(), attempts: int32(md.Attempts), partition: md.OriginalPartition, canonical: canonical, ok: true}
	if bound := md.LastFailureAt.Add(t.step.Delay); md.DueAt.After(bound.Add(dueSlack)) {
		r.due, r.untrusted, r.canonical = bound.UnixNano(), true, false
	}
	if md.Tier != t.step.Name {
		r.canonical = false
	}
	return r
}

// readAll returns what is read of waiting, by index: known (what earlier
// polls read of them, by index; it may be shorter), then the rest read now.
// It grows known in place, which only the partition's hold refers to.
func (s *session) readAll(t tierOf, waiting []*kgo.Record, known []read) []read {
	out := known
	if n := len(waiting) - len(out); n > 0 {
		out = append(out, make([]read, n)...)
	}
	for i := len(known); i < len(waiting); i++ {
		if md, ok, canonical, err := decodeHeaders(waiting[i].Headers); err == nil && ok && md.Group == t.ladder.Group() {
			out[i] = readOf(t, md, canonical)
		}
	}
	return out[:len(waiting)]
}

// maxInflight bounds the re-feeds in flight over all partitions: past it, a
// poll waits for acknowledgements until half of it is left.
const maxInflight = 4 * relayMaxPollRecords

// settleEvery is how soon the poll loop comes back to mark re-feeds in
// flight when no record arrives.
const settleEvery = 10 * time.Millisecond

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
		s.mark(o.done)
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

// settle takes the re-feeds at the front of o.queue that are acknowledged
// and appends their records to o.done, in order; with stop set it waits for
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
			o.done = append(o.done, f.rec)
			continue
		}
		if f.err != nil {
			s.log.Error("kretry relay could not re-feed a record; it stays in its tier and is retried",
				"topic", f.rec.Topic, "partition", f.rec.Partition, "offset", f.rec.Offset,
				"to", t.ladder.Topic(), "error", f.err)
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
		if f.produced {
			s.refed(t, f)
		}
		o.done = append(o.done, f.rec)
	}
	o.queue = nil
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

// refeed is one re-feed in flight, or with produced false a record that
// needs none (another group's) and is done in its turn. One allocation per
// re-feed: the produced record and its result live in it.
type refeed struct {
	rec       *kgo.Record
	due       time.Time
	attempts  int32
	untrusted bool      // re-fed at its bound, not at its kretry-due-at
	dueAt     time.Time // with untrusted: the kretry-due-at it carried
	out       kgo.Record
	produced  bool

	// Set by the produce promise before it marks the re-feed acknowledged;
	// read after acked.Load. ackc is the session's: see await.
	acked atomic.Bool
	err   error
	at    time.Time // when the broker acknowledged it
	ackc  chan struct{}
}

// ack is the re-feed's produce promise.
func (f *refeed) ack(_ *kgo.Record, err error) {
	f.err, f.at = err, time.Now()
	f.acked.Store(true)
	select {
	case f.ackc <- struct{}{}:
	default:
	}
}

// refeed starts producing rec to its main topic, at its original partition
// (modulo the main topic's partition count, refreshed when the original
// partition is not below it: see partitions.Counts). The kretry headers go on
// as they are: when they are canonical (as kretry writes them) rec's headers
// are reused, otherwise Encode rewrites them.
func (s *session) refeed(ctx context.Context, t tierOf, rec *kgo.Record, r read) *refeed {
	main := t.ladder.Topic()
	f := &refeed{rec: rec, due: time.Unix(0, r.due), attempts: r.attempts, untrusted: r.untrusted, produced: true, ackc: s.ackc}
	headers := rec.Headers
	if !r.canonical {
		md, _, _ := Decode(rec.Headers) // read once already
		if r.untrusted {
			f.dueAt = md.DueAt
		}
		md.DueAt, md.Tier = f.due, t.step.Name
		headers = Encode(rec.Headers, md)
	}
	f.out = kgo.Record{
		Topic:     main,
		Partition: s.parts.Partition(ctx, main, r.partition),
		Key:       rec.Key,
		Value:     rec.Value,
		Headers:   headers,
	}
	if size, limit := batchSize(&f.out), s.limits.of(main); size > int(limit) {
		// Not produced: settle dead-letters it (too-large), as the client or
		// the broker would refuse it, which in a transaction would doom it.
		f.produced, f.at = false, time.Now()
		f.err = fmt.Errorf("%w: with its headers the re-feed takes about %d bytes, and %s takes batches of at most %d (max.message.bytes)",
			kerr.MessageTooLarge, size, main, limit)
		f.acked.Store(true)
		return f
	}
	s.dirty.Store(true)
	// The producer's RecordDeliveryTimeout bounds the wait; a context could
	// not cut it shorter once the record is sent (idempotence).
	s.prod.Produce(context.Background(), &f.out, f.ack)
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

// isTooLarge reports whether a produce error says the record is larger than
// its topic, or the client's batch limit, takes.
func isTooLarge(err error) bool {
	return errors.Is(err, kerr.MessageTooLarge) || errors.Is(err, kerr.RecordListTooLarge)
}

// deadLetterTooLarge forwards f's tier record, too large to re-feed to its
// main topic, to the DLQ of its ladder with reason too-large and without its
// value: its kretry-original-* headers say where the value still is (the
// main topic, while its retention keeps it), which is where kretry dlq
// replay reads it from.
func (s *session) deadLetterTooLarge(t tierOf, f *refeed) bool {
	rec, dlq, main := f.rec, t.ladder.DLQ(), t.ladder.Topic()
	md, _, _ := Decode(rec.Headers) // read once already
	md.Tier, md.Reason, md.DueAt = t.step.Name, ReasonTooLarge, time.Now()
	md.Error = fmt.Sprintf("value of %d bytes omitted, too large to re-feed to %s (%v); it is in %s partition %d offset %d; last error: %s",
		len(rec.Value), main, f.err, md.OriginalTopic, md.OriginalPartition, md.OriginalOffset, md.Error)
	out := &kgo.Record{
		Topic:     dlq,
		Partition: s.parts.Partition(context.Background(), dlq, rec.Partition),
		Key:       rec.Key,
		Headers:   Encode(rec.Headers, md),
	}
	s.dirty.Store(true)
	if err := s.produce(out); err != nil {
		s.failed.Store(s.txn != nil)
		s.log.Error("kretry relay could not dead-letter a record too large to re-feed; it stays in its tier and is retried",
			"topic", rec.Topic, "partition", rec.Partition, "offset", rec.Offset, "dlq", dlq, "error", err)
		return false
	}
	s.r.metrics.Forwarded.WithLabelValues(main, metrics.TierDLQ).Inc()
	s.r.metrics.DeadLettered.WithLabelValues(main, string(ReasonTooLarge)).Inc()
	s.r.metrics.TooLarge.WithLabelValues(main).Inc()
	s.log.Error("kretry relay dead-lettered a record too large to re-feed, without its value, which stays in the main topic",
		"topic", rec.Topic, "partition", rec.Partition, "offset", rec.Offset, "to", main, "dlq", dlq, "value_bytes", len(rec.Value),
		"original_topic", quoted(md.OriginalTopic), "original_partition", md.OriginalPartition, "original_offset", md.OriginalOffset,
		"error", f.err)
	return true
}

// refed counts and logs a re-feed the broker acknowledged.
func (s *session) refed(t tierOf, f *refeed) {
	lateness := f.at.Sub(f.due)
	t.refed.Inc()
	t.lateness.Observe(lateness.Seconds())
	if f.untrusted {
		s.r.metrics.UntrustedDueAt.WithLabelValues(t.ladder.Topic(), t.step.Name).Inc()
		s.log.Warn("kretry relay re-fed a record at its last failure plus its tier's delay: its kretry-due-at is later than that, so it is not trusted (forged, or written by a clock far ahead)",
			"topic", f.rec.Topic, "partition", f.rec.Partition, "offset", f.rec.Offset, "to", f.out.Topic,
			"due_at", quoted(FormatTime(f.dueAt)), "refed_at_bound", FormatTime(f.due), "tier_delay", t.step.Delay)
	}
	if s.log.Enabled(context.Background(), slog.LevelDebug) { // the arguments would allocate
		s.log.Debug("kretry relay re-fed a record", "topic", f.rec.Topic, "partition", f.rec.Partition, "offset", f.rec.Offset,
			"to", f.out.Topic, "to_partition", f.out.Partition, "to_offset", f.out.Offset, "attempts", f.attempts,
			"lateness", lateness)
	}
}

// deadLetter forwards rec, whose kretry headers cannot be read, to the DLQ
// of its ladder with reason invalid-metadata, at rec's partition (modulo the
// DLQ's partition count, as refeed), and waits for the acknowledgement.
func (s *session) deadLetter(ctx context.Context, t tierOf, rec *kgo.Record, decodeErr error) bool {
	dlq := t.ladder.DLQ()
	now := time.Now()
	md := Metadata{
		Group:    t.ladder.Group(),
		Attempts: 1,
		Tier:     t.step.Name,
		DueAt:    now,
		// Where kretry found the record: its tier topic.
		OriginalTopic:     rec.Topic,
		OriginalPartition: rec.Partition,
		OriginalOffset:    rec.Offset,
		OriginalTimestamp: rec.Timestamp,
		FirstFailureAt:    now,
		LastFailureAt:     now,
		Error:             "unreadable kretry headers: " + decodeErr.Error(),
		Reason:            ReasonInvalidMetadata,
	}
	out := &kgo.Record{
		Topic:     dlq,
		Partition: s.parts.Partition(ctx, dlq, rec.Partition),
		Key:       rec.Key,
		Value:     rec.Value,
		Headers:   Encode(rec.Headers, md),
	}
	s.dirty.Store(true)
	if err := s.produce(out); err != nil {
		s.failed.Store(s.txn != nil)
		s.log.Error("kretry relay could not dead-letter a record with unreadable kretry headers; it stays in its tier and is retried",
			"topic", rec.Topic, "partition", rec.Partition, "offset", rec.Offset, "dlq", dlq, "error", err)
		return false
	}
	s.r.metrics.Forwarded.WithLabelValues(t.ladder.Topic(), metrics.TierDLQ).Inc()
	s.r.metrics.DeadLettered.WithLabelValues(t.ladder.Topic(), string(ReasonInvalidMetadata)).Inc()
	s.log.Warn("kretry relay dead-lettered a record with unreadable kretry headers",
		"topic", rec.Topic, "partition", rec.Partition, "offset", rec.Offset, "dlq", dlq, "error", decodeErr)
	return true
}

// produce writes rec and waits for its acknowledgement, bounded by the
// delivery timeout; shutdown does not cut it short, so that an acknowledged
// re-feed is also marked.
func (s *session) produce(rec *kgo.Record) error {
	ctx, cancel := context.WithTimeout(s.hard, s.r.cfg.deliveryTimeout)
	defer cancel()
	return s.prod.ProduceSync(ctx, rec).FirstErr()
}
