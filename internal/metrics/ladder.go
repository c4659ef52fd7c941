package metrics

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// TierInfo is one tier of a configured retry ladder, as LadderVec shows it.
type TierInfo struct {
	Group    string        // the consumer group whose ladder it is
	Topic    string        // the main topic
	Tier     string        // the tier's name, e.g. retry-5s: the tier label of the other metrics
	Delay    time.Duration // how long a record waits in the tier
	Attempts int           // failures the tier takes
}

// LadderVec is kretry_tier_delay_seconds and kretry_tier_attempts: the
// configured ladders of the consumers and relays that run, one series of each
// per tier, labelled group, topic and tier. They are values, not labels of an
// info metric, so that a dashboard can format the delay as a duration, sort
// the ladder by it, and divide a tier's lateness by its delay.
//
// A tier is shown while anyone shows it: a consumer and its in-process relay,
// or several consumers on one registry, show the same series, and it goes
// away when the last of them hides it.
type LadderVec struct {
	delay, attempts *prometheus.GaugeVec

	mu    sync.Mutex
	shown map[[3]string]int // by group, topic, tier: how many show it
}

func newLadderVec() *LadderVec {
	labels := []string{"group", "topic", "tier"}
	return &LadderVec{
		delay: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: Namespace, Name: "tier_delay_seconds",
			Help: "The configured delay of a retry tier, while a consumer or relay of its ladder runs.",
		}, labels),
		attempts: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: Namespace, Name: "tier_attempts",
			Help: "The configured attempts of a retry tier (failures it takes before the next tier), while a consumer or relay of its ladder runs.",
		}, labels),
		shown: map[[3]string]int{},
	}
}

// Show exports tiers until the returned func, which must be called once, is
// called.
func (v *LadderVec) Show(tiers []TierInfo) (hide func()) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, t := range tiers {
		k := [3]string{t.Group, t.Topic, t.Tier}
		v.shown[k]++
		v.delay.WithLabelValues(k[:]...).Set(t.Delay.Seconds())
		v.attempts.WithLabelValues(k[:]...).Set(float64(t.Attempts))
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			v.mu.Lock()
			defer v.mu.Unlock()
			for _, t := range tiers {
				k := [3]string{t.Group, t.Topic, t.Tier}
				if v.shown[k]--; v.shown[k] > 0 {
					continue
				}
				delete(v.shown, k)
				v.delay.DeleteLabelValues(k[:]...)
				v.attempts.DeleteLabelValues(k[:]...)
			}
		})
	}
}

// Describe implements prometheus.Collector.
func (v *LadderVec) Describe(ch chan<- *prometheus.Desc) {
	v.delay.Describe(ch)
	v.attempts.Describe(ch)
}

// Collect implements prometheus.Collector.
func (v *LadderVec) Collect(ch chan<- prometheus.Metric) {
	v.mu.Lock() // a tier's two series together
	defer v.mu.Unlock()
	v.delay.Collect(ch)
	v.attempts.Collect(ch)
}
