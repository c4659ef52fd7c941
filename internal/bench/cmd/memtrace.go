package main

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"sort"
	"strings"
	"time"

	"github.com/kretry/kretry/internal/bench"
)

// memTrace samples the child's memory (runtime/metrics and VmRSS) every
// 10ms and keeps each class's peak, to tell what a peak RSS is made of; at
// each new peak of live heap it writes an in-use heap profile to prof, after
// a GC of its own (which lowers the peaks it measures: profile and measure
// in separate runs).
type memTrace struct {
	prof    string
	samples []metrics.Sample
	peaks   map[string]uint64
	atPeak  map[string]uint64 // every class at the peak of RSS
	rss     int64
	heap    uint64
	start   time.Time
	line    time.Time
	lines   []string // every 250ms: live heap, heap objects, goal and RSS
	stop    chan struct{}
	done    chan struct{}
}

// memClasses are the runtime/metrics a trace reads: every memory class,
// the live heap and the goroutines.
var memClasses = []string{
	"/memory/classes/heap/objects:bytes",
	"/memory/classes/heap/unused:bytes",
	"/memory/classes/heap/free:bytes",
	"/memory/classes/heap/released:bytes",
	"/memory/classes/heap/stacks:bytes",
	"/memory/classes/os-stacks:bytes",
	"/memory/classes/metadata/other:bytes",
	"/memory/classes/metadata/mspan/inuse:bytes",
	"/memory/classes/metadata/mcache/inuse:bytes",
	"/memory/classes/profiling/buckets:bytes",
	"/memory/classes/other:bytes",
	"/memory/classes/total:bytes",
	"/gc/heap/live:bytes",
	"/gc/heap/goal:bytes",
	"/sched/goroutines:goroutines",
}

func startMemTrace(prof string) *memTrace {
	t := &memTrace{start: time.Now(), prof: prof, peaks: map[string]uint64{}, stop: make(chan struct{}), done: make(chan struct{})}
	for _, n := range memClasses {
		t.samples = append(t.samples, metrics.Sample{Name: n})
	}
	if prof != "" {
		runtime.MemProfileRate = 4 << 10
	}
	go t.run()
	return t
}

func (t *memTrace) run() {
	defer close(t.done)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		t.sample()
		select {
		case <-t.stop:
			return
		case <-tick.C:
		}
	}
}

func (t *memTrace) sample() {
	metrics.Read(t.samples)
	cur := map[string]uint64{}
	for _, s := range t.samples {
		if s.Value.Kind() != metrics.KindUint64 {
			continue
		}
		v := s.Value.Uint64()
		cur[s.Name] = v
		t.peaks[s.Name] = max(t.peaks[s.Name], v)
	}
	rss, err := bench.RSS(0)
	if err == nil && rss > t.rss {
		t.rss, t.atPeak = rss, cur
	}
	if now := time.Now(); now.Sub(t.line) >= 250*time.Millisecond {
		t.line = now
		t.lines = append(t.lines, fmt.Sprintf("memtrace: %6.2fs live %6.2f objects %6.2f goal %6.2f RSS %6.2f MiB", now.Sub(t.start).Seconds(),
			float64(cur["/gc/heap/live:bytes"])/(1<<20), float64(cur["/memory/classes/heap/objects:bytes"])/(1<<20),
			float64(cur["/gc/heap/goal:bytes"])/(1<<20), float64(rss)/(1<<20)))
	}
	if live := cur["/gc/heap/live:bytes"]; t.prof != "" && live > t.heap+t.heap/10 {
		t.heap = live
		t.writeHeap(t.prof)
	}
}

// writeHeap writes an in-use heap profile to path after a GC, so that it
// shows what is live now, not at the last GC.
func (t *memTrace) writeHeap(path string) {
	runtime.GC()
	if f, err := os.Create(path); err == nil {
		_ = pprof.Lookup("heap").WriteTo(f, 0)
		f.Close()
	}
}

// report stops the trace and writes each class's peak, and its value at the
// peak of RSS, to w.
func (t *memTrace) report(w io.Writer) {
	close(t.stop)
	<-t.done
	if t.prof != "" {
		t.writeHeap(strings.TrimSuffix(t.prof, ".pprof") + ".end.pprof")
	}
	names := make([]string, 0, len(t.peaks))
	for n := range t.peaks {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, l := range t.lines {
		b.WriteString(l + "\n")
	}
	fmt.Fprintf(&b, "memtrace: peak VmRSS %.1f MiB; class: peak MiB (at the RSS peak MiB)\n", float64(t.rss)/(1<<20))
	for _, n := range names {
		fmt.Fprintf(&b, "memtrace: %-45s %8.2f (%8.2f)\n", n, float64(t.peaks[n])/(1<<20), float64(t.atPeak[n])/(1<<20))
	}
	_, _ = io.WriteString(w, b.String())
}
