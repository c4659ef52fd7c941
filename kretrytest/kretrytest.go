package kretrytest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/config"
	"github.com/kretry/kretry/consumer"
	"github.com/kretry/kretry/headers"
)

// Cluster is an in-process Kafka with the topics of a config's ladders, the
// consumer run over it, and what became of each record. Its methods may be
// called from any goroutine.
type Cluster struct {
	cfg    *config.Config
	fake   *kfake.Cluster
	kopts  []kgo.Opt // seed brokers and the in-memory dialer
	cl     *kgo.Client
	wait   time.Duration // default bound of Fate
	mainOf map[string]bool

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	running  bool
	stopped  bool  // the consumer's Run returned
	runErr   error // what it returned
	attempts map[origin][]Attempt
	dead     map[origin]*kgo.Record
	changed  chan struct{} // closed and replaced when attempts or dead change
	closed   bool
}

// origin names a record by where it was first produced: a retried record
// carries it in its kretry headers.
type origin struct {
	topic     string
	partition int32
	offset    int64
}

// Opt configures Start and New.
type Opt interface{ apply(*startCfg) }

type startCfg struct{ partitions int32 }

type optFunc func(*startCfg)

func (f optFunc) apply(c *startCfg) { f(c) }

// Partitions sets the partition count of every topic the cluster creates.
// Default: 1, so that records are handled in the order produced.
func Partitions(n int32) Opt { return optFunc(func(c *startCfg) { c.partitions = n }) }

// New is Start for a test: it fails t if the cluster cannot start, and
// closes it when the test ends, failing t if the consumer stopped with an
// error. Call it inside the synctest bubble, with the bubble's t, for
// virtual time.
func New(t testing.TB, cfg *config.Config, opts ...Opt) *Cluster {
	t.Helper()
	c, err := Start(cfg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Error(err)
		}
	})
	return c
}

// Start starts an in-process Kafka with every main, tier, DLQ and DLQ route
// (dlq_routes) topic of cfg's ladders. cfg is not changed; Config returns the copy that points at
// the cluster, whatever brokers cfg named. cfg must pass cfg.Validate once
// its brokers are replaced. Close stops the cluster and what runs on it.
func Start(cfg *config.Config, opts ...Opt) (*Cluster, error) {
	if cfg == nil {
		return nil, errors.New("kretrytest: nil config: parse one with config.Parse or build a config.Config")
	}
	sc := startCfg{partitions: 1}
	for _, o := range opts {
		o.apply(&sc)
	}
	if sc.partitions < 1 {
		return nil, fmt.Errorf("kretrytest: Partitions(%d): give at least 1", sc.partitions)
	}
	cp := *cfg
	c := &cp
	c.Brokers = []string{"127.0.0.1:1"} // replaced below; Validate wants one
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("kretrytest: the config: %w", err)
	}
	ladders, err := c.Ladders()
	if err != nil {
		return nil, fmt.Errorf("kretrytest: the config: %w", err)
	}
	k := &Cluster{
		mainOf:   map[string]bool{},
		attempts: map[origin][]Attempt{},
		dead:     map[origin]*kgo.Record{},
		changed:  make(chan struct{}),
	}
	var topics, dlqs []string
	for _, l := range ladders {
		k.mainOf[l.Topic()] = true
		topics = append(topics, l.Topic(), l.DLQ())
		dlqs = append(dlqs, l.DLQ())
		for _, name := range l.RouteNames() { // dlq_routes: dead letters too
			rt, _ := l.Route(name)
			topics = append(topics, rt)
			dlqs = append(dlqs, rt)
		}
		var total time.Duration
		for _, s := range l.Steps() {
			topics = append(topics, s.Topic)
			total += time.Duration(s.Attempts) * s.Delay
		}
		k.wait = max(k.wait, total)
	}
	k.wait += time.Minute

	// An in-memory network: a synctest bubble's clock stops for real TCP.
	vn := new(kfake.VirtualNetwork)
	port := 40000
	var portMu sync.Mutex
	listen := func(network, address string) (net.Listener, error) {
		if host, p, err := net.SplitHostPort(address); err == nil && p == "0" {
			portMu.Lock()
			port++
			address = net.JoinHostPort(host, strconv.Itoa(port))
			portMu.Unlock()
		}
		return vn.Listen(network, address)
	}
	k.fake, err = kfake.NewCluster(kfake.ListenFn(listen), kfake.NumBrokers(1), kfake.SeedTopics(sc.partitions, topics...))
	if err != nil {
		return nil, fmt.Errorf("kretrytest: starting kfake: %w", err)
	}
	c.Brokers = k.fake.ListenAddrs()
	k.cfg = c
	k.kopts = []kgo.Opt{kgo.SeedBrokers(c.Brokers...), kgo.Dialer(vn.DialContext)}
	k.cl, err = kgo.NewClient(append(k.ClientOpts(),
		kgo.ConsumeTopics(dlqs...), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))...)
	if err != nil {
		k.fake.Close()
		return nil, fmt.Errorf("kretrytest: a client of kfake: %w", err)
	}
	k.ctx, k.cancel = context.WithCancel(context.Background())
	k.wg.Go(k.watchDLQs)
	return k, nil
}

