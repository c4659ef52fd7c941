package demo

import (
	"bytes"
	"context"
	"io"
	"maps"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/kretry/kretry/headers"
	"github.com/kretry/kretry/ladder"
)

// TestRunAccountsForEveryRecord runs the whole demo on a short ladder and
// checks its tally against what PlanFor decided for every key.
func TestRunAccountsForEveryRecord(t *testing.T) {
	defer goleak.VerifyNone(t)
	tiers := []ladder.Tier{
		{Delay: 100 * time.Millisecond, Attempts: 1},
		{Delay: 200 * time.Millisecond, Attempts: 1},
		{Delay: 300 * time.Millisecond, Attempts: 2},
	}
	names := []string{"retry-100ms", "retry-200ms", "retry-300ms"}
	const n = 600

	want := Tally{Produced: n, OKAfterRetry: make(map[string]int), DeadLettered: make(map[string]int)}
	for _, name := range names {
		want.OKAfterRetry[name] = 0
	}
	refeeds := 0
	for i := range n {
		switch p := PlanFor([]byte(Key(i))); p.Kind {
		case OK:
			want.OKFirstTry++
		case Heal:
			// failure k goes to tier k (the third tier has 2 attempts), and the
			// record is accepted when it comes back from there
			want.OKAfterRetry[names[p.Failures-1]]++
			refeeds += p.Failures
		case Permanent:
			want.DeadLettered[string(headers.ReasonPermanent)]++
		case Panic:
			want.DeadLettered[string(headers.ReasonPanic)]++
		case Exhausted:
			want.DeadLettered[string(headers.ReasonExhausted)]++
			refeeds += 4 // 1 + 1 + 2 attempts, then the DLQ
		}
	}
	for _, r := range []headers.Reason{headers.ReasonPermanent, headers.ReasonPanic, headers.ReasonExhausted} {
		if want.DeadLettered[string(r)] == 0 {
			t.Fatalf("no %s record among the first %d keys: raise n", r, n)
		}
	}

	var progress bytes.Buffer
	var reportedTo []string
	res, err := Run(t.Context(), Options{
		Records:  n,
		Tiers:    tiers,
		Progress: &progress,
		Report: func(_ context.Context, r *Result, brokers []string) error {
			reportedTo = brokers
			if r.DLQ != Topic+".dlq" {
				t.Errorf("Result.DLQ = %q, want %q", r.DLQ, Topic+".dlq")
			}
			return nil
		},
	})
	if err != nil {
		t.Fatalf("Run: %v\nprogress:\n%s", err, progress.String())
	}
	got := res.Tally
	if got.Produced != want.Produced || got.OKFirstTry != want.OKFirstTry || got.Lost != 0 || got.Duplicates != 0 ||
		!maps.Equal(got.OKAfterRetry, want.OKAfterRetry) || !maps.Equal(got.DeadLettered, want.DeadLettered) {
		t.Errorf("tally =\n%+v\nwant\n%+v\nprogress:\n%s", got, want, progress.String())
	}
	if got.Refeeds != refeeds {
		t.Errorf("handler saw %d re-fed deliveries, want %d", got.Refeeds, refeeds)
	}
	if got.LatenessP50MS < 0 || got.LatenessP99MS < got.LatenessP50MS {
		t.Errorf("lateness p50 %v ms, p99 %v ms: a re-feed came early or the percentiles are out of order", got.LatenessP50MS, got.LatenessP99MS)
	}
	if len(reportedTo) == 0 {
		t.Error("Report was not called with the embedded broker's addresses")
	}
	if !strings.Contains(progress.String(), "metrics on http://127.0.0.1:") {
		t.Errorf("progress does not say where /metrics is served:\n%s", progress.String())
	}
}

func TestServeMetricsServesTheRegistryUntilStopped(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "kretry_demo_probe_total", Help: "probe"})
	reg.MustRegister(c)
	c.Inc()
	stop, addr, err := serveMetrics(reg, http.NotFoundHandler())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(addr, "127.0.0.1:") {
		t.Errorf("serving on %s, want 127.0.0.1 only", addr)
	}
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "kretry_demo_probe_total 1") {
		t.Errorf("/metrics does not serve the registry:\n%s", body)
	}
	http.DefaultClient.CloseIdleConnections()
	stop()
	if _, err := http.Get("http://" + addr + "/metrics"); err == nil {
		t.Error("/metrics still served after stop")
	}
}

func TestCounterSumsTheMatchingSeries(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kretry_refed_total", Help: "h"}, []string{"topic", "tier"})
	reg.MustRegister(c)
	c.WithLabelValues("orders", "retry-1s").Add(3)
	c.WithLabelValues("orders", "retry-3s").Add(5)
	c.WithLabelValues("other", "retry-1s").Add(7)
	for _, tc := range []struct {
		labels []string
		want   int64
	}{
		{[]string{"topic", "orders", "tier", "retry-1s"}, 3},
		{[]string{"topic", "orders"}, 8},
		{[]string{"tier", "retry-1s"}, 10},
		{[]string{"tier", "retry-5s"}, 0},
	} {
		if got := counter(reg, "kretry_refed_total", tc.labels...); got != tc.want {
			t.Errorf("counter(%v) = %d, want %d", tc.labels, got, tc.want)
		}
	}
}
