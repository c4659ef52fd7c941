package dlq

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/time/rate"

	"github.com/kretry/kretry/headers"
	"github.com/kretry/kretry/internal/safetext"
)

// progressGroup is the group that keeps the progress of f's selection: base
// for every record, base + "-" + a digest of the selection otherwise.
func progressGroup(base string, f Filter) string {
	sel := f.Selection()
	if sel == "all" {
		return base
	}
	sum := sha256.Sum256([]byte(sel))
	return base + "-" + hex.EncodeToString(sum[:6])
}

// progressPrefix starts the metadata of a replay's offset commit; the
// selection follows it.
const progressPrefix = "kretry-replay/1 "

// Replay re-produces the records f selects to their original topic, when
// WithMainTopics lists it, or to WithTarget: key and user headers unchanged,
// the value too (a too-large record's is read from the main topic), a new
// timestamp, the original partition (mod the target's partition count) when
// known, else the key's partition. Of the kretry headers, a record replayed
// to its original topic keeps kretry-group (the group that failed it; other
// groups commit past it) and the first delivery's kretry-original-*; every
// replayed record carries kretry-replays, one more than the record had. The
// group sees it as a new first delivery. The DLQ is never written.
//
// Produces are pipelined: up to 1,000 records (16 MiB) are in flight at
// once, each acknowledged by all in-sync replicas. The producer is
// idempotent, so every target partition gets its records in the order they
// were read. Outcomes (WithOnRecord, the summary) are reported in that
// order too, each once it is final.
//
// Progress: the replay group's committed offset on each DLQ partition is
// where the next replay of the same selection starts. It never passes a
// record that is not acknowledged: it is committed once a second while
// acknowledgements come in, when a partition is done, and when the replay
// stops; records the filter does not select, and selected records skipped
// (max replays, no target, not a main topic), are passed over with it. Each
// selection keeps its progress in a group of its own (see WithGroup). So an
// identical second replay delivers only records dead-lettered since, an
// interrupted one (ctx cancelled, Filter.Limit) continues where it stopped,
// and a replay of another selection starts from the oldest record.
// Progress is per partition: a replay limited to some partitions resumes on
// those only.
// After a crash, the next run replays again what was acknowledged in the
// last second before it; after a refused produce, the records acknowledged
// behind it on its DLQ partition. Nothing is lost either way.
//
// Filter.Limit caps the records replayed; skipped ones do not count.
//
// Before producing anything, Replay reads the selection once to find the
// target topics and fails if one is missing. When ctx is cancelled, it
// produces nothing more, sees the records in flight through, commits what
// was acknowledged and returns ctx's error with the summary.
func (r *Reader) Replay(ctx context.Context, f Filter, opts ...ReplayOpt) (*ReplaySummary, error) {
	c := defaultReplayCfg(r.topic)
	for _, o := range opts {
		o.applyReplay(&c)
	}
	sum := &ReplaySummary{
		Topic: r.topic, Group: progressGroup(c.group, f), Selection: f.Selection(), DryRun: c.dryRun,
		ByTarget: map[string]int{}, Resumed: map[int32]int64{}, Progress: map[int32]int64{},
	}
	switch {
	case c.maxReplays < 1:
		return sum, fmt.Errorf("max replays %d: want 1 or more (and --force to replay records over it)", c.maxReplays)
	case c.rate < 0 || math.IsNaN(c.rate) || math.IsInf(c.rate, 0) || c.rate > 0 && c.rate < MinReplayRate:
		return sum, fmt.Errorf("rate %g: want records per second, finite and at least %g (one an hour), or 0 for no cap", c.rate, MinReplayRate)
	case c.group == "":
		return sum, errors.New("no replay group: name one, or leave the default")
	case c.to == r.topic:
		return sum, fmt.Errorf("replaying %s into itself would loop: name another target topic", r.topic)
	case c.to == "" && !c.mainTopicsSet:
		return sum, errors.New("no main topics to replay to: list them (WithMainTopics), or name a target topic (WithTarget)")
	}
	base := c.group
	c.group = sum.Group
	if err := f.Validate(); err != nil {
		return sum, err
	}
	m, err := f.compileChecked(r.cfg.now())
	if err != nil {
		return sum, err
	}
	ps, err := r.Partitions(ctx)
	if err != nil {
		return sum, err
	}
	spans, err := m.spans(r.topic, ps)
	if err != nil {
		return sum, err
	}
	meta := progressPrefix + f.selectionID()

	// Where each partition starts: after the group's progress.
	switch {
	case c.fromStart && !c.dryRun:
		if err := r.deleteProgress(ctx, c.group, ps); err != nil {
			return sum, err
		}
	case !c.fromStart:
		committed, err := r.progress(ctx, c.group)
		if err != nil {
			return sum, err
		}
		for i, sp := range spans {
			o, ok := committed[sp.partition]
			if !ok {
				continue
			}
			if o.Metadata != meta {
				// Kept by an earlier kretry that shared one group among
				// selections: resuming from it could pass over records
				// this selection holds. Starting over loses nothing.
				sum.StartedOver = append(sum.StartedOver, sp.partition)
				r.cfg.logger.Warn("kretry dlq replay: the progress group holds progress of another selection; this partition starts over",
					"group", c.group, "topic", r.topic, "partition", sp.partition, "offset", o.At,
					"committed_selection", safetext.Text(strings.TrimPrefix(o.Metadata, progressPrefix)), "selection", f.selectionID())
				continue
			}
			sum.Resumed[sp.partition] = o.At
			spans[i].from = max(sp.from, o.At)
		}
		if base != c.group {
			// A replay of every record went over every record up to its
			// progress: a selection resumes after it too.
			all, err := r.progress(ctx, base)
			if err != nil {
				return sum, err
			}
			for i, sp := range spans {
				if o, ok := all[sp.partition]; ok && o.Metadata == progressPrefix+"all" && o.At > spans[i].from {
					sum.Resumed[sp.partition] = o.At
					spans[i].from = o.At
				}
			}
		}
	}

	// Plan: the targets must exist before anything is produced.
	plan := ReplayPlan{ByTarget: map[string]int{}, Resumed: maps.Clone(sum.Resumed)}
	err = r.walk(ctx, spans, m, f.Limit, c, nil, func(rec *Record, v verdict) error {
		if v.out == Replayed {
			plan.Records++
			plan.ByTarget[v.target]++
		}
		return nil
	}, nil)
	if err != nil && !errors.Is(err, errStop) {
		if ctx.Err() != nil {
			sum.Interrupted = true // before anything was produced
			return sum, ctx.Err()
		}
		return sum, err
	}
	counts, err := r.checkTargets(ctx, slices.Sorted(maps.Keys(plan.ByTarget)))
	if err != nil {
		return sum, err
	}
	if c.onStart != nil {
		c.onStart(plan)
	}

	// Replay.
	pcl := r.cl
	var txn *replayTxn
	if !c.dryRun {
		var popts []kgo.Opt
		if limit := r.batchLimit(ctx, slices.Sorted(maps.Keys(plan.ByTarget))); limit > defaultBatchMaxBytes {
			// Records as large as the targets take (a too-large record's
			// value): franz-go's default batch limit would refuse them.
			popts = append(popts, kgo.ProducerBatchMaxBytes(limit))
		}
		if c.exactlyOnce {
			if txn, err = r.newTxn(ctx, c.group); err != nil {
				return sum, err
			}
			popts = append(popts, kgo.TransactionalID(txn.id))
			sum.TransactionalID = txn.id
		}
		if len(popts) > 0 {
			if pcl, err = r.newClient(popts...); err != nil {
				return sum, err
			}
			defer pcl.Close()
		}
		if txn != nil {
			if err := pcl.BeginTransaction(); err != nil {
				return sum, fmt.Errorf("beginning a replay transaction (%s): %w", txn.id, err)
			}
		}
	}
	run := &replayRun{r: r, cl: pcl, c: c, sum: sum, meta: meta, counts: counts, acked: map[int32]int64{}, failed: map[int32]bool{}, lastCommit: time.Now(), txn: txn}
	if c.rate > 0 {
		run.lim = rate.NewLimiter(rate.Limit(c.rate), 1)
	}
	err = r.walk(ctx, spans, m, f.Limit, c, &sum.PassedOver, func(rec *Record, v verdict) error {
		return run.add(ctx, rec, v)
	}, run.done)
	// Whatever stopped the walk, the produces in flight are seen through
	// and what they made final is committed.
	err = cmp.Or(run.finish(), err)
	switch {
	case errors.Is(err, errStop):
		sum.LimitReached = true
		return sum, nil
	case run.err != nil:
		return sum, run.err // a refused produce or commit, even when ctx was cancelled too
	case err != nil && ctx.Err() != nil:
		sum.Interrupted = true
		return sum, ctx.Err()
	case err != nil:
		return sum, err
	}
	for _, sp := range spans {
		if _, ok := sum.Progress[sp.partition]; !ok && !c.dryRun {
			if _, ok := sum.Resumed[sp.partition]; ok {
				sum.Progress[sp.partition] = sp.from // nothing new since
			}
		}
	}
	return sum, nil
}

