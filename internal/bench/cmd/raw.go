package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/headers"
)

// The raw franz-go baselines. They are what a careful franz-go user writes by
// hand: a group consumer with AutoCommitMarks, BlockRebalanceOnPoll and one
// goroutine per assigned partition that processes its records in order and
// marks each one after it is done (franz-go's goroutine_per_partition_consuming
// example, autocommit_marks flavour).

func init() {
	childModes["b1-raw"] = runB1Raw
	childModes["b2-raw"] = runB2Raw
	childModes["b2-raw3"] = runB2Raw3
	childModes["b2-raw3-bare"] = runB2Raw3Bare
}

type tp struct {
	topic     string
	partition int32
}

// partitionWorkers owns one goroutine per assigned partition.
type partitionWorkers struct {
	cl      *kgo.Client
	process func(ctx context.Context, cl *kgo.Client, recs []*kgo.Record)

	mu      sync.Mutex
	workers map[tp]*partitionWorker
}

type partitionWorker struct {
	recs   chan []*kgo.Record
	cancel context.CancelFunc
	done   chan struct{}
}

func (pw *partitionWorkers) assigned(ctx context.Context, cl *kgo.Client, assigned map[string][]int32) {
	pw.mu.Lock()
	defer pw.mu.Unlock()
	for topic, ps := range assigned {
		for _, p := range ps {
			wctx, cancel := context.WithCancel(ctx)
			w := &partitionWorker{recs: make(chan []*kgo.Record, 8), cancel: cancel, done: make(chan struct{})}
			pw.workers[tp{topic, p}] = w
			go func() {
				defer close(w.done)
				for {
					select {
					case <-wctx.Done():
						return
					case recs := <-w.recs:
						pw.process(wctx, cl, recs)
					}
				}
			}()
		}
	}
}

// revoked stops the workers of the partitions lost and commits their marks.
func (pw *partitionWorkers) revoked(ctx context.Context, cl *kgo.Client, revoked map[string][]int32) {
	pw.stop(revoked)
	_ = cl.CommitMarkedOffsets(ctx)
}

func (pw *partitionWorkers) lost(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
	pw.stop(lost)
}

func (pw *partitionWorkers) stop(ps map[string][]int32) {
	pw.mu.Lock()
	var ws []*partitionWorker
	for topic, parts := range ps {
		for _, p := range parts {
			if w, ok := pw.workers[tp{topic, p}]; ok {
				ws = append(ws, w)
				delete(pw.workers, tp{topic, p})
			}
		}
	}
	pw.mu.Unlock()
	for _, w := range ws {
		w.cancel()
	}
	for _, w := range ws {
		<-w.done
	}
}

// feed hands each partition's records to its worker.
func (pw *partitionWorkers) feed(ctx context.Context, fs kgo.Fetches) {
	fs.EachPartition(func(p kgo.FetchTopicPartition) {
		if len(p.Records) == 0 {
			return
		}
		pw.mu.Lock()
		w := pw.workers[tp{p.Topic, p.Partition}]
		pw.mu.Unlock()
		if w == nil {
			return
		}
		select {
		case w.recs <- p.Records:
		case <-ctx.Done():
		}
	})
}

// rawGroupConsumer runs the poll loop until ctx is done, handing records to
// per-partition workers that call process.
func rawGroupConsumer(ctx context.Context, cf childFlags, process func(context.Context, *kgo.Client, []*kgo.Record), extra ...kgo.Opt) error {
	pw := &partitionWorkers{process: process, workers: map[tp]*partitionWorker{}}
	opts := append([]kgo.Opt{
		kgo.SeedBrokers(cf.brokers...),
		kgo.ConsumerGroup(cf.group),
		kgo.ConsumeTopics(cf.topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.AutoCommitMarks(),
		kgo.BlockRebalanceOnPoll(),
		kgo.OnPartitionsAssigned(pw.assigned),
		kgo.OnPartitionsRevoked(pw.revoked),
		kgo.OnPartitionsLost(pw.lost),
	}, extra...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return err
	}
	pw.cl = cl
	defer cl.Close()
	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			cl.AllowRebalance()
			break
		}
		if errs := fs.Errors(); len(errs) > 0 {
			for _, e := range errs {
				if e.Err != context.Canceled {
					cl.AllowRebalance()
					return fmt.Errorf("fetch %s/%d: %w", e.Topic, e.Partition, e.Err)
				}
			}
		}
		pw.feed(ctx, fs)
		cl.AllowRebalance()
	}
	// Leaving: stop the workers, commit their marks, leave the group.
	pw.mu.Lock()
	all := map[string][]int32{}
	for k := range pw.workers {
		all[k.topic] = append(all[k.topic], k.partition)
	}
	pw.mu.Unlock()
	pw.stop(all)
	_ = cl.CommitMarkedOffsets(context.Background())
	return nil
}

// runB1Raw consumes n records with a no-op handler and marks each one.
func runB1Raw(ctx context.Context, cf childFlags) (result, error) {
	w := newWindow(cf.n)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		errc <- rawGroupConsumer(ctx, cf, func(ctx context.Context, cl *kgo.Client, recs []*kgo.Record) {
			for _, r := range recs {
				if ctx.Err() != nil {
					return
				}
				noop(r)
				cl.MarkCommitRecords(r)
				w.tick(1)
			}
		})
	}()
	err := waitWindow(ctx, w, cf.cap, errc)
	cancel()
	if err == nil {
		err = <-errc
	}
	var r result
	w.fill(&r)
	return r, err
}

