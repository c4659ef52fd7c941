package metrics_test

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kretry/kretry/headers"
	"github.com/kretry/kretry/health"
	"github.com/kretry/kretry/internal/metrics"
)

// TestDesignDocMetrics: docs/design.md's metrics table has a row for every
// kretry metric, with its type and labels, and no row for a metric kretry
// does not have.
func TestDesignDocMetrics(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "docs", "design.md"))
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]string{}
	for line := range strings.Lines(string(data)) {
		if name, ok := strings.CutPrefix(line, "| `kretry_"); ok {
			name, _, _ = strings.Cut(name, "`")
			rows["kretry_"+name] = line
		}
	}

	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	// One series of every collector, so that Gather shows it: a Vec takes as
	// many label values as it has labels.
	v := reflect.ValueOf(m).Elem()
	want := v.NumField() // metric families
	for i := range v.NumField() {
		f := v.Field(i).Interface()
		switch c := f.(type) {
		case *metrics.HandlerDurationVec:
			c.WithLabelValues("t").Observe(0)
		case *metrics.HealthVec:
			c.Show(healthSource{})
			want++ // live and ready
		case *metrics.LadderVec:
			c.Show([]metrics.TierInfo{{Group: "g", Topic: "t", Tier: "retry-5s", Delay: 5 * time.Second, Attempts: 1}})
			want++ // its delay and its attempts
		default:
			// GetMetricWithLabelValues of each Vec type returns its own
			// type, not prometheus.Metric: call it by reflection.
			meth := reflect.ValueOf(f).MethodByName("GetMetricWithLabelValues")
			if !meth.IsValid() {
				t.Fatalf("%s: a collector this test does not know: teach it", v.Type().Field(i).Name)
			}
			for n := 0; ; n++ {
				if n > 8 {
					t.Fatalf("%s: no series with up to 8 label values", v.Type().Field(i).Name)
				}
				args := make([]reflect.Value, n)
				for j := range args {
					args[j] = reflect.ValueOf("")
				}
				if out := meth.Call(args); out[1].IsNil() {
					break
				}
			}
		}
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if len(families) != want {
		t.Fatalf("gathered %d metrics of the %d collectors of metrics.Metrics, want %d", len(families), v.NumField(), want)
	}

	values := map[string][]string{
		"outcome": {metrics.OutcomeOK, metrics.OutcomeRetried, metrics.OutcomeDeadLettered, metrics.OutcomeDiscarded, metrics.OutcomeSkipped},
		"tier":    {metrics.TierDLQ},
	}
	for _, r := range headers.Reasons() {
		values["reason"] = append(values["reason"], string(r))
	}
	for _, f := range families {
		row, ok := rows[f.GetName()]
		if !ok {
			t.Errorf("docs/design.md has no row for the metric %s", f.GetName())
			continue
		}
		delete(rows, f.GetName())
		if typ := strings.ToLower(f.GetType().String()); !strings.Contains(row, "| "+typ+" |") {
			t.Errorf("docs/design.md: %s is a %s: %s", f.GetName(), typ, strings.TrimSpace(row))
		}
		for _, l := range f.GetMetric()[0].GetLabel() {
			if !strings.Contains(row, "`"+l.GetName()+"`") {
				t.Errorf("docs/design.md: %s has the label %s: %s", f.GetName(), l.GetName(), strings.TrimSpace(row))
			}
			if f.GetName() == "kretry_records_total" || l.GetName() == "reason" {
				for _, val := range values[l.GetName()] {
					if !strings.Contains(row, "`"+val+"`") {
						t.Errorf("docs/design.md: %s's label %s takes the value %s: %s", f.GetName(), l.GetName(), val, strings.TrimSpace(row))
					}
				}
			}
		}
	}
	for name := range rows {
		t.Errorf("docs/design.md has a row for %s, which kretry does not export", name)
	}
}

// healthSource is a component that is live and ready.
type healthSource struct{}

func (healthSource) HealthState() health.State {
	return health.State{Component: "relay", Group: "g", Running: true, Polling: true, PollSince: time.Now(), Joined: true}
}
