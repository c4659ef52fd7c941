package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// admin creates and deletes the topics and groups of one bench run; every name
// it hands out starts with the run's prefix.
type admin struct {
	brokers []string
	cl      *kgo.Client
	adm     *kadm.Client
	prefix  string

	mu     sync.Mutex
	topics []string
	groups []string
}

func newAdmin(brokers []string, prefix string) (*admin, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return nil, err
	}
	return &admin{brokers: brokers, cl: cl, adm: kadm.NewClient(cl), prefix: prefix}, nil
}

// group returns a fresh group name and remembers it for cleanup.
func (a *admin) group(name string) string {
	g := a.prefix + "-" + name
	a.mu.Lock()
	a.groups = append(a.groups, g, g+"-relay")
	a.mu.Unlock()
	return g
}

// createTopics creates topics with the given partition count and replication 1,
// and waits until their metadata shows every partition with a leader.
func (a *admin) createTopics(ctx context.Context, partitions int32, topics ...string) error {
	resp, err := a.adm.CreateTopics(ctx, partitions, 1, nil, topics...)
	if err != nil {
		return fmt.Errorf("creating topics %v: %w", topics, err)
	}
	for _, r := range resp.Sorted() {
		if r.Err != nil {
			return fmt.Errorf("creating topic %s: %w", r.Topic, r.Err)
		}
	}
	a.mu.Lock()
	a.topics = append(a.topics, topics...)
	a.mu.Unlock()
	deadline := time.Now().Add(30 * time.Second)
	for {
		md, err := a.adm.Metadata(ctx, topics...)
		if err == nil {
			ready := true
			for _, t := range topics {
				td, ok := md.Topics[t]
				if !ok || td.Err != nil || len(td.Partitions) != int(partitions) {
					ready = false
					break
				}
				for _, p := range td.Partitions {
					if p.Err != nil || p.Leader < 0 {
						ready = false
					}
				}
			}
			if ready {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("topics %v have no leader after 30s", topics)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// endOffsets sums the end offsets of topic's partitions.
func (a *admin) endOffsets(ctx context.Context, topic string) (int64, error) {
	lo, err := a.adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return 0, err
	}
	var n int64
	var firstErr error
	lo.Each(func(o kadm.ListedOffset) {
		if o.Err != nil && firstErr == nil {
			firstErr = o.Err
		}
		n += o.Offset
	})
	return n, firstErr
}

// cleanup deletes every topic and group created since the last cleanup.
func (a *admin) cleanup(ctx context.Context) error {
	a.mu.Lock()
	topics, groups := a.topics, a.groups
	a.topics, a.groups = nil, nil
	a.mu.Unlock()
	var errs []error
	if len(groups) > 0 {
		// A group that never existed (an unused relay group) answers
		// GROUP_ID_NOT_FOUND: that is fine.
		resp, err := a.adm.DeleteGroups(ctx, groups...)
		if err != nil {
			errs = append(errs, err)
		}
		_ = resp
	}
	if len(topics) > 0 {
		resp, err := a.adm.DeleteTopics(ctx, topics...)
		if err != nil {
			errs = append(errs, err)
		}
		for _, r := range resp.Sorted() {
			if r.Err != nil {
				errs = append(errs, fmt.Errorf("deleting topic %s: %w", r.Topic, r.Err))
			}
		}
	}
	return errors.Join(errs...)
}

func (a *admin) close() { a.cl.Close() }

// fillSpec says what to produce: n records of valueBytes bytes, record i to
// partition i mod partitions, with headers from headers(i, partition) when set.
type fillSpec struct {
	topic      string
	n          int
	valueBytes int
	partitions int32
	headers    func(i int, partition int32) []kgo.RecordHeader
	snappy     bool // compress batches as kretry's forwards are (kgo's default); else none
	rate       int  // records per second; 0: as fast as the broker takes them
}

// fill produces the records of spec as fast as the broker takes them
// (acks=all, idempotent, 5 ms linger, 1 MiB batches, up to 200k records in
// flight) and returns the time it took.
func fill(ctx context.Context, brokers []string, spec fillSpec) (time.Duration, error) {
	opts := []kgo.Opt{
		kgo.SeedBrokers(brokers...),
		kgo.DefaultProduceTopic(spec.topic),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerLinger(5 * time.Millisecond),
		kgo.ProducerBatchMaxBytes(1 << 20),
		kgo.MaxBufferedRecords(200_000),
	}
	if spec.snappy {
		opts = append(opts, kgo.ProducerBatchCompression(kgo.SnappyCompression()))
	} else {
		opts = append(opts, kgo.ProducerBatchCompression(kgo.NoCompression()))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return 0, err
	}
	defer cl.Close()

	// Values are cut from 16 MiB of random bytes, so that they do not
	// compress: compressible values would make a fetch of parked records
	// inflate to many times its size and flatter nothing.
	pool := make([]byte, 16<<20+spec.valueBytes)
	_, _ = rand.NewChaCha8([32]byte{1}).Read(pool)
	var failed atomic.Int64
	var firstErr atomic.Value
	cb := func(_ *kgo.Record, err error) {
		if err != nil {
			if failed.Add(1) == 1 {
				firstErr.Store(err)
			}
		}
	}
	start := time.Now()
	for i := 0; i < spec.n; i++ {
		if spec.rate > 0 && i%100 == 0 {
			// Paced: record i is due at start + i/rate.
			if d := time.Until(start.Add(time.Duration(float64(i) / float64(spec.rate) * float64(time.Second)))); d > 0 {
				select {
				case <-ctx.Done():
					return 0, ctx.Err()
				case <-time.After(d):
				}
			}
		}
		p := int32(i) % spec.partitions
		off := (i * spec.valueBytes) % (16 << 20)
		r := &kgo.Record{Partition: p, Value: pool[off : off+spec.valueBytes]}
		if spec.headers != nil {
			r.Headers = spec.headers(i, p)
		}
		cl.Produce(ctx, r, cb)
		if failed.Load() > 0 {
			break
		}
	}
	if err := cl.Flush(ctx); err != nil {
		return 0, err
	}
	if n := failed.Load(); n > 0 {
		return 0, fmt.Errorf("producing to %s: %d records failed, first: %v", spec.topic, n, firstErr.Load())
	}
	return time.Since(start), nil
}

// topicBytes returns the bytes topic takes on the brokers' disks.
func (a *admin) topicBytes(ctx context.Context, topic string) (int64, error) {
	dirs, err := a.adm.DescribeAllLogDirs(ctx, nil)
	if err != nil {
		return 0, err
	}
	var n int64
	dirs.Each(func(d kadm.DescribedLogDir) {
		d.Topics.Each(func(p kadm.DescribedLogDirPartition) {
			if p.Topic == topic {
				n += p.Size
			}
		})
	})
	return n, nil
}

// waitStable waits until every group is Stable with at least one member.
func (a *admin) waitStable(ctx context.Context, groups ...string) error {
	deadline := time.Now().Add(time.Minute)
	for {
		dg, err := a.adm.DescribeGroups(ctx, groups...)
		if err == nil {
			stable := true
			for _, g := range groups {
				d, ok := dg[g]
				if !ok || d.Err != nil || d.State != "Stable" || len(d.Members) == 0 {
					stable = false
				}
			}
			if stable {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("groups %v not stable after a minute", groups)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}