// noop is the handler of the happy path: it looks at the record and returns.
func noop(r *kgo.Record) {
	_ = len(r.Value)
}

// runB2Raw is the plain consume→produce pipe: each partition's batch is
// produced to <topic>.pipe (acks=all, idempotent), and its records are marked
// once the broker acknowledged the whole batch.
func runB2Raw(ctx context.Context, cf childFlags) (result, error) {
	w := newWindow(cf.n)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	out := cf.topic + ".pipe"
	errc := make(chan error, 1)
	go func() {
		errc <- rawGroupConsumer(ctx, cf, func(ctx context.Context, cl *kgo.Client, recs []*kgo.Record) {
			outs := make([]*kgo.Record, len(recs))
			for i, r := range recs {
				w.tick(0) // the window opens at the first record consumed
				outs[i] = &kgo.Record{Topic: out, Key: r.Key, Value: r.Value, Headers: r.Headers, Partition: r.Partition}
			}
			if produceAll(ctx, cl, outs) != nil {
				return // not marked: consumed again after a restart
			}
			cl.MarkCommitRecords(recs...)
			w.tick(int64(len(recs)))
		}, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	}()
	err := waitWindow(ctx, w, cf.cap, errc)
	cancel()
	if err == nil {
		err = <-errc
	}
	var r result
	w.fill(&r)
	return r, err
}

// runB2Raw3 is kretry's retry path written by hand with plain franz-go and
// nothing else: what B2's kretry side moves, where it moves it, without the
// delay, the header checks, the handler or the bookkeeping. A group consumer
// of the main topic produces every record without headers to the tier topic
// with the 14 kretry headers (one slice, built once); a second group consumer
// produces every tier record back to the main topic, at once, headers as
// they are; the first consumer counts the records that come back. Each batch
// is marked once its produces are acknowledged (acks=all, idempotent), as in
// the pipe. Records/s = records / (first record → last record back).
func runB2Raw3(ctx context.Context, cf childFlags) (result, error) {
	return runThreeHops(ctx, cf, contractHeaders(cf.group, cf.topic, cf.delay))
}

// contractHeaders are the kretry headers of a record of topic that failed
// once in group's handler and went to the tier of delay.
func contractHeaders(group, topic string, delay time.Duration) []kgo.RecordHeader {
	now := time.Now()
	return headers.Encode(nil, headers.Metadata{
		Group: group, Attempts: 1, Tier: "retry-" + formatDelay(delay), DueAt: now, OriginalTopic: topic,
		OriginalPartition: 7, OriginalOffset: 123456, OriginalTimestamp: now, FirstFailureAt: now, LastFailureAt: now,
		Error: errFailOnce.Error(),
	})
}

// runB2Raw3Bare is runB2Raw3 with one header of one byte in place of the
// 14 kretry headers: the three hops alone, what they cost before any header
// contract.
func runB2Raw3Bare(ctx context.Context, cf childFlags) (result, error) {
	return runThreeHops(ctx, cf, []kgo.RecordHeader{{Key: "r", Value: []byte{'1'}}})
}

// runThreeHops moves every record of the main topic to the tier topic with
// headers, and back, as runB2Raw3 says; the records that come back are those
// with headers.
func runThreeHops(ctx context.Context, cf childFlags, headers []kgo.RecordHeader) (result, error) {
	w := newWindow(cf.n)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	tier := tierTopic(cf.topic, cf.delay)
	errc := make(chan error, 2)
	go func() {
		errc <- rawGroupConsumer(ctx, cf, func(ctx context.Context, cl *kgo.Client, recs []*kgo.Record) {
			var out []*kgo.Record
			back := 0
			for _, r := range recs {
				w.tick(0) // the window opens at the first record consumed
				if len(r.Headers) > 0 {
					back++
					continue
				}
				out = append(out, &kgo.Record{Topic: tier, Partition: r.Partition, Key: r.Key, Value: r.Value, Headers: headers})
			}
			if produceAll(ctx, cl, out) != nil {
				return // not marked: consumed again after a restart
			}
			cl.MarkCommitRecords(recs...)
			w.tick(int64(back))
		}, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	}()
	relay := cf
	relay.topic, relay.group = tier, cf.group+"-relay"
	go func() {
		errc <- rawGroupConsumer(ctx, relay, func(ctx context.Context, cl *kgo.Client, recs []*kgo.Record) {
			out := make([]*kgo.Record, len(recs))
			for i, r := range recs {
				out[i] = &kgo.Record{Topic: cf.topic, Partition: r.Partition, Key: r.Key, Value: r.Value, Headers: r.Headers}
			}
			if produceAll(ctx, cl, out) != nil {
				return
			}
			cl.MarkCommitRecords(recs...)
		}, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	}()
	err := waitWindow(ctx, w, cf.cap, errc)
	cancel()
	if err == nil {
		err = errors.Join(<-errc, <-errc)
	}
	var r result
	w.fill(&r)
	return r, err
}

// produceAll produces recs back to back and waits for every acknowledgement;
// it returns the first error.
func produceAll(ctx context.Context, cl *kgo.Client, recs []*kgo.Record) error {
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	wg.Add(len(recs))
	for _, r := range recs {
		cl.Produce(ctx, r, func(_ *kgo.Record, err error) {
			if err != nil {
				mu.Lock()
				firstErr = cmp.Or(firstErr, err)
				mu.Unlock()
			}
			wg.Done()
		})
	}
	wg.Wait()
	return firstErr
}