func skipOf(rec *Record, v verdict) Skip {
	n, _ := rec.Replays()
	return Skip{Partition: rec.Partition, Offset: rec.Offset, Why: v.out, Replays: n, Detail: v.detail}
}

// verdict is what a replay does with a selected record.
type verdict struct {
	target string
	out    Outcome
	detail string // for a skip: the topic named, why the value is gone
	// value replaces the record's value: a too-large record's, read from
	// the main topic.
	value    []byte
	hasValue bool
}

// walk reads spans in order and calls fn for every record m selects with
// the verdict a replay gives it (Replayed, or a skip), after limit Replayed
// outcomes returns errStop. done(p, offset) is called with the offset up to
// which a partition was examined: when the partition is done, and before
// walk returns early (an error, ctx, the limit) with what was examined up to
// the record that stopped it — so that records passed over are not read
// again. A record whose fn returned an error was not examined.
func (r *Reader) walk(ctx context.Context, spans []span, m matcher, limit int, c replayCfg, passedOver *int,
	fn func(rec *Record, v verdict) error, done func(p int32, at int64) error,
) error {
	n := 0
	for _, sp := range spans {
		examined := sp.from // offsets before it are done
		err := r.scan(ctx, r.topic, sp, func(kr *kgo.Record) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			rec := NewRecord(kr)
			if m.match(rec) {
				v, err := r.classify(ctx, rec, c)
				if err != nil {
					return err
				}
				if err := fn(rec, v); err != nil {
					return err
				}
				if v.out == Replayed {
					n++
				}
			} else if passedOver != nil {
				*passedOver++
			}
			examined = kr.Offset + 1
			if limit > 0 && n >= limit {
				return errStop
			}
			return nil
		})
		if err == nil {
			examined = sp.to
		}
		if done != nil && examined > sp.from {
			if cerr := done(sp.partition, examined); cerr != nil && err == nil {
				err = cerr
			}
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// classify decides what a replay does with a selected record: to WithTarget,
// or to its original topic when that is a main topic; a too-large record
// with the value the main topic still holds.
func (r *Reader) classify(ctx context.Context, rec *Record, c replayCfg) (verdict, error) {
	v := verdict{target: c.to, out: Replayed}
	if v.target == "" {
		if !rec.hasOriginal() {
			return verdict{out: SkippedNoTarget}, nil
		}
		if !slices.Contains(c.mainTopics, rec.Meta.OriginalTopic) {
			return verdict{out: SkippedNotMainTopic, detail: safetext.Text(rec.Meta.OriginalTopic)}, nil
		}
		v.target = rec.Meta.OriginalTopic
	}
	if n, ok := rec.Replays(); (!ok || n >= c.maxReplays) && !c.force {
		v.out = SkippedMaxReplays
		return v, nil
	}
	if rec.Reason == headers.ReasonTooLarge && len(rec.Value) == 0 {
		value, gone, err := r.originalValue(ctx, rec)
		switch {
		case err != nil:
			return v, err
		case gone != "":
			v.out, v.detail = SkippedValueGone, gone
		default:
			v.value, v.hasValue = value, true
		}
	}
	return v, nil
}

// originalValue reads the value of a too-large DLQ record from the main
// topic, where kretry-original-* say it is. gone says why it cannot be had
// (removed by retention, another record there); err is a failed read.
func (r *Reader) originalValue(ctx context.Context, rec *Record) (value []byte, gone string, err error) {
	if !rec.hasOriginal() {
		return nil, "its kretry-original-* headers, which say where the value is, cannot be read", nil
	}
	md := rec.Meta
	where := fmt.Sprintf("%s partition %d offset %d", safetext.Text(md.OriginalTopic), md.OriginalPartition, md.OriginalOffset)
	ps, err := r.partitionsOf(ctx, md.OriginalTopic)
	if errors.Is(err, ErrUnknownTopic) {
		return nil, where + ": the topic does not exist", nil
	}
	if err != nil {
		return nil, "", fmt.Errorf("reading the value of %s partition %d offset %d at %s: %w", r.topic, rec.Partition, rec.Offset, where, err)
	}
	i := slices.IndexFunc(ps, func(p Partition) bool { return p.Partition == md.OriginalPartition })
	switch {
	case i < 0:
		return nil, where + ": the topic has no such partition", nil
	case md.OriginalOffset < ps[i].Start:
		return nil, fmt.Sprintf("%s: removed by retention (the partition starts at offset %d)", where, ps[i].Start), nil
	case md.OriginalOffset >= ps[i].End:
		return nil, fmt.Sprintf("%s: no such offset (the partition ends at %d)", where, ps[i].End), nil
	}
	var found *kgo.Record
	err = r.scan(ctx, md.OriginalTopic, span{md.OriginalPartition, md.OriginalOffset, md.OriginalOffset + 1}, func(kr *kgo.Record) error {
		if kr.Offset == md.OriginalOffset {
			found = kr
		}
		return errStop
	})
	if err != nil && !errors.Is(err, errStop) {
		return nil, "", fmt.Errorf("reading the value of %s partition %d offset %d at %s: %w", r.topic, rec.Partition, rec.Offset, where, err)
	}
	switch {
	case found == nil:
		return nil, where + ": no record there (removed by retention or compaction)", nil
	case !bytes.Equal(found.Key, rec.Key):
		return nil, fmt.Sprintf("%s: the record there has key %s, not %s", where, safetext.Key(found.Key), safetext.Key(rec.Key)), nil
	}
	return found.Value, "", nil
}

// replayed returns the record a replay produces for rec: to its original
// topic, addressed to the group that failed it with its first delivery
// kept; elsewhere (WithTarget), as a first delivery.
func replayed(rec *Record, v verdict) *kgo.Record {
	from := rec.Meta                // what was read: the fields not read are unset
	from.Replays, _ = rec.Replays() // unreadable: only with force, counted afresh
	hs := rec.Headers
	if rec.Spring != nil {
		// Spring's listener starts over: none of Spring's dead-letter
		// or retry headers, and no kretry header but the replay count
		// (Spring copies it to the next dead letter).
		hs = springUserHeaders(hs)
	}
	md := from.Replayed(rec.Spring == nil && v.target == rec.Meta.OriginalTopic)
	out := &kgo.Record{
		Topic:     v.target,
		Key:       rec.Key,
		Value:     rec.Value,
		Headers:   headers.Encode(hs, md),
		Partition: -1,
	}
	if v.hasValue {
		out.Value = v.value
	}
	if rec.hasOriginal() {
		out.Partition = rec.Meta.OriginalPartition
	}
	return out
}
