package dlq

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/topics"
)

// ErrUnknownTopic is returned (wrapped) by a Reader's methods when the DLQ
// topic, or a replay's target topic, does not exist.
var ErrUnknownTopic = errors.New("topic does not exist")

// unknownTopicError names the missing topics and the fix; it is ErrUnknownTopic.
type unknownTopicError struct {
	what   string // "DLQ topic", "target topic"
	topics []string
	fix    string
}

func (e *unknownTopicError) Error() string {
	verb := "does"
	if len(e.topics) > 1 {
		verb = "do"
	}
	return fmt.Sprintf("%s %s %s not exist: %s", e.what, strings.Join(e.topics, ", "), verb, e.fix)
}

func (e *unknownTopicError) Is(target error) bool { return target == ErrUnknownTopic }

// Reader reads one DLQ topic. A read covers the records up to each
// partition's high watermark at its start, so it always ends: records
// dead-lettered while it runs are left for the next read. A Reader never
// writes to the DLQ. Its methods may be called from one goroutine at a time.
type Reader struct {
	topic string
	cfg   cfg
	cl    *kgo.Client // metadata, offsets, replay produce and commits
	adm   *kadm.Client
}

// NewReader returns a Reader of the DLQ topic. It connects on first use.
func NewReader(topic string, opts ...Opt) (*Reader, error) {
	if topic == "" {
		return nil, errors.New("dlq: no DLQ topic given: name one (orders.dlq)")
	}
	c := defaultCfg()
	for _, o := range opts {
		o.apply(&c)
	}
	r := &Reader{topic: topic, cfg: c}
	cl, err := r.newClient()
	if err != nil {
		return nil, err
	}
	r.cl, r.adm = cl, kadm.NewClient(cl)
	return r, nil
}

// newClient returns a client that produces as a replay does, with opts.
func (r *Reader) newClient(opts ...kgo.Opt) (*kgo.Client, error) {
	cl, err := kgo.NewClient(append(append(slices.Clone(r.cfg.clientOpts),
		kgo.RequiredAcks(kgo.AllISRAcks()), // with idempotence, franz-go's default: stated because replay depends on it
		kgo.RecordPartitioner(replayPartitioner{kgo.StickyKeyPartitioner(nil)}),
		kgo.ProducerLinger(0),
	), opts...)...)
	if err != nil {
		return nil, fmt.Errorf("dlq: kafka client: %w", err)
	}
	return cl, nil
}

// Topic is the DLQ topic's name.
func (r *Reader) Topic() string { return r.topic }

// Close closes the Reader's client.
func (r *Reader) Close() { r.cl.Close() }

// Partition is the extent of one DLQ partition.
type Partition struct {
	Partition int32
	Start     int64 // log start offset: the oldest record still kept
	End       int64 // high watermark: one past the newest record
}

// Partitions returns the DLQ's partitions, in order, with their offsets now.
func (r *Reader) Partitions(ctx context.Context) ([]Partition, error) {
	return r.partitionsOf(ctx, r.topic)
}

func (r *Reader) partitionsOf(ctx context.Context, topic string) ([]Partition, error) {
	_, missing, err := topics.Partitions(ctx, r.adm, topic)
	if err != nil {
		return nil, fmt.Errorf("looking up %s: %w", topic, err)
	}
	if len(missing) > 0 {
		return nil, &unknownTopicError{"topic", missing, "check the name, or create it with `kretry topics apply`"}
	}
	starts, err := r.adm.ListStartOffsets(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("listing the offsets of %s: %w", topic, err)
	}
	// The last stable offset: a transaction still open (exactly_once)
	// ends the span before it, so a scan never waits for it.
	ends, err := r.adm.ListCommittedOffsets(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("listing the offsets of %s: %w", topic, err)
	}
	var ps []Partition
	for p, s := range starts[topic] {
		if s.Err != nil {
			return nil, fmt.Errorf("listing the offsets of %s partition %d: %w", topic, p, s.Err)
		}
		e, ok := ends.Lookup(topic, p)
		if !ok || e.Err != nil {
			return nil, fmt.Errorf("listing the end offset of %s partition %d: %w", topic, p, e.Err)
		}
		ps = append(ps, Partition{Partition: p, Start: s.Offset, End: e.Offset})
	}
	if len(ps) == 0 { // deleted since it was looked up
		return nil, fmt.Errorf("listing the offsets of %s: the broker lists no partitions", topic)
	}
	slices.SortFunc(ps, func(a, b Partition) int { return int(a.Partition - b.Partition) })
	return ps, nil
}

// span is a range of offsets of one partition to read; to is excluded.
type span struct {
	partition int32
	from, to  int64
}

// spans returns what m selects of ps, in partition order.
func (m matcher) spans(topic string, ps []Partition) ([]span, error) {
	for _, want := range m.f.Partitions {
		if !slices.ContainsFunc(ps, func(p Partition) bool { return p.Partition == want }) {
			return nil, fmt.Errorf("%s has no partition %d: it has partitions 0-%d", topic, want, len(ps)-1)
		}
	}
	var out []span
	for _, p := range ps {
		if !m.wantPartition(p.Partition) {
			continue
		}
		sp := span{partition: p.Partition, from: max(p.Start, m.f.Offsets.From), to: p.End}
		if m.f.Offsets.HasTo {
			sp.to = min(sp.to, m.f.Offsets.To+1)
		}
		out = append(out, sp)
	}
	return out, nil
}

