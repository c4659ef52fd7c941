package metrics

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kretry/kretry/health"
)

// HealthVec is kretry_live and kretry_ready {component, group}: 1 or 0, as
// /healthz and /readyz judge (with health's default bounds) the consumers
// and relays that run, at each scrape. Components of one kind and group on
// one registry make one series, live (ready) when every one of them is.
type HealthVec struct {
	live, ready *prometheus.Desc

	mu      sync.Mutex
	next    int
	sources map[int]health.Source
}

func newHealthVec() *HealthVec {
	labels := []string{"component", "group"}
	return &HealthVec{
		live: prometheus.NewDesc(prometheus.BuildFQName(Namespace, "", "live"),
			"1 when the component's Run runs and its poll loop is not stuck, as /healthz judges it; 0 otherwise.", labels, nil),
		ready: prometheus.NewDesc(prometheus.BuildFQName(Namespace, "", "ready"),
			"1 when the component has joined its group and its writes are not failing, as /readyz judges it; 0 otherwise.", labels, nil),
		sources: map[int]health.Source{},
	}
}

// Show exports s's health until the returned func is called.
func (v *HealthVec) Show(s health.Source) (hide func()) {
	v.mu.Lock()
	defer v.mu.Unlock()
	id := v.next
	v.next++
	v.sources[id] = s
	return func() {
		v.mu.Lock()
		defer v.mu.Unlock()
		delete(v.sources, id)
	}
}

// Describe implements prometheus.Collector.
func (v *HealthVec) Describe(ch chan<- *prometheus.Desc) {
	ch <- v.live
	ch <- v.ready
}

// Collect implements prometheus.Collector.
func (v *HealthVec) Collect(ch chan<- prometheus.Metric) {
	v.mu.Lock()
	sources := make([]health.Source, 0, len(v.sources))
	for _, s := range v.sources {
		sources = append(sources, s)
	}
	v.mu.Unlock()
	type key struct{ component, group string }
	live, ready := map[key]bool{}, map[key]bool{}
	now := time.Now()
	for _, s := range sources {
		r := health.Judge(s.HealthState(), now)
		k := key{r.Component, r.Group}
		if l, seen := live[k]; !seen || l {
			live[k] = r.Live
		}
		if rd, seen := ready[k]; !seen || rd {
			ready[k] = r.Ready
		}
	}
	for k, l := range live {
		ch <- prometheus.MustNewConstMetric(v.live, prometheus.GaugeValue, b2f(l), k.component, k.group)
		ch <- prometheus.MustNewConstMetric(v.ready, prometheus.GaugeValue, b2f(ready[k]), k.component, k.group)
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
