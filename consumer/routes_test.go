package consumer_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"testing/synctest"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/consumer"
	"github.com/kretry/kretry/headers"
	"github.com/kretry/kretry/internal/metrics"
)

var errFraud = errors.New("stolen card")

// DLQ routes: DeadLetterTo in a handler and DeadLetterRoute from a
// classifier send a record straight to the route's topic, reason permanent,
// with kretry-route; an unknown route name goes to the DLQ, logged.
func TestDLQRoutes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := newConfig()
		cfg.Topics[0].DLQRoutes = map[string]string{"invalid": "orders.invalid", "fraud": "{topic}.fraud"}
		c := newClusterWith(t, cfg, 1, 1)
		reg := prometheus.NewRegistry()
		var logs logBuffer
		var calls counter
		h := consumer.HandlerFunc(func(_ context.Context, r *kgo.Record) error {
			calls.add(r.Key)
			switch string(r.Key) {
			case "invalid":
				return consumer.DeadLetterTo("invalid", errors.New("no sku"))
			case "fraud":
				return errFraud
			case "unknown":
				return consumer.DeadLetterTo("nope", errors.New("typo in the route"))
			}
			return nil
		})
		classify := func(err error) consumer.Decision {
			if errors.Is(err, errFraud) {
				return consumer.DeadLetterRoute("fraud")
			}
			return consumer.DefaultClassifier(err)
		}
		c.produce(&kgo.Record{Key: []byte("invalid")}, &kgo.Record{Key: []byte("fraud")},
			&kgo.Record{Key: []byte("unknown")}, &kgo.Record{Key: []byte("fine")})
		r := c.start(h, consumer.WithRelay(false), consumer.WithRegisterer(reg), consumer.WithLogger(logs.logger()),
			consumer.WithClassifier(classify))
		waitFor(t, "every record committed", func() bool { return len(c.read(c.ladder.DLQ())) == 1 && calls.get("fine") == 1 })
		waitFor(t, "every record committed", func() bool { return c.committed(testGroup, testTopic)[0] == 4 })
		if err := r.stop(); err != nil {
			t.Fatalf("Run: %v", err)
		}
		for _, tc := range []struct{ topic, key, route, err string }{
			{"orders.invalid", "invalid", "invalid", "no sku"},
			{"orders.fraud", "fraud", "fraud", "stolen card"},
			{c.ladder.DLQ(), "unknown", "", `unknown DLQ route "nope" (not in dlq_routes of orders): typo in the route`},
		} {
			recs := c.read(tc.topic)
			if len(recs) != 1 || string(recs[0].Key) != tc.key {
				t.Errorf("%s holds %d records, want only %s", tc.topic, len(recs), tc.key)
				continue
			}
			md, _, err := headers.Decode(recs[0].Headers)
			if err != nil {
				t.Fatal(err)
			}
			if md.Reason != headers.ReasonPermanent || md.Route != tc.route || md.Error != tc.err || md.Attempts != 1 {
				t.Errorf("%s: reason %s, route %q, error %q, attempts %d; want permanent, %q, %q, 1", tc.topic, md.Reason, md.Route, md.Error, md.Attempts, tc.route, tc.err)
			}
			if v, ok := header(recs[0], headers.HeaderRoute); (tc.route != "") != ok || v != tc.route {
				t.Errorf("%s: kretry-route %q (present %v), want %q", tc.topic, v, ok, tc.route)
			}
		}
		for _, s := range c.ladder.Steps() {
			if n := len(c.read(s.Topic)); n != 0 {
				t.Errorf("%s holds %d records, want 0: a routed record is never retried", s.Topic, n)
			}
		}
		if n := calls.total(); n != 4 {
			t.Errorf("%d handler calls, want 4", n)
		}
		m, _ := metrics.New(reg)
		for _, label := range []string{"invalid", "fraud", "dlq"} {
			if got := metricValue(t, m.DeadLettered.WithLabelValues(testTopic, "permanent", label)); got != 1 {
				t.Errorf("kretry_dead_lettered_total{reason=permanent,dlq=%s} = %v, want 1", label, got)
			}
		}
		if !strings.Contains(logs.String(), "DLQ route its topic does not have") {
			t.Error("no log line for the unknown route")
		}
	})
}