// errStop ends a scan early without an error.
var errStop = errors.New("stop")

// Read calls fn for each record that f selects, partition by partition, in
// offset order, up to the high watermarks at the start of the read or
// f.Limit records. An error from fn stops the read and is returned.
func (r *Reader) Read(ctx context.Context, f Filter, fn func(*Record) error) error {
	if err := f.Validate(); err != nil {
		return err
	}
	m, err := f.compileChecked(r.cfg.now())
	if err != nil {
		return err
	}
	ps, err := r.Partitions(ctx)
	if err != nil {
		return err
	}
	spans, err := m.spans(r.topic, ps)
	if err != nil {
		return err
	}
	n := 0
	for _, sp := range spans {
		err := r.scan(ctx, r.topic, sp, func(kr *kgo.Record) error {
			rec := NewRecord(kr)
			if !m.match(rec) {
				return nil
			}
			if err := fn(rec); err != nil {
				return err
			}
			n++
			if f.Limit > 0 && n >= f.Limit {
				return errStop
			}
			return nil
		})
		if errors.Is(err, errStop) {
			return nil
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// Record returns the record at offset of partition.
func (r *Reader) Record(ctx context.Context, partition int32, offset int64) (*Record, error) {
	ps, err := r.Partitions(ctx)
	if err != nil {
		return nil, err
	}
	i := slices.IndexFunc(ps, func(p Partition) bool { return p.Partition == partition })
	if i < 0 {
		return nil, fmt.Errorf("%s has no partition %d: it has partitions 0-%d", r.topic, partition, len(ps)-1)
	}
	p := ps[i]
	if offset < p.Start || offset >= p.End {
		return nil, fmt.Errorf("%s partition %d has no offset %d: it holds offsets %s", r.topic, partition, offset, extent(p))
	}
	var rec *Record
	err = r.scan(ctx, r.topic, span{partition, offset, offset + 1}, func(kr *kgo.Record) error {
		if kr.Offset == offset {
			rec = NewRecord(kr)
		}
		return errStop
	})
	if err != nil && !errors.Is(err, errStop) {
		return nil, err
	}
	if rec == nil {
		return nil, fmt.Errorf("%s partition %d has no record at offset %d (a transaction marker, or removed by retention or compaction)", r.topic, partition, offset)
	}
	return rec, nil
}

func extent(p Partition) string {
	if p.Start >= p.End {
		return "none (it is empty)"
	}
	return fmt.Sprintf("%d-%d", p.Start, p.End-1)
}

// scan calls fn for every committed record of sp of topic, in order, until fn returns an error.
// It uses a client of its own, so that nothing is fetched beyond the span
// once it returns. Control records are read (and skipped) so that a span
// ending in a transaction marker still ends.
func (r *Reader) scan(ctx context.Context, topic string, sp span, fn func(*kgo.Record) error) error {
	if sp.from >= sp.to {
		return nil
	}
	cl, err := kgo.NewClient(append(slices.Clone(r.cfg.clientOpts),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {sp.partition: kgo.NewOffset().At(sp.from)}}),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), // records removed by retention meanwhile: go on from the oldest kept
		kgo.KeepControlRecords(),
		// Dead letters of aborted transactions (exactly_once) were never
		// written as far as the ladder is concerned.
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		// A fetch session saves nothing on one partition, and closing a
		// client whose session is in use races in franz-go (v1.22.3: Close
		// kills the session while a fetch that just returned updates it).
		kgo.DisableFetchSessions(),
	)...)
	if err != nil {
		return fmt.Errorf("dlq: kafka client: %w", err)
	}
	defer cl.Close()
	for {
		pctx, cancel := context.WithTimeout(ctx, r.cfg.idleCheck)
		fs := cl.PollRecords(pctx, 1000)
		cancel()
		if err := ctx.Err(); err != nil {
			return err
		}
		if fs.Empty() && pctx.Err() != nil {
			// Nothing for a while: if retention removed the rest of the
			// span meanwhile, no record will come.
			starts, err := r.adm.ListStartOffsets(ctx, topic)
			if err == nil {
				if o, ok := starts.Lookup(topic, sp.partition); ok && o.Err == nil && o.Offset >= sp.to {
					return nil
				}
			}
			continue
		}
		var errs []string
		fs.EachError(func(t string, p int32, err error) {
			if errors.Is(err, context.DeadlineExceeded) && pctx.Err() != nil {
				return // the idle check's, not the read's
			}
			errs = append(errs, fmt.Sprintf("reading %s partition %d: %v", t, p, err))
		})
		if len(errs) > 0 {
			return errors.New(strings.Join(errs, "; "))
		}
		for it := fs.RecordIter(); !it.Done(); {
			kr := it.Next()
			if kr.Offset >= sp.to {
				return nil
			}
			if !kr.Attrs.IsControl() {
				if err := fn(kr); err != nil {
					return err
				}
			}
			if kr.Offset >= sp.to-1 {
				return nil
			}
		}
	}
}

// List returns the records f selects (see Read); set f.Limit to bound it.
func (r *Reader) List(ctx context.Context, f Filter) ([]*Record, error) {
	var out []*Record
	err := r.Read(ctx, f, func(rec *Record) error {
		out = append(out, rec)
		return nil
	})
	return out, err
}
