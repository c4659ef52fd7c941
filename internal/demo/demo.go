package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/config"
	"github.com/kretry/kretry/consumer"
	"github.com/kretry/kretry/headers"
	"github.com/kretry/kretry/ladder"
	"github.com/kretry/kretry/topics"
)

// The demo's topology.
const (
	Topic      = "orders"
	Group      = "demo"
	Partitions = 4
)

// Tiers is the demo's ladder: short enough that a record that never heals
// reaches the DLQ after about 14 s.
var Tiers = []ladder.Tier{
	{Delay: 1 * time.Second, Attempts: 1},
	{Delay: 3 * time.Second, Attempts: 1},
	{Delay: 5 * time.Second, Attempts: 2},
}

// Options configure Run.
type Options struct {
	// Records is how many records to produce. Default 3000.
	Records int
	// Timeout bounds the wait for every record to be accounted for; what is
	// not accounted for by then is reported lost. Default 50s.
	Timeout time.Duration
	// Progress receives the metrics address and a line per second. Default:
	// discarded.
	Progress io.Writer
	// Logger receives the consumer's and the relay's logs. Default: discarded.
	Logger *slog.Logger
	// Tiers is the ladder. Default: the package's Tiers (1s, 3s, 5s×2).
	Tiers []ladder.Tier
	// Report, when not nil, runs at the end while the embedded broker still
	// runs, with its seed brokers: `kretry demo` prints the tally there and
	// lists the DLQ.
	Report func(ctx context.Context, r *Result, brokers []string) error
}

// Result is a finished demo run.
type Result struct {
	Tally Tally
	// Tiers are the ladder's tier names in order, for Tally.WriteText.
	Tiers []string
	// DLQ is the DLQ topic.
	DLQ string
}

// Run runs the demo and returns its tally. It starts everything it needs and
// stops it all before it returns: no goroutine outlives it.
func Run(ctx context.Context, o Options) (*Result, error) {
	if o.Records <= 0 {
		o.Records = 3000
	}
	if o.Timeout <= 0 {
		o.Timeout = 50 * time.Second
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if len(o.Tiers) == 0 {
		o.Tiers = Tiers
	}
	start := time.Now()

	cluster, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		return nil, fmt.Errorf("start the embedded broker: %w", err)
	}
	defer cluster.Close()
	brokers := cluster.ListenAddrs()

	cfg := &config.Config{
		Brokers:  brokers,
		ClientID: "kretry-demo",
		Group:    Group,
		Topics: []config.Topic{{
			Name:   Topic,
			Tiers:  o.Tiers,
			DLQ:    Topic + ".dlq",
			Naming: ladder.DefaultNaming,
		}},
		Relay: config.Relay{Group: Group + config.DefaultRelaySuffix, FetchMaxWait: config.DefaultFetchMaxWait},
	}
	ladders, err := cfg.Ladders()
	if err != nil {
		return nil, err
	}
	ladder := ladders[0]
	var tiers []string
	for _, s := range ladder.Steps() {
		tiers = append(tiers, s.Name)
	}

	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ClientID("kretry-demo-producer"))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	if err := createTopics(ctx, adm, cfg); err != nil {
		return nil, err
	}

	reg := prometheus.NewRegistry()
	obs := &observer{ok: make(map[string]int)}
	c, err := consumer.New(cfg, consumer.HandlerFunc(obs.handle),
		consumer.WithLogger(o.Logger), consumer.WithRegisterer(reg))
	if err != nil {
		return nil, err
	}
	stopMetrics, addr, err := serveMetrics(reg, c.HealthHandler())
	if err != nil {
		return nil, err
	}
	defer stopMetrics()
	fmt.Fprintf(o.Progress, "embedded broker on %s; topics %s, %s, %s\n", strings.Join(brokers, ","), Topic, strings.Join(topicsOf(ladder), ", "), ladder.DLQ())
	fmt.Fprintf(o.Progress, "metrics on http://%s/metrics (health on /healthz and /readyz) while the demo runs\n", addr)
	runCtx, stop := context.WithCancel(ctx)
	runDone := make(chan struct{})
	var runErr error
	go func() { defer close(runDone); runErr = c.Run(runCtx) }()
	stopConsumer := sync.OnceValue(func() error {
		stop()
		<-runDone
		return runErr
	})
	defer stopConsumer()

	if err := produce(ctx, cl, o.Records); err != nil {
		return nil, err
	}
	fmt.Fprintf(o.Progress, "produced %d records to %s; a line per second: records waiting in each tier (written to it, not re-fed yet) and in the DLQ\n",
		o.Records, Topic)

	dlqReader, err := newDLQReader(brokers, ladder.DLQ())
	if err != nil {
		return nil, err
	}
	defer dlqReader.close()
	dlqCtx, stopDLQ := context.WithCancel(ctx)
	dlqDone := make(chan struct{})
	go func() { defer close(dlqDone); dlqReader.run(dlqCtx) }()

	refed := func(tier string) int64 { return counter(reg, "kretry_refed_total", "topic", Topic, "tier", tier) }
	waitErr := watch(ctx, o, adm, refed, ladder, obs, dlqReader, runDone, start)
	runErrStop := stopConsumer()
	stopDLQ()
	<-dlqDone
	if runErrStop != nil {
		return nil, fmt.Errorf("consumer: %w", runErrStop)
	}
	if ctx.Err() != nil {
		return nil, errors.New("interrupted before every record was accounted for")
	}
	if waitErr != nil && !errors.Is(waitErr, errTimeout) {
		return nil, waitErr
	}

	// Read both topics back to their end offsets now that nothing writes.
	ends, err := adm.ListEndOffsets(ctx, ladder.DLQ())
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("end offsets of %s: %w", ladder.DLQ(), err)
	}
	if err := dlqReader.drain(ctx, ends); err != nil {
		return nil, err
	}
	produced, err := readProduced(ctx, brokers, adm)
	if err != nil {
		return nil, err
	}
	ok, lateness := obs.snapshot()
	t := computeTally(produced, ok, dlqReader.snapshot(), lateness, tiers)
	t.Elapsed = time.Since(start)
	stopMetrics()
	fmt.Fprintf(o.Progress, "metrics server on %s stopped\n", addr)

	res := &Result{Tally: t, Tiers: tiers, DLQ: ladder.DLQ()}
	if o.Report != nil {
		if err := o.Report(ctx, res, brokers); err != nil {
			return nil, err
		}
	}
	return res, nil
}

