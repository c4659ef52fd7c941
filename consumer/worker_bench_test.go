package consumer

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/config"
	"github.com/kretry/kretry/headers"
	"github.com/kretry/kretry/internal/bench"
	"github.com/kretry/kretry/internal/metrics"
	"github.com/kretry/kretry/internal/partitions"
	"github.com/kretry/kretry/ladder"
)

// benchWorker is a worker of partition 0 of topic "t" whose ladder has one
// tier, retry-5s; its client produces to a kfake cluster (not a group
// member: marks are no-ops).
func benchWorker(b testing.TB, h Handler) *worker {
	b.Helper()
	fake, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(8, "t", "t.retry-5s", "t.dlq"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(fake.Close)
	return benchWorkerOn(b, fake, h)
}

// benchWorkerOn is benchWorker on fake, which has the topics t, t.retry-5s
// and t.dlq.
func benchWorkerOn(b testing.TB, fake *kfake.Cluster, h Handler) *worker {
	b.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(fake.ListenAddrs()...))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(cl.Close)
	ladder, err := ladder.New("t", "g", []ladder.Tier{{Delay: 5 * time.Second, Attempts: 1}})
	if err != nil {
		b.Fatal(err)
	}
	m, err := metrics.New(nil)
	if err != nil {
		b.Fatal(err)
	}
	c := &Consumer{cfg: &config.Config{Group: "g"}, handler: h, opts: defaultOptions(), metrics: m}
	s := &session{c: c, cl: cl, log: c.opts.logger, base: context.Background(),
		partitions: partitions.New(cl, c.opts.logger, map[string]int32{"t.retry-5s": 8, "t.dlq": 8})}
	return newWorker(s, topicPartition{"t", 0}, ladder)
}

// benchRecords are n records of partition 0 of "t" with 256 B values.
func benchRecords(n int) []*kgo.Record {
	value := make([]byte, 256)
	recs := make([]*kgo.Record, n)
	for i := range recs {
		recs[i] = &kgo.Record{Topic: "t", Partition: 0, Offset: int64(i), Value: value, Timestamp: time.Now()}
	}
	return recs
}

// cpuFrom reports the process's CPU time per op since cpu0 (cpu-ns/op):
// steadier than ns/op on a shared machine, where ns/op counts the waits for
// a core too. It counts every goroutine of the process (kfake's too).
func cpuFrom(b *testing.B, cpu0 time.Duration) {
	b.ReportMetric(float64(bench.SelfCPU()-cpu0)/float64(b.N), "cpu-ns/op")
}

// runBench takes b.N records through the worker's loop (next, process,
// settle), queued 1,000 at a time as a poll hands them over.
func runBench(b *testing.B, w *worker) {
	recs := benchRecords(1000)
	b.ReportAllocs()
	b.ResetTimer()
	defer cpuFrom(b, bench.SelfCPU())
	for i := 0; i < b.N; i++ {
		if i%len(recs) == 0 {
			w.enqueue(recs)
		}
		rec, ok := w.next()
		if !ok || !w.process(rec) || !w.settle(false) {
			b.Fatal("worker stopped")
		}
	}
	w.settle(true)
}

// BenchmarkWorkerHandled is the happy path of B1: a no-op handler.
func BenchmarkWorkerHandled(b *testing.B) {
	w := benchWorker(b, HandlerFunc(func(context.Context, *kgo.Record) error { return nil }))
	runBench(b, w)
}

// BenchmarkWorkerForwarded is the first delivery of B2: every record fails
// and is forwarded to retry-5s (kfake acknowledges).
func BenchmarkWorkerForwarded(b *testing.B) {
	fail := errors.New("fail")
	w := benchWorker(b, HandlerFunc(func(context.Context, *kgo.Record) error { return fail }))
	runBench(b, w)
}

// BenchmarkWorkerRefed is the second delivery of B2: every record carries
// the kretry headers of a re-feed from retry-5s and is handled.
func BenchmarkWorkerRefed(b *testing.B) {
	w := benchWorker(b, HandlerFunc(func(context.Context, *kgo.Record) error { return nil }))
	now := time.Now()
	hs := headers.Encode(nil, headers.Metadata{Group: "g", Attempts: 1, Tier: "retry-5s", DueAt: now, OriginalTopic: "t",
		OriginalTimestamp: now, FirstFailureAt: now, LastFailureAt: now, Error: "fail"})
	recs := benchRecords(1000)
	for _, r := range recs {
		r.Headers = hs
	}
	b.ReportAllocs()
	b.ResetTimer()
	defer cpuFrom(b, bench.SelfCPU())
	for i := 0; i < b.N; i++ {
		if i%len(recs) == 0 {
			for _, r := range recs {
				r.Context = nil
			}
			w.enqueue(recs)
		}
		rec, ok := w.next()
		if !ok || !w.process(rec) || !w.settle(false) {
			b.Fatal("worker stopped")
		}
	}
	w.settle(true)
}

// BenchmarkForwardRecycle is a forward's storage taken for a failed record
// and given back once acknowledged, as each retried record of B2 does.
func BenchmarkForwardRecycle(b *testing.B) {
	w := benchWorker(b, HandlerFunc(func(context.Context, *kgo.Record) error { return nil }))
	fs := make([]*pendingForward, 64) // an acknowledged produce batch
	b.ReportAllocs()
	for b.Loop() {
		for i := range fs {
			fs[i] = w.newForward()
		}
		for _, f := range fs {
			f.done.Store(true)
			w.recycle(f)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(fs)), "ns/forward")
}
