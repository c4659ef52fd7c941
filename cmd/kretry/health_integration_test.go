//go:build integration

package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/config"
	"github.com/kretry/kretry/consumer"
	"github.com/kretry/kretry/health"
	"github.com/kretry/kretry/internal/chaos"
	"github.com/kretry/kretry/internal/kafkatest"
)

// TestIntegrationHealthBrokerRestart: on a broker of its own (stopped and
// started again; the shared broker is never touched), `kretry relay
// --metrics` and a consumer's HealthHandler served over HTTP answer
// /healthz and /readyz 200 once they have joined their groups; while the
// broker is stopped /readyz is 503 with a body that says why, and /healthz
// stays 200 (a restart would not help); once the broker is back both are
// ready again.
func TestIntegrationHealthBrokerRestart(t *testing.T) {
	kafkatest.Brokers(t) // skips or fails like every integration test without a broker
	noEnvOverrides(t)
	ctx := t.Context()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	cluster, err := chaos.StartCluster(ctx, root, 1)
	if err != nil {
		t.Fatalf("a broker of this test's own: %v", err)
	}
	t.Cleanup(func() { _ = cluster.Down() })
	seeds := cluster.Brokers

	main := kafkatest.Name(t, "orders")
	createTopic(t, []kgo.Opt{kgo.SeedBrokers(seeds...)}, main, 2, 0)
	cfgPath := writeConfig(t, seeds, main, "")
	if r := kretry(t, "topics", "apply", "-c", cfgPath); r.code != 0 {
		t.Fatalf("apply: %v", r)
	}

	// The relay, as the CLI runs it.
	rctx, stopRelay := context.WithCancel(ctx)
	defer stopRelay()
	var stdout, stderr kafkatest.Buffer
	relayDone := make(chan int, 1)
	go func() {
		relayDone <- runContext(rctx, []string{"relay", "-c", cfgPath, "--json", "--metrics", "127.0.0.1:0"}, &stdout, &stderr)
	}()
	var relayURL string
	kafkatest.WaitFor(t, "the relay's metrics address", 50*time.Millisecond, time.Minute, func() bool {
		for line := range strings.SplitSeq(stderr.String(), "\n") {
			var entry struct{ Msg, URL string }
			if json.Unmarshal([]byte(line), &entry) == nil && entry.Msg == "serving metrics" {
				relayURL = strings.TrimSuffix(entry.URL, "/metrics")
			}
		}
		return relayURL != ""
	})

	// A consumer without its relay, its HealthHandler on a server of the test.
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	cons, err := consumer.New(cfg, consumer.HandlerFunc(func(context.Context, *kgo.Record) error { return nil }), consumer.WithRelay(false))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(cons.HealthHandler())
	defer srv.Close()
	cctx, stopConsumer := context.WithCancel(ctx)
	defer stopConsumer()
	consDone := make(chan error, 1)
	go func() { consDone <- cons.Run(cctx) }()

	get := func(url string) (int, string) {
		t.Helper()
		resp, err := http.Get(url)
		if err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		var r health.Response
		if err := json.Unmarshal(body, &r); err != nil {
			t.Fatalf("GET %s: %d %q is not a health.Response: %v", url, resp.StatusCode, body, err)
		}
		return resp.StatusCode, string(body)
	}
	waitStatus := func(what, url string, want int, within time.Duration) string {
		t.Helper()
		var body string
		kafkatest.WaitFor(t, what, 200*time.Millisecond, within, func() bool {
			var code int
			code, body = get(url)
			return code == want
		})
		return body
	}
	probes := map[string]string{"relay": relayURL, "consumer": srv.URL}
	for who, url := range probes {
		body := waitStatus(who+" ready", url+"/readyz", http.StatusOK, 2*time.Minute)
		t.Logf("%s /readyz while the broker runs:\n%s", who, body)
		if code, body := get(url + "/healthz"); code != http.StatusOK {
			t.Errorf("%s /healthz: %d %s", who, code, body)
		}
	}

	stopped := time.Now()
	if err := cluster.Stop(ctx, 1); err != nil {
		t.Fatal(err)
	}
	for who, url := range probes {
		body := waitStatus(who+" not ready with the broker stopped", url+"/readyz", http.StatusServiceUnavailable, 3*time.Minute)
		t.Logf("%s /readyz %s after the broker stopped:\n%s", who, time.Since(stopped).Round(time.Second), body)
		if !strings.Contains(body, `"status": "not ready"`) || !strings.Contains(body, "not a member of group") {
			t.Errorf("%s /readyz with the broker stopped does not say why:\n%s", who, body)
		}
		if code, body := get(url + "/healthz"); code != http.StatusOK {
			t.Errorf("%s /healthz with the broker stopped: %d %s, want 200: the loop is alive", who, code, body)
		}
	}

	started := time.Now()
	if err := cluster.Start(ctx, 1); err != nil {
		t.Fatal(err)
	}
	for who, url := range probes {
		body := waitStatus(who+" ready again", url+"/readyz", http.StatusOK, 3*time.Minute)
		t.Logf("%s /readyz %s after the broker started again:\n%s", who, time.Since(started).Round(time.Second), body)
	}

	stopConsumer()
	if err := <-consDone; err != nil {
		t.Errorf("consumer Run: %v", err)
	}
	if code, body := get(srv.URL + "/healthz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "Run is not running") {
		t.Errorf("consumer /healthz after Run returned: %d %s", code, body)
	}
	stopRelay()
	if code := <-relayDone; code != 0 {
		t.Errorf("relay exit %d:\n%s", code, stderr.String())
	}
}
