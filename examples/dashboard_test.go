package examples

import (
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/kretry/kretry/health"
	"github.com/kretry/kretry/internal/metrics"
)

// TestDashboardQueriesEveryKretryMetric checks that grafana-dashboard.json
// parses, that its queries use every metric of metrics.Metrics, and that
// every kretry_ metric a query names is one kretry exports.
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
	families := everySeries(t, m, reg)
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

// everySeries gives every collector of m one series, so that reg gathers
// each (a Vec is gathered only once it has a child), and gathers them.
func everySeries(t *testing.T, m *metrics.Metrics, reg prometheus.Gatherer) []*dto.MetricFamily {
	t.Helper()
	v := reflect.ValueOf(m).Elem()
	for i := range v.NumField() {
		switch c := v.Field(i).Interface().(type) {
		case *metrics.HandlerDurationVec:
			c.WithLabelValues("t").Observe(1)
		case *metrics.HealthVec:
			c.Show(healthSource{})
		case *metrics.LadderVec:
			c.Show([]metrics.TierInfo{{Group: "g", Topic: "t", Tier: "retry-5s", Delay: 5 * time.Second, Attempts: 1}})
		case *prometheus.CounterVec, *prometheus.GaugeVec, *prometheus.HistogramVec:
			// As many label values as the Vec has labels.
			meth := reflect.ValueOf(c).MethodByName("GetMetricWithLabelValues")
			for n := 0; ; n++ {
				if n > 8 {
					t.Fatalf("%s: no series with up to 8 label values", v.Type().Field(i).Name)
				}
				args := make([]reflect.Value, n)
				for j := range args {
					args[j] = reflect.ValueOf("x")
				}
				if out := meth.Call(args); out[1].IsNil() {
					break
				}
			}
		default:
			t.Fatalf("metrics.Metrics.%s: a collector this test does not know: teach it", v.Type().Field(i).Name)
		}
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if len(families) < v.NumField() {
		t.Fatalf("gathered %d metrics of the %d collectors of metrics.Metrics", len(families), v.NumField())
	}
	return families
}

// healthSource is a component that is live and ready.
type healthSource struct{}

func (healthSource) HealthState() health.State {
	return health.State{Component: "relay", Group: "g", Running: true, Polling: true, PollSince: time.Now(), Joined: true}
}