// Config returns the config the cluster runs: a copy of Start's with the
// cluster's brokers. Use it with ClientOpts for a consumer of your own.
func (k *Cluster) Config() *config.Config { return k.cfg }

// ClientOpts returns the franz-go options that connect a client to the
// cluster: its seed brokers and its in-memory dialer. A consumer built on
// Config needs them, in consumer.WithClientOpts.
func (k *Cluster) ClientOpts() []kgo.Opt { return append([]kgo.Opt(nil), k.kopts...) }

// Run starts a consumer (with its relay, unless opts say otherwise) on the
// cluster with h, and returns once it is started; Close stops it. Every call
// of h is recorded for Fate. The error is consumer.New's; an error the
// consumer stops with later is Close's.
func (k *Cluster) Run(h consumer.Handler, opts ...consumer.Opt) error {
	if h == nil {
		return errors.New("kretrytest: Run: nil handler")
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.closed {
		return errors.New("kretrytest: Run: the cluster is closed")
	}
	if k.running {
		return errors.New("kretrytest: Run: a consumer already runs on this cluster")
	}
	cons, err := consumer.New(k.cfg, k.recording(h), append([]consumer.Opt{consumer.WithClientOpts(k.kopts...)}, opts...)...)
	if err != nil {
		return err
	}
	k.running = true
	k.wg.Go(func() {
		err := cons.Run(k.ctx)
		k.mu.Lock()
		k.stopped, k.runErr = true, err
		close(k.changed)
		k.changed = make(chan struct{})
		k.mu.Unlock()
	})
	return nil
}

// recording wraps h so that each call is an Attempt of the record's origin.
func (k *Cluster) recording(h consumer.Handler) consumer.Handler {
	return consumer.HandlerFunc(func(ctx context.Context, rec *kgo.Record) (err error) {
		o, a := origin{rec.Topic, rec.Partition, rec.Offset}, Attempt{}
		if md, ok, derr := headers.Decode(rec.Headers); derr == nil && ok {
			o, a.Tier = origin{md.OriginalTopic, md.OriginalPartition, md.OriginalOffset}, md.Tier
		}
		defer func() {
			if p := recover(); p != nil {
				a.Err = fmt.Errorf("panic: %v", p)
				k.record(o, a)
				panic(p) // the consumer's to recover: the record is dead-lettered, reason panic
			}
			a.Err = err
			k.record(o, a)
		}()
		return h.Handle(ctx, rec)
	})
}

func (k *Cluster) record(o origin, a Attempt) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.attempts[o] = append(k.attempts[o], a)
	close(k.changed)
	k.changed = make(chan struct{})
}

// watchDLQs reads every DLQ record until Close.
func (k *Cluster) watchDLQs() {
	for {
		fs := k.cl.PollFetches(k.ctx)
		if fs.IsClientClosed() || k.ctx.Err() != nil {
			return
		}
		fs.EachRecord(func(r *kgo.Record) {
			md, ok, err := headers.Decode(r.Headers)
			if err != nil || !ok {
				return
			}
			k.mu.Lock()
			k.dead[origin{md.OriginalTopic, md.OriginalPartition, md.OriginalOffset}] = r
			close(k.changed)
			k.changed = make(chan struct{})
			k.mu.Unlock()
		})
	}
}

