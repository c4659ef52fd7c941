package metrics_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/config"
	"github.com/kretry/kretry/consumer"
	"github.com/kretry/kretry/headers"
	"github.com/kretry/kretry/internal/kafkatest"
	"github.com/kretry/kretry/ladder"
)

// testTiers is the ladder of these tests: tiers retry-5s and retry-1m, then
// orders.dlq. Virtual time runs it in milliseconds.
var testTiers = []ladder.Tier{{Delay: 5 * time.Second, Attempts: 1}, {Delay: time.Minute, Attempts: 1}}

// cluster is a kfake cluster on a virtual network with a main topic of 2
// partitions per name in mains, and its tier and DLQ topics.
type cluster struct {
	fake *kfake.Cluster
	opts []kgo.Opt // seeds and the virtual dialer
}

func newCluster(t *testing.T, mains ...string) *cluster {
	t.Helper()
	var topics []string
	for _, m := range mains {
		topics = append(topics, m, m+".retry-5s", m+".retry-1m", m+".dlq")
	}
	fake, opts := kafkatest.VirtualFake(t, kfake.NumBrokers(1), kfake.SeedTopics(2, topics...))
	return &cluster{fake: fake, opts: opts}
}

// config is a hand-built config for main topic topic and group group.
func (c *cluster) config(topic, group string) *config.Config {
	return &config.Config{
		Brokers:  c.fake.ListenAddrs(),
		ClientID: "kretry-metrics-test",
		Group:    group,
		Topics: []config.Topic{{
			Name: topic, Tiers: testTiers, DLQ: topic + ".dlq", Naming: ladder.DefaultNaming,
		}},
		Relay: config.Relay{Group: group + "-relay", FetchMaxWait: 100 * time.Millisecond},
	}
}

// produce writes one record per key to topic and waits for the acks.
func (c *cluster) produce(t *testing.T, topic string, keys ...string) {
	t.Helper()
	cl, err := kgo.NewClient(c.opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var recs []*kgo.Record
	for _, k := range keys {
		recs = append(recs, &kgo.Record{Topic: topic, Key: []byte(k), Value: []byte("v-" + k)})
	}
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// start runs a consumer of cfg until the returned stop is called; stop checks
// that Run returned nil.
func (c *cluster) start(t *testing.T, cfg *config.Config, h consumer.Handler, opts ...consumer.Opt) (stop func()) {
	t.Helper()
	opts = append([]consumer.Opt{consumer.WithClientOpts(c.opts...), consumer.WithGracePeriod(time.Second)}, opts...)
	cons, err := consumer.New(cfg, h, opts...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cons.Run(ctx) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}
	t.Cleanup(stop)
	return stop
}

// waitFor polls cond every 50ms of virtual time, failing after 10 minutes of
// it. Inside a synctest bubble that is milliseconds of real time.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	kafkatest.WaitFor(t, what, 50*time.Millisecond, 10*time.Minute, cond)
}

// value is the value of the series name{labels} in g: a counter's or a
// gauge's value, a histogram's sample count; 0 when the series is absent.
// Labels not given are summed over.
func value(t *testing.T, g prometheus.Gatherer, name string, labels ...string) float64 {
	t.Helper()
	if len(labels)%2 != 0 {
		t.Fatalf("value(%s): labels must be name, value pairs: %v", name, labels)
	}
	families, err := g.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	var sum float64
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	metrics:
		for _, m := range f.GetMetric() {
			for i := 0; i < len(labels); i += 2 {
				if labelValue(m, labels[i]) != labels[i+1] {
					continue metrics
				}
			}
			switch {
			case m.Counter != nil:
				sum += m.Counter.GetValue()
			case m.Gauge != nil:
				sum += m.Gauge.GetValue()
			case m.Histogram != nil:
				sum += float64(m.Histogram.GetSampleCount())
			}
		}
	}
	return sum
}

func labelValue(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// names are the metric names in g that start with prefix.
func names(t *testing.T, g prometheus.Gatherer, prefix string) []string {
	t.Helper()
	families, err := g.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	var out []string
	for _, f := range families {
		if strings.HasPrefix(f.GetName(), prefix) {
			out = append(out, f.GetName())
		}
	}
	return out
}

// want fails the test when name{labels} is not v.
func want(t *testing.T, g prometheus.Gatherer, v float64, name string, labels ...string) {
	t.Helper()
	if got := value(t, g, name, labels...); got != v {
		t.Errorf("%s%s = %v, want %v", name, fmtLabels(labels), got, v)
	}
}

func fmtLabels(labels []string) string {
	var parts []string
	for i := 0; i+1 < len(labels); i += 2 {
		parts = append(parts, fmt.Sprintf("%s=%q", labels[i], labels[i+1]))
	}
	return "{" + strings.Join(parts, ",") + "}"
}

// scripted is a handler whose outcome is decided by the key's prefix:
// "ok-" succeeds, "heal-" fails once then succeeds, "perm-" fails permanently,
// "panic-" panics, "always-" always fails with a retryable error.
type scripted struct {
	mu       sync.Mutex
	ok       map[string]int // key → times it succeeded
	attempts map[string]int // key → times handled
}

func newScripted() *scripted {
	return &scripted{ok: make(map[string]int), attempts: make(map[string]int)}
}

var errFlaky = errors.New("flaky dependency")

func (s *scripted) Handle(_ context.Context, rec *kgo.Record) error {
	md, _, err := headers.Decode(rec.Headers)
	if err != nil {
		return err
	}
	key := string(rec.Key)
	s.mu.Lock()
	s.attempts[key]++
	s.mu.Unlock()
	switch {
	case strings.HasPrefix(key, "heal-") && md.Attempts < 1, strings.HasPrefix(key, "always-"):
		return errFlaky
	case strings.HasPrefix(key, "perm-"):
		return consumer.Permanent(errors.New("bad record"))
	case strings.HasPrefix(key, "panic-"):
		panic("handler bug")
	}
	s.mu.Lock()
	s.ok[key]++
	s.mu.Unlock()
	return nil
}

func (s *scripted) succeeded(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ok[key] > 0
}
