package consumer_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/config"
	"github.com/kretry/kretry/consumer"
	"github.com/kretry/kretry/headers"
	"github.com/kretry/kretry/internal/kafkatest"
	"github.com/kretry/kretry/ladder"
)

// The ladder of the unit tests: 5s → 1m → 10m (2 attempts) → DLQ.
var testTiers = []ladder.Tier{
	{Delay: 5 * time.Second, Attempts: 1},
	{Delay: time.Minute, Attempts: 1},
	{Delay: 10 * time.Minute, Attempts: 2},
}

const (
	testTopic = "orders"
	testGroup = "orders-service"
)

// cluster is a kfake cluster on a virtual network, for tests inside a
// synctest bubble, with the main, tier and DLQ topics of testTopic.
type cluster struct {
	t      *testing.T
	fake   *kfake.Cluster
	kopts  []kgo.Opt
	cl     *kgo.Client // producer (manual partitions) and admin
	adm    *kadm.Client
	cfg    *config.Config
	ladder *ladder.Ladder
}

// newCluster starts kfake with testTopic on mainParts partitions and its
// tier and DLQ topics on sideParts partitions.
func newCluster(t *testing.T, mainParts, sideParts int32) *cluster {
	t.Helper()
	return newClusterOn(t, mainParts, sideParts, true)
}

// newClusterOn is newCluster on the virtual network (for a synctest bubble)
// or, with virtual false, on real TCP on 127.0.0.1, for the tests that a
// bubble cannot run: kgo waits on mutexes, which synctest does not count as
// idle, while a request to a silent broker waits for its timeout.
func newClusterOn(t *testing.T, mainParts, sideParts int32, virtual bool) *cluster {
	t.Helper()
	return newClusterCfg(t, newConfig(), mainParts, sideParts, virtual)
}

// newClusterWith is newCluster with cfg (its brokers replaced), its DLQ
// routes seeded too.
func newClusterWith(t *testing.T, cfg *config.Config, mainParts, sideParts int32) *cluster {
	t.Helper()
	return newClusterCfg(t, cfg, mainParts, sideParts, true)
}

func newClusterCfg(t *testing.T, cfg *config.Config, mainParts, sideParts int32, virtual bool) *cluster {
	t.Helper()
	ladders, err := cfg.Ladders()
	if err != nil {
		t.Fatal(err)
	}
	l := ladders[0]
	side := l.DLQTopics()
	for _, s := range l.Steps() {
		side = append(side, s.Topic)
	}
	fopts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.SeedTopics(mainParts, testTopic),
		kfake.SeedTopics(sideParts, side...),
	}
	var fake *kfake.Cluster
	var kopts []kgo.Opt
	if virtual {
		fake, kopts = kafkatest.VirtualFake(t, fopts...)
	} else {
		var addrs []string
		fake, addrs = kafkatest.Fake(t, fopts...) // on 127.0.0.1
		kopts = []kgo.Opt{kgo.SeedBrokers(addrs...)}
	}
	cfg.Brokers = fake.ListenAddrs()
	cl, err := kgo.NewClient(append(kopts, kgo.RecordPartitioner(kgo.ManualPartitioner()))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return &cluster{t: t, fake: fake, kopts: kopts, cl: cl, adm: kadm.NewClient(cl), cfg: cfg, ladder: l}
}

// newConfig returns the config of testTopic with the test ladder; its broker
// is a placeholder that tests replace.
func newConfig() *config.Config {
	return &config.Config{
		Brokers: []string{"127.0.0.1:9"},
		Group:   testGroup,
		Topics: []config.Topic{{
			Name:  testTopic,
			Tiers: slices.Clone(testTiers),
		}},
	}
}

// produce writes recs (Topic defaults to testTopic) and fails the test on error.
func (c *cluster) produce(recs ...*kgo.Record) {
	c.t.Helper()
	for _, r := range recs {
		if r.Topic == "" {
			r.Topic = testTopic
		}
	}
	if err := c.cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		c.t.Fatalf("produce: %v", err)
	}
}

// read returns every record of topic, by partition then offset.
func (c *cluster) read(topic string) []*kgo.Record {
	c.t.Helper()
	ctx := context.Background()
	ends, err := c.adm.ListEndOffsets(ctx, topic)
	if err != nil {
		c.t.Fatalf("list end offsets of %s: %v", topic, err)
	}
	want := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err != nil {
			c.t.Fatalf("end offset of %s[%d]: %v", topic, o.Partition, o.Err)
		}
		if o.Offset > 0 {
			want[o.Partition] = o.Offset
		}
	})
	if len(want) == 0 {
		return nil
	}
	start := map[int32]kgo.Offset{}
	for p := range want {
		start[p] = kgo.NewOffset().AtStart()
	}
	rd, err := kgo.NewClient(append(c.kopts, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: start}))...)
	if err != nil {
		c.t.Fatal(err)
	}
	defer rd.Close()
	byPart := map[int32][]*kgo.Record{}
	for len(want) > 0 {
		fs := rd.PollFetches(ctx)
		if err := fs.Err(); err != nil {
			c.t.Fatalf("read %s: %v", topic, err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			byPart[r.Partition] = append(byPart[r.Partition], r)
			if r.Offset+1 >= want[r.Partition] {
				delete(want, r.Partition)
			}
		})
	}
	var out []*kgo.Record
	for p := int32(0); p < 1<<10 && len(byPart) > 0; p++ {
		out = append(out, byPart[p]...)
		delete(byPart, p)
	}
	return out
}

