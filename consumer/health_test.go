package consumer_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kretry/kretry/consumer"
	"github.com/kretry/kretry/health"
	"github.com/kretry/kretry/internal/kafkatest"
)

// probe serves path from h and returns the status code and the body.
func probe(t *testing.T, h http.Handler, path string) (int, health.Response) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	var resp health.Response
	if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil {
		t.Fatalf("GET %s: %d %q: %v", path, rec.Code, rec.Body.String(), err)
	}
	return rec.Code, resp
}

// failed returns the reason of the check named name that failed in resp, or
// "" when it did not fail.
func failed(resp health.Response, name string) string {
	for _, r := range resp.Components {
		for _, c := range r.Checks {
			if c.Name == name && !c.OK {
				return c.Reason
			}
		}
	}
	return ""
}

// TestHealthTransitions: a consumer is neither live nor ready before Run;
// live and then ready once it has joined its group; not ready while its
// forwards to a tier have failed for longer than the bound (the broker
// refuses them), ready again once one is acknowledged; not live after Run
// returns. With the in-process relay, /readyz judges both.
func TestHealthTransitions(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCluster(t, 1, 1)
		tier := c.ladder.Steps()[0].Topic
		details, err := c.adm.ListTopics(context.Background(), tier)
		if err != nil {
			t.Fatal(err)
		}
		tierID := details[tier].ID // produce v13 names topics by id
		var refuse atomic.Bool
		c.fake.ControlKey(int16(kmsg.Produce), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
			c.fake.KeepControl()
			req := kreq.(*kmsg.ProduceRequest)
			for _, rt := range req.Topics {
				if (rt.Topic == tier || rt.TopicID == tierID) && refuse.Load() {
					return kafkatest.RefuseProduce(req, kerr.NotEnoughReplicas.Code), nil, true
				}
			}
			return nil, nil, false
		})
		c.cfg.DeliveryTimeout = 5 * time.Second
		var cons *consumer.Consumer
		cons, err = consumer.New(c.cfg, consumer.HandlerFunc(func(context.Context, *kgo.Record) error { return errTransient }),
			consumer.WithClientOpts(c.kopts...))
		if err != nil {
			t.Fatal(err)
		}
		h := cons.HealthHandler(health.WithFailingAfter(20 * time.Second))

		if code, resp := probe(t, h, "/healthz"); code != http.StatusServiceUnavailable || resp.Status != "not live" ||
			len(resp.Components) != 2 || failed(resp, "running") == "" {
			t.Errorf("/healthz before Run: %d %+v, want 503, not live, the consumer's and the relay's Run not running", code, resp)
		}

		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- cons.Run(ctx) }()
		waitFor(t, "ready", func() bool { code, _ := probe(t, h, "/readyz"); return code == http.StatusOK })
		code, resp := probe(t, h, "/healthz")
		if code != http.StatusOK || resp.Status != "ok" {
			t.Errorf("/healthz while running: %d %+v", code, resp)
		}
		_, resp = probe(t, h, "/readyz")
		for _, r := range resp.Components {
			if r.Component == "consumer" && (r.Group != testGroup || r.Partitions != 1) {
				t.Errorf("/readyz: %+v, want group %s owning 1 partition", r, testGroup)
			}
		}

		refuse.Store(true)
		c.produce(&kgo.Record{Key: []byte("k")})
		waitFor(t, "not ready: forwards failing", func() bool {
			code, _ := probe(t, h, "/readyz")
			return code == http.StatusServiceUnavailable
		})
		code, resp = probe(t, h, "/readyz")
		if reason := failed(resp, "writes"); resp.Status != "not ready" || !strings.Contains(reason, "forwards to the retry tiers and the DLQ have failed for") ||
			!strings.Contains(reason, "timed out") {
			t.Errorf("/readyz with failing forwards: %d %+v", code, resp)
		}
		if code, _ := probe(t, h, "/healthz"); code != http.StatusOK {
			t.Errorf("/healthz with failing forwards: %d, want 200: failing writes do not make it restart", code)
		}

		refuse.Store(false)
		waitFor(t, "ready again", func() bool { code, _ := probe(t, h, "/readyz"); return code == http.StatusOK })

		cancel()
		if err := <-done; err != nil {
			t.Fatalf("Run: %v", err)
		}
		if code, resp := probe(t, h, "/healthz"); code != http.StatusServiceUnavailable || failed(resp, "running") == "" {
			t.Errorf("/healthz after Run returned: %d %+v", code, resp)
		}
	})
}
