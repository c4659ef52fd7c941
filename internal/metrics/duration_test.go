package metrics_test

import (
	"math"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/kretry/kretry/internal/metrics"
)

// durations cover every bucket: below the first bound, on bounds (a bound
// belongs to its own bucket), just above them, between bounds, and above the
// last one (+Inf).
var durations = []time.Duration{0, 100 * time.Microsecond, 500 * time.Microsecond, 500*time.Microsecond + 1,
	time.Millisecond, 3 * time.Millisecond, 200 * time.Millisecond, time.Second, 4096 * time.Millisecond,
	16384 * time.Millisecond, 16384*time.Millisecond + 1, time.Hour}

func seconds(ds ...time.Duration) []float64 {
	var s []float64
	for _, d := range ds {
		s = append(s, d.Seconds())
	}
	return s
}

// reference is a client_golang histogram of kretry_handler_duration_seconds's
// shape, the one the batched collector replaces.
func reference(t *testing.T, values ...float64) *dto.Histogram {
	t.Helper()
	h := prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: "kretry", Name: "handler_duration_seconds",
		Help:    "Time spent in the user's handler.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
	})
	for _, v := range values {
		h.Observe(v)
	}
	var m dto.Metric
	if err := h.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetHistogram()
}

// gathered is the kretry_handler_duration_seconds series of topic in reg.
func gathered(t *testing.T, reg *prometheus.Registry, topic string) *dto.Histogram {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "kretry_handler_duration_seconds" {
			continue
		}
		if f.GetHelp() != "Time spent in the user's handler." || f.GetType() != dto.MetricType_HISTOGRAM {
			t.Errorf("help %q, type %v", f.GetHelp(), f.GetType())
		}
		for _, m := range f.GetMetric() {
			if labelValue(m, "topic") == topic {
				return m.GetHistogram()
			}
		}
	}
	t.Fatalf("no kretry_handler_duration_seconds{topic=%q} gathered", topic)
	return nil
}

func sameHistogram(t *testing.T, got, want *dto.Histogram) {
	t.Helper()
	// Sums added in another order differ in the last bits.
	if got.GetSampleCount() != want.GetSampleCount() || math.Abs(got.GetSampleSum()-want.GetSampleSum()) > 1e-9*want.GetSampleSum() {
		t.Errorf("count %d, sum %v; want count %d, sum %v",
			got.GetSampleCount(), got.GetSampleSum(), want.GetSampleCount(), want.GetSampleSum())
	}
	gb, wb := got.GetBucket(), want.GetBucket()
	if len(gb) != len(wb) {
		t.Fatalf("%d buckets, want %d", len(gb), len(wb))
	}
	for i := range wb {
		if gb[i].GetUpperBound() != wb[i].GetUpperBound() || gb[i].GetCumulativeCount() != wb[i].GetCumulativeCount() {
			t.Errorf("bucket %d: le=%v count %d, want le=%v count %d", i,
				gb[i].GetUpperBound(), gb[i].GetCumulativeCount(), wb[i].GetUpperBound(), wb[i].GetCumulativeCount())
		}
	}
}

// TestHandlerDurationBatch: a batch exports nothing until Flush, then the
// counts, sum and buckets a client_golang histogram would have; a second
// Flush of an emptied batch adds nothing.
func TestHandlerDurationBatch(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	b := m.HandlerDuration.Batch("orders")
	for _, d := range durations {
		b.Observe(d)
	}
	sameHistogram(t, gathered(t, reg, "orders"), reference(t))
	b.Flush()
	sameHistogram(t, gathered(t, reg, "orders"), reference(t, seconds(durations...)...))
	b.Flush()
	sameHistogram(t, gathered(t, reg, "orders"), reference(t, seconds(durations...)...))
}

// TestHandlerDurationRuns: a run of calls timed as one is counted as its
// calls each in the first bucket when it took no longer than that bucket's
// bound (each call did), else as one call of the whole time after the
// others in the first bucket; a run of one is a plain observation. The sum
// is the runs' time either way.
func TestHandlerDurationRuns(t *testing.T) {
	for _, tc := range []struct {
		name  string
		n     int
		total time.Duration
		want  []time.Duration // the calls as a client_golang histogram sees them
	}{
		{"one call", 1, 3 * time.Millisecond, []time.Duration{3 * time.Millisecond}},
		{"fast run", 4, 400 * time.Microsecond, []time.Duration{100 * time.Microsecond, 100 * time.Microsecond, 100 * time.Microsecond, 100 * time.Microsecond}},
		{"fast run at the bound", 2, 500 * time.Microsecond, []time.Duration{250 * time.Microsecond, 250 * time.Microsecond}},
		{"run with a slow call", 3, 3 * time.Millisecond, []time.Duration{0, 0, 3 * time.Millisecond}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			m, err := metrics.New(reg)
			if err != nil {
				t.Fatal(err)
			}
			b := m.HandlerDuration.Batch("orders")
			b.ObserveRun(tc.n, tc.total)
			b.Flush()
			sameHistogram(t, gathered(t, reg, "orders"), reference(t, seconds(tc.want...)...))
		})
	}
}

// TestHandlerDurationBatchesMerge: two workers' batches of one topic, flushed
// while the registry is gathered, add up to one series; another topic stays
// apart; WithLabelValues observes at once.
func TestHandlerDurationBatchesMerge(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	const rounds = 100
	var wg sync.WaitGroup
	for range 2 {
		b := m.HandlerDuration.Batch("orders")
		wg.Go(func() {
			for range rounds {
				for _, d := range durations {
					b.Observe(d)
				}
				b.Flush()
			}
		})
	}
	wg.Go(func() {
		for range rounds {
			if _, err := reg.Gather(); err != nil {
				t.Error(err)
				return
			}
		}
	})
	wg.Wait()
	var all []float64
	for range 2 * rounds {
		all = append(all, seconds(durations...)...)
	}
	sameHistogram(t, gathered(t, reg, "orders"), reference(t, all...))

	m.HandlerDuration.WithLabelValues("payments").Observe(0.002)
	sameHistogram(t, gathered(t, reg, "payments"), reference(t, 0.002))
	sameHistogram(t, gathered(t, reg, "orders"), reference(t, all...))
}

// TestHandlerDurationRegistryReuse: a second New on the same registry reuses
// the histogram, so two consumers' observations of a topic add up to one
// series; a nil registry still takes observations.
func TestHandlerDurationRegistryReuse(t *testing.T) {
	reg := prometheus.NewRegistry()
	m1, err := metrics.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	m2, err := metrics.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	if m1.HandlerDuration != m2.HandlerDuration {
		t.Fatal("a second New on the same registry built a second handler duration histogram")
	}
	b1, b2 := m1.HandlerDuration.Batch("orders"), m2.HandlerDuration.Batch("orders")
	b1.Observe(time.Millisecond)
	b2.Observe(2 * time.Second)
	b1.Flush()
	b2.Flush()
	sameHistogram(t, gathered(t, reg, "orders"), reference(t, 0.001, 2))

	m3, err := metrics.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	b3 := m3.HandlerDuration.Batch("orders")
	b3.Observe(time.Second)
	b3.Flush()
	sameHistogram(t, gathered(t, reg, "orders"), reference(t, 0.001, 2))
}