// committed returns the group's committed offset of each partition of topic
// that has one.
func (c *cluster) committed(group, topic string) map[int32]int64 {
	c.t.Helper()
	os, err := c.adm.FetchOffsets(context.Background(), group)
	if err != nil {
		c.t.Fatalf("fetch offsets of %s: %v", group, err)
	}
	out := map[int32]int64{}
	os.Each(func(o kadm.OffsetResponse) {
		if o.Topic == topic && o.Err == nil && o.At >= 0 {
			out[o.Partition] = o.At
		}
	})
	return out
}

// ends returns the end offset of each partition of topic.
func (c *cluster) ends(topic string) map[int32]int64 {
	c.t.Helper()
	ends, err := c.adm.ListEndOffsets(context.Background(), topic)
	if err != nil {
		c.t.Fatal(err)
	}
	out := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) { out[o.Partition] = o.Offset })
	return out
}

// running is a Consumer's Run in a goroutine.
type running struct {
	cancel context.CancelFunc
	once   sync.Once
	errc   chan error
	err    error
}

// start builds a Consumer on c's config (with c's dialer) and runs it until
// stop or the end of the test.
func (c *cluster) start(h consumer.Handler, opts ...consumer.Opt) *running {
	c.t.Helper()
	cons, err := consumer.New(c.cfg, h, append([]consumer.Opt{consumer.WithClientOpts(c.kopts...)}, opts...)...)
	if err != nil {
		c.t.Fatalf("consumer.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{cancel: cancel, errc: make(chan error, 1)}
	go func() { r.errc <- cons.Run(ctx) }()
	c.t.Cleanup(func() { r.stop() })
	return r
}

// stop cancels Run's context and returns Run's error.
func (r *running) stop() error {
	r.once.Do(func() {
		r.cancel()
		r.err = <-r.errc
	})
	return r.err
}

// waitFor polls cond every 100ms of virtual time and fails the test when it
// is still false after two virtual hours: a liveness bound, not a speed check.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	kafkatest.WaitFor(t, what, 100*time.Millisecond, 2*time.Hour, cond)
}

// header returns the value of the only header named key, and whether there
// is exactly one.
func header(r *kgo.Record, key string) (string, bool) {
	var v string
	n := 0
	for _, h := range r.Headers {
		if h.Key == key {
			v, n = string(h.Value), n+1
		}
	}
	return v, n == 1
}

// userHeaders renders the non-kretry headers of r for comparison.
func userHeaders(hs []kgo.RecordHeader) string {
	var b strings.Builder
	for _, h := range headers.UserHeaders(hs) {
		fmt.Fprintf(&b, "%q=%q;", h.Key, h.Value)
	}
	return b.String()
}

// counter counts calls per record key.
type counter struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *counter) add(key []byte) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	c.n[string(key)]++
	return c.n[string(key)]
}

func (c *counter) get(key string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[key]
}

func (c *counter) total() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, v := range c.n {
		n += v
	}
	return n
}

// logBuffer is a slog handler target the tests can search.
type logBuffer struct{ kafkatest.Buffer }

func (l *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// metricValue returns the value of a counter or gauge with one series.
func metricValue(t *testing.T, c prometheus.Collector) float64 {
	t.Helper()
	ch := make(chan prometheus.Metric, 16)
	c.Collect(ch)
	close(ch)
	var vals []float64
	for m := range ch {
		var pb dto.Metric
		if err := m.Write(&pb); err != nil {
			t.Fatal(err)
		}
		switch {
		case pb.Counter != nil:
			vals = append(vals, pb.Counter.GetValue())
		case pb.Gauge != nil:
			vals = append(vals, pb.Gauge.GetValue())
		}
	}
	if len(vals) != 1 {
		t.Fatalf("collector has %d counter or gauge series, want 1", len(vals))
	}
	return vals[0]
}

// seriesCount returns how many series c collects.
func seriesCount(c prometheus.Collector) int {
	ch := make(chan prometheus.Metric, 64)
	go func() { c.Collect(ch); close(ch) }()
	n := 0
	for range ch {
		n++
	}
	return n
}

var errTransient = errors.New("transient failure")
