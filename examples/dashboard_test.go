package examples

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/kretry/kretry/internal/metrics"
)

// TestDashboardQueriesEveryKretryMetric checks that grafana-dashboard.json
// parses and that its queries use every metric kretry exports, under the
// names kretry exports them.
func TestDashboardQueriesEveryKretryMetric(t *testing.T) {
	data, err := os.ReadFile("grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Title  string `json:"title"`
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatalf("grafana-dashboard.json: %v", err)
	}
	var exprs []string
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			exprs = append(exprs, tg.Expr)
		}
	}
	all := strings.Join(exprs, "\n")

	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	// A Vec is gathered only once it has a child.
	m.Records.WithLabelValues("t", metrics.OutcomeOK).Inc()
	m.HandlerDuration.WithLabelValues("t").Observe(1)
	m.Forwarded.WithLabelValues("t", "retry-5s").Inc()
	m.Refed.WithLabelValues("t", "retry-5s").Inc()
	m.RefeedLateness.WithLabelValues("retry-5s").Observe(1)
	m.PausedPartitions.WithLabelValues("retry-5s").Set(1)
	m.HeldBytes.WithLabelValues("retry-5s").Set(1)
	m.DeadLettered.WithLabelValues("t", "panic").Inc()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if len(families) != 8 {
		t.Errorf("gathered %d kretry metrics, want the 7 of DESIGN.md §8 and kretry_held_bytes", len(families))
	}
	for _, f := range families {
		name := f.GetName()
		if f.GetType() == dto.MetricType_HISTOGRAM {
			name += "_bucket" // quantiles come from the buckets
		}
		if !strings.Contains(all, name) {
			t.Errorf("no dashboard query uses %s", name)
		}
	}
	for _, e := range exprs {
		for _, w := range strings.FieldsFunc(e, func(r rune) bool {
			return !(r == '_' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9')
		}) {
			if strings.HasPrefix(w, "kretry_") && !gathered(families, w) {
				t.Errorf("dashboard query uses %s, which kretry does not export: %s", w, e)
			}
		}
	}
}

func gathered(families []*dto.MetricFamily, series string) bool {
	for _, f := range families {
		name := f.GetName()
		if series == name {
			return true
		}
		if f.GetType() == dto.MetricType_HISTOGRAM &&
			(series == name+"_bucket" || series == name+"_sum" || series == name+"_count") {
			return true
		}
	}
	return false
}