// Produce writes recs and waits for their acknowledgement. A record without
// a Topic goes to the config's first main topic. On return each record holds
// its partition and offset, which Fate follows it by.
func (k *Cluster) Produce(ctx context.Context, recs ...*kgo.Record) error {
	for _, r := range recs {
		if r.Topic == "" {
			r.Topic = k.cfg.Topics[0].Name
		}
		if !k.mainOf[r.Topic] {
			return fmt.Errorf("kretrytest: Produce: %s is not a main topic of the config", r.Topic)
		}
	}
	return k.cl.ProduceSync(ctx, recs...).FirstErr()
}

// Attempt is one call of the handler with a record.
type Attempt struct {
	// Tier is the tier the record was re-fed from, as in kretry-tier
	// ("retry-5s"); "" for its first delivery.
	Tier string
	// Err is what the handler returned; a panic is an error "panic: ...".
	Err error
}

// Fate is where a record went.
type Fate struct {
	Attempts []Attempt // every call of the handler, in order
	// Handled is true when the last attempt returned nil.
	Handled bool
	// DeadLetter is the record's copy in its DLQ or DLQ route topic, with
	// kretry's headers (headers.Decode); nil unless it was dead-lettered.
	DeadLetter *kgo.Record
	// Reason is why it was dead-lettered: headers.ReasonExhausted,
	// ReasonPermanent, ReasonPanic, ReasonExpired, ...; "" when not.
	Reason headers.Reason
}

// Tiers returns the tiers the record was re-fed from, in order: the ladder
// it went down.
func (f Fate) Tiers() []string {
	var ts []string
	for _, a := range f.Attempts {
		if a.Tier != "" {
			ts = append(ts, a.Tier)
		}
	}
	return ts
}

// Fate waits until rec, produced with Produce, is handled or dead-lettered,
// and returns where it went. It returns an error at once if the consumer has
// stopped (Run's error), and waits at most until ctx is done, and without
// a deadline on ctx at most the longest ladder's delays plus a minute (of
// virtual time in a synctest bubble): a record that the consumer never
// finishes is an error, not a hung test.
func (k *Cluster) Fate(ctx context.Context, rec *kgo.Record) (Fate, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, k.wait)
		defer cancel()
	}
	o := origin{rec.Topic, rec.Partition, rec.Offset}
	for {
		k.mu.Lock()
		f := Fate{Attempts: append([]Attempt(nil), k.attempts[o]...), DeadLetter: k.dead[o]}
		changed, running, stopped, runErr := k.changed, k.running, k.stopped, k.runErr
		k.mu.Unlock()
		if f.DeadLetter != nil {
			md, _, err := headers.Decode(f.DeadLetter.Headers)
			if err != nil {
				return f, fmt.Errorf("kretrytest: Fate: the dead letter of %s: %w", o, err)
			}
			f.Reason = md.Reason
			return f, nil
		}
		if n := len(f.Attempts); n > 0 && f.Attempts[n-1].Err == nil {
			f.Handled = true
			return f, nil
		}
		if stopped {
			return f, fmt.Errorf("kretrytest: Fate: %s was neither handled nor dead-lettered when the consumer stopped: %v", o, runErr)
		}
		select {
		case <-changed:
		case <-ctx.Done():
			if !running {
				return f, fmt.Errorf("kretrytest: Fate: %s was neither handled nor dead-lettered: no consumer runs, call Run first", o)
			}
			return f, fmt.Errorf("kretrytest: Fate: %s was neither handled nor dead-lettered after %d attempts: %w", o, len(f.Attempts), context.Cause(ctx))
		}
	}
}

func (o origin) String() string {
	return fmt.Sprintf("the record at %s[%d]@%d", o.topic, o.partition, o.offset)
}

// Close stops the consumer, the cluster and everything Start began, waits
// for them, and returns the error the consumer stopped with, if any.
// Closing twice is a no-op.
func (k *Cluster) Close() error {
	k.mu.Lock()
	if k.closed {
		k.mu.Unlock()
		return nil
	}
	k.closed = true
	k.mu.Unlock()
	k.cancel()
	k.wg.Wait()
	k.cl.Close()
	k.fake.Close()
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.runErr != nil {
		return fmt.Errorf("kretrytest: the consumer stopped: %w", k.runErr)
	}
	return nil
}