var errTimeout = errors.New("timed out")

func topicsOf(l *ladder.Ladder) []string {
	var ts []string
	for _, s := range l.Steps() {
		ts = append(ts, s.Topic)
	}
	return ts
}

// createTopics creates the main topic, then the ladder's tier and DLQ topics
// the way `kretry topics apply` does.
func createTopics(ctx context.Context, adm *kadm.Client, cfg *config.Config) error {
	if _, err := adm.CreateTopic(ctx, Partitions, 1, nil, Topic); err != nil {
		return fmt.Errorf("create topic %s: %w", Topic, err)
	}
	ladders, err := cfg.Ladders()
	if err != nil {
		return err
	}
	var ps []topics.Provision
	for i, l := range ladders {
		ps = append(ps, topics.Provision{
			Ladder:        l,
			TierRetention: cfg.Topics[i].TierRetention,
			DLQRetention:  cfg.Topics[i].DLQRetention,
		})
	}
	plan, err := topics.Plan(ctx, adm, ps)
	if err != nil {
		return err
	}
	_, err = topics.Apply(ctx, adm, plan)
	return err
}

// serveMetrics serves reg on /metrics, and health on /healthz and /readyz,
// on a free port of 127.0.0.1 until stop.
func serveMetrics(reg *prometheus.Registry, health http.Handler) (stop func(), addr string, err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", fmt.Errorf("listen for /metrics: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.Handle("/healthz", health)
	mux.Handle("/readyz", health)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	var once sync.Once
	return func() {
		once.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			_ = srv.Shutdown(ctx)
			<-done
		})
	}, ln.Addr().String(), nil
}

// produce writes n records with keys Key(0..n-1), each acknowledged.
func produce(ctx context.Context, cl *kgo.Client, n int) error {
	const batch = 500
	for i := 0; i < n; i += batch {
		recs := make([]*kgo.Record, 0, batch)
		for j := i; j < min(n, i+batch); j++ {
			key := Key(j)
			recs = append(recs, &kgo.Record{
				Topic:   Topic,
				Key:     []byte(key),
				Value:   fmt.Appendf(nil, `{"order":%q,"amount_cents":%d}`, key, 100+j%9900),
				Headers: []kgo.RecordHeader{{Key: "content-type", Value: []byte("application/json")}},
			})
		}
		if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			return fmt.Errorf("produce to %s: %w", Topic, err)
		}
	}
	return nil
}

// observer is the demo's handler and what it saw.
type observer struct {
	mu       sync.Mutex
	accepted []accepted
	ok       map[string]int // key → times accepted
	lateness []time.Duration
}

var (
	errUnavailable = errors.New("payment service: 503 unavailable")
	errRejected    = errors.New("order rejected: negative amount")
)

func (o *observer) handle(_ context.Context, rec *kgo.Record) error {
	md, refed, err := headers.Decode(rec.Headers)
	if err != nil {
		return err
	}
	if refed && md.Attempts > 0 {
		late := time.Since(md.DueAt)
		o.mu.Lock()
		o.lateness = append(o.lateness, late)
		o.mu.Unlock()
	}
	p := PlanFor(rec.Key)
	switch p.Kind {
	case Heal:
		if md.Attempts < p.Failures {
			return errUnavailable
		}
	case Exhausted:
		return errUnavailable
	case Permanent:
		return consumer.Permanent(errRejected)
	case Panic:
		panic("decode order: unexpected end of JSON input")
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.accepted = append(o.accepted, accepted{Key: string(rec.Key), Tier: md.Tier})
	o.ok[string(rec.Key)]++
	return nil
}

func (o *observer) snapshot() ([]accepted, []time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.accepted), slices.Clone(o.lateness)
}

func (o *observer) distinctOK() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.ok)
}

// counter sums the series of the counter name in g whose labels include the
// given name, value pairs.
func counter(g prometheus.Gatherer, name string, labels ...string) int64 {
	families, err := g.Gather()
	if err != nil {
		return 0
	}
	var sum float64
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	series:
		for _, m := range f.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, lp := range m.GetLabel() {
					if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
						found = true
						break
					}
				}
				if !found {
					continue series
				}
			}
			sum += m.GetCounter().GetValue()
		}
	}
	return int64(sum)
}
