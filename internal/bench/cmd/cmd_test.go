package main

import (
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/headers"
)

func TestWindowClosesAtN(t *testing.T) {
	w := newWindow(10)
	w.tick(0) // opens the window without counting
	select {
	case <-w.started:
	default:
		t.Fatal("the window did not open at the first tick")
	}
	for range 9 {
		w.tick(1)
	}
	select {
	case <-w.done:
		t.Fatal("the window closed at 9 of 10")
	default:
	}
	w.tick(3) // overshoots: closes once
	w.tick(1)
	<-w.done
	var r result
	w.fill(&r)
	if r.Records != 12 || r.Capped {
		t.Errorf("records %d capped %v; want 12 (counted when it closed), false", r.Records, r.Capped)
	}
}

// TestWindowShardsCloseAtN: counted per partition, unevenly (partition 0
// gets few records and none near the end, so its count waits in its shard),
// from a goroutine per partition, the window still closes at its n-th
// record, with every record counted, and not before.
func TestWindowShardsCloseAtN(t *testing.T) {
	const n = 20_000
	per := []int{37, 4_963, 5_000, 10_000 - 1} // n - 1
	w := newWindow(n).withShards(len(per))
	var wg sync.WaitGroup
	for p, k := range per {
		wg.Go(func() {
			for range k {
				w.tickPartition(int32(p))
			}
		})
	}
	wg.Wait()
	select {
	case <-w.done:
		t.Fatalf("the window closed at %d of %d records", n-1, n)
	default:
	}
	w.tickPartition(3)
	select {
	case <-w.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("the window did not close at its %d-th record: count %d", n, w.count.Load())
	}
	var r result
	w.fill(&r)
	if r.Records != n {
		t.Errorf("records %d, want %d", r.Records, n)
	}
}

func TestWindowCap(t *testing.T) {
	w := newWindow(1000)
	errc := make(chan error)
	w.tick(5)
	if err := waitWindow(t.Context(), w, 10*time.Millisecond, errc); err != nil {
		t.Fatal(err)
	}
	var r result
	w.fill(&r)
	if !r.Capped || r.Records != 5 {
		t.Errorf("records %d capped %v; want 5, true", r.Records, r.Capped)
	}
}

func TestResultRate(t *testing.T) {
	r := result{Records: 1000, Seconds: 2, CPU: 0.5}
	if got := r.rate(); got != 500 {
		t.Errorf("rate = %v, want 500 (1000 records over 2s)", got)
	}
	if got := r.cpuPerMillion(); got != 500 {
		t.Errorf("cpuPerMillion = %v, want 500", got)
	}
	if got := (result{Records: 10}).rate(); got != 0 {
		t.Errorf("rate with no time = %v, want 0", got)
	}
}

func TestHistogramLatency(t *testing.T) {
	reg := prometheus.NewRegistry()
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "kretry_refeed_lateness_seconds", Buckets: []float64{.001, .01, .1, 1},
	}, []string{"tier"})
	reg.MustRegister(h)
	for range 98 {
		h.WithLabelValues("retry-5s").Observe(.0005) // ≤ 1 ms
	}
	h.WithLabelValues("retry-1m").Observe(.05) // ≤ 100 ms
	h.WithLabelValues("retry-1m").Observe(.5)  // ≤ 1 s
	l := histogramLatency(reg, "kretry_refeed_lateness_seconds")
	if l == nil {
		t.Fatal("no latency from a histogram with samples")
	}
	if l.Count != 100 || l.P50 != 1 || l.P99 != 100 || l.Max != 1000 {
		t.Errorf("got %+v; want count 100, p50 ≤ 1 ms, p99 ≤ 100 ms, max ≤ 1000 ms", *l)
	}
	h.WithLabelValues("retry-1m").Observe(5) // past the last bucket
	if l := histogramLatency(reg, "kretry_refeed_lateness_seconds"); l.Max != -1000 {
		t.Errorf("max past the last bucket = %v, want -1000 (more than 1000 ms)", l.Max)
	}
	if histogramLatency(reg, "no_such_metric") != nil {
		t.Error("a missing histogram gave a latency")
	}
}

func TestDueAt(t *testing.T) {
	due := time.Date(2026, 11, 25, 10, 0, 5, 123e6, time.UTC)
	hs := headers.Encode([]kgo.RecordHeader{{Key: "user", Value: []byte("x")}}, headers.Metadata{
		Group: "g", Attempts: 1, Tier: "retry-5s", DueAt: due, OriginalTopic: "t",
		OriginalTimestamp: due, FirstFailureAt: due, LastFailureAt: due,
	})
	got, ok := dueAt(hs)
	if !ok || !got.Equal(due) {
		t.Errorf("dueAt = %v, %v; want %v", got, ok, due)
	}
	if _, ok := dueAt([]kgo.RecordHeader{{Key: "user", Value: []byte("x")}}); ok {
		t.Error("a record without kretry headers has a due time")
	}
	for _, v := range []string{"2026-11-25T10:00:05.123", "2026-11-25T10:00:05.1x3Z", "2026-11-25 10:00:05.123Z"} {
		if _, ok := dueAt([]kgo.RecordHeader{{Key: headers.HeaderDueAt, Value: []byte(v)}}); ok {
			t.Errorf("kretry-due-at %q reads", v)
		}
	}
}

func TestCommas(t *testing.T) {
	for n, want := range map[int]string{0: "0", 999: "999", 1000: "1,000", 100000: "100,000", 1000000: "1,000,000"} {
		if got := commas(n); got != want {
			t.Errorf("commas(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestRunMainRefusesNoRounds(t *testing.T) {
	for _, flag := range []string{"-b2-rounds", "-b3-rounds", "-eos-rounds"} {
		// A broker is named so that only the rounds are wrong; none is dialled.
		if got := runMain([]string{"-brokers", "127.0.0.1:1", flag, "0"}); got != 2 {
			t.Errorf("runMain with %s 0 = %d, want 2 (bad usage)", flag, got)
		}
	}
}
