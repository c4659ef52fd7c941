package metrics_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"

	"github.com/kretry/kretry/internal/metrics"
)

// benchDurations are handler times spread over the buckets a fast handler
// hits: 50µs to 3.2ms.
var benchDurations = func() (ds [64]time.Duration) {
	for i := range ds {
		ds[i] = time.Duration(50+50*i) * time.Microsecond
	}
	return ds
}()

// clientHistogram is kretry_handler_duration_seconds as a client_golang
// HistogramVec: the classic buckets, and native buckets too when native.
func clientHistogram(native bool) *prometheus.HistogramVec {
	opts := prometheus.HistogramOpts{
		Namespace: "kretry", Name: "handler_duration_seconds", Help: "Time spent in the user's handler.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
	}
	if native {
		opts.NativeHistogramBucketFactor = 1.1
		opts.NativeHistogramMaxBucketNumber = 160
		opts.NativeHistogramMinResetDuration = time.Hour
	}
	return prometheus.NewHistogramVec(opts, []string{"topic"})
}

// BenchmarkHandlerDurationObserve is the cost of one handler call's
// observation on a worker: the batched collector (flushed every 256 calls,
// as the worker flushes its marks) against client_golang's histogram, with
// one goroutine and with every goroutine observing the same topic's series
// (a consumer's partition workers).
func BenchmarkHandlerDurationObserve(b *testing.B) {
	batched := func() func() func(time.Duration) {
		m, err := metrics.New(nil)
		if err != nil {
			b.Fatal(err)
		}
		return func() func(time.Duration) {
			batch := m.HandlerDuration.Batch("orders")
			n := 0
			return func(d time.Duration) {
				batch.Observe(d)
				if n++; n == 256 {
					batch.Flush()
					n = 0
				}
			}
		}
	}
	client := func(native bool) func() func() func(time.Duration) {
		return func() func() func(time.Duration) {
			h := clientHistogram(native).WithLabelValues("orders")
			return func() func(time.Duration) {
				return func(d time.Duration) { h.Observe(d.Seconds()) }
			}
		}
	}
	for _, c := range []struct {
		name string
		make func() func() func(time.Duration) // per benchmark, per goroutine
	}{
		{"batched", batched},
		{"client-classic", client(false)},
		{"client-classic+native", client(true)},
	} {
		b.Run(c.name, func(b *testing.B) {
			observe := c.make()()
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				observe(benchDurations[i%len(benchDurations)])
			}
		})
		b.Run(c.name+"/parallel", func(b *testing.B) {
			perGoroutine := c.make()
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				observe := perGoroutine()
				for i := 0; pb.Next(); i++ {
					observe(benchDurations[i%len(benchDurations)])
				}
			})
		})
	}
}

// BenchmarkHandlerDurationScrape is the cost of one scrape of 8 topics'
// series: Gather, then the text format (classic buckets only) and the
// protobuf format (which carries the native buckets).
func BenchmarkHandlerDurationScrape(b *testing.B) {
	topics := []string{"t0", "t1", "t2", "t3", "t4", "t5", "t6", "t7"}
	batched := func() *prometheus.Registry {
		reg := prometheus.NewRegistry()
		m, err := metrics.New(reg)
		if err != nil {
			b.Fatal(err)
		}
		for _, t := range topics {
			batch := m.HandlerDuration.Batch(t)
			for _, d := range benchDurations {
				batch.Observe(d)
			}
			batch.Flush()
		}
		// Only the histogram: metrics.New registers every kretry metric.
		only := prometheus.NewRegistry()
		only.MustRegister(m.HandlerDuration)
		return only
	}
	client := func(native bool) func() *prometheus.Registry {
		return func() *prometheus.Registry {
			reg := prometheus.NewRegistry()
			h := clientHistogram(native)
			reg.MustRegister(h)
			for _, t := range topics {
				for _, d := range benchDurations {
					h.WithLabelValues(t).Observe(d.Seconds())
				}
			}
			return reg
		}
	}
	for _, c := range []struct {
		name string
		reg  func() *prometheus.Registry
	}{
		{"batched", batched},
		{"client-classic", client(false)},
		{"client-classic+native", client(true)},
	} {
		for _, f := range []struct {
			name   string
			format expfmt.Format
		}{
			{"text", expfmt.NewFormat(expfmt.TypeTextPlain)},
			{"protobuf", expfmt.NewFormat(expfmt.TypeProtoDelim)},
		} {
			b.Run(c.name+"/"+f.name, func(b *testing.B) {
				reg := c.reg()
				var buf bytes.Buffer
				b.ReportAllocs()
				for b.Loop() {
					mfs, err := reg.Gather()
					if err != nil {
						b.Fatal(err)
					}
					buf.Reset()
					enc := expfmt.NewEncoder(&buf, f.format)
					for _, mf := range mfs {
						if err := enc.Encode(mf); err != nil {
							b.Fatal(err)
						}
					}
				}
			})
		}
	}
}
