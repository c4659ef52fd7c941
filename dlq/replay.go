package dlq

import (
	"bytes"
	"cmp"
	"context"
	crand "crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"golang.org/x/time/rate"

	"github.com/kretry/kretry/retrytopics"
)

// DefaultMaxReplays is the default of ReplayMaxReplays.
const DefaultMaxReplays = 3

// ReplayOpt configures a Replay.
type ReplayOpt interface{ applyReplay(*replayCfg) }

type replayOptFunc func(*replayCfg)

func (f replayOptFunc) applyReplay(c *replayCfg) { f(c) }

type replayCfg struct {
	to             string
	mainTopics     []string
	mainTopicsSet  bool
	dryRun         bool
	rate           float64
	maxReplays     int
	force          bool
	group          string
	fromStart      bool
	produceTimeout time.Duration
	exactlyOnce    bool
	onStart        func(ReplayPlan)
	onRecord       func(ReplayEvent)
}

// ReplayTo replays every record to topic instead of its original topic.
// Records without an original topic (reason unknown: written by something
// other than kretry, or with unreadable kretry headers) are replayed only with
// it. Default: each record's kretry-original-topic, when ReplayMainTopics
// lists it.
func ReplayTo(topic string) ReplayOpt { return replayOptFunc(func(c *replayCfg) { c.to = topic }) }

// ReplayMainTopics lists the topics a record may be replayed to by its
// kretry-original-topic: the main topics the consumers read (the config's
// topics). A record naming any other topic is skipped (SkippedNotMainTopic)
// and the replay goes on, so that a forged header cannot send a record to
// another service's topic. Without ReplayTo, it is required.
func ReplayMainTopics(topics ...string) ReplayOpt {
	return replayOptFunc(func(c *replayCfg) { c.mainTopics, c.mainTopicsSet = append(c.mainTopics, topics...), true })
}

// ReplayDryRun reads and selects as a replay would, reports every record it
// would replay, and produces and commits nothing. Default: false.
func ReplayDryRun(dry bool) ReplayOpt { return replayOptFunc(func(c *replayCfg) { c.dryRun = dry }) }

// ReplayRate caps the replay at perSecond records a second. Default: 0, no cap.
func ReplayRate(perSecond float64) ReplayOpt {
	return replayOptFunc(func(c *replayCfg) { c.rate = perSecond })
}

// ReplayMaxReplays skips a record that was already replayed k times or more
// (its kretry-replays header), unless ReplayForce. Default: DefaultMaxReplays
// (3); k must be ≥ 1.
func ReplayMaxReplays(k int) ReplayOpt { return replayOptFunc(func(c *replayCfg) { c.maxReplays = k }) }

// ReplayForce replays records over the ReplayMaxReplays limit. Default: false.
func ReplayForce(force bool) ReplayOpt { return replayOptFunc(func(c *replayCfg) { c.force = force }) }

// ReplayGroup names the groups that keep replays' progress: a replay of
// every record keeps it in group itself, a replay of a selection (a filter)
// in group + "-" + 12 hex digits of the selection's SHA-256, so that each
// selection resumes on its own (ReplaySummary.Group names it), and after
// the progress of every record's replay, which went over all of them.
// Default: the DLQ topic + "-replay" (orders.dlq-replay).
func ReplayGroup(group string) ReplayOpt {
	return replayOptFunc(func(c *replayCfg) { c.group = group })
}

// ReplayFromStart deletes the progress of this selection's group on the DLQ
// first and starts over from the oldest record (or the filter's first
// offset); other selections keep theirs. A dry run deletes nothing and reads
// as if there were no progress. Default: false.
func ReplayFromStart(fromStart bool) ReplayOpt {
	return replayOptFunc(func(c *replayCfg) { c.fromStart = fromStart })
}

// ReplayExactlyOnce produces the replayed records and commits the progress
// that passes them in Kafka transactions (one about every second, and when a
// partition is done): a read_committed consumer sees each replayed record
// once the progress past it is committed, and never a record whose progress
// was not (a crash, a refused produce: the transaction aborts, and the next
// run replays its records again). The transactional id is
// kretry/<progress group>/replay/<random>. Default: false (at least once:
// after a crash, the last second's records go again).
func ReplayExactlyOnce(on bool) ReplayOpt {
	return replayOptFunc(func(c *replayCfg) { c.exactlyOnce = on })
}

// ReplayProduceTimeout bounds the wait for one record's acknowledgement,
// which is not cut short when ctx is cancelled. Default: 30s.
func ReplayProduceTimeout(d time.Duration) ReplayOpt {
	return replayOptFunc(func(c *replayCfg) { c.produceTimeout = d })
}

// ReplayOnStart calls fn once the replay has planned its work and checked its
// target topics, before it produces anything. Default: none.
func ReplayOnStart(fn func(ReplayPlan)) ReplayOpt {
	return replayOptFunc(func(c *replayCfg) { c.onStart = fn })
}

// ReplayOnRecord calls fn for every selected record once its outcome is
// known: after its produce is acknowledged, or when it is skipped. Default:
// none.
func ReplayOnRecord(fn func(ReplayEvent)) ReplayOpt {
	return replayOptFunc(func(c *replayCfg) { c.onRecord = fn })
}

// ReplayPlan is what a replay is about to do.
type ReplayPlan struct {
	Records  int            // records it will replay (with a dry run: would)
	ByTarget map[string]int // the same by target topic
	Resumed  map[int32]int64
}

// Outcome is what a replay did with a selected record.
type Outcome int

// The outcomes of a selected record.
const (
	Replayed            Outcome = iota // produced and acknowledged
	WouldReplay                        // a dry run's Replayed
	SkippedMaxReplays                  // replayed ReplayMaxReplays times already
	SkippedNoTarget                    // no original topic and no ReplayTo
	SkippedNotMainTopic                // its original topic is not one of ReplayMainTopics
	SkippedValueGone                   // too-large: its value is no longer in the main topic
)

func (o Outcome) String() string {
	switch o {
	case Replayed:
		return "replayed"
	case WouldReplay:
		return "would replay"
	case SkippedMaxReplays:
		return "skipped: max replays"
	case SkippedNoTarget:
		return "skipped: no original topic"
	case SkippedNotMainTopic:
		return "skipped: original topic is not a main topic"
	case SkippedValueGone:
		return "skipped: value no longer in the main topic"
	}
	return fmt.Sprintf("Outcome(%d)", int(o))
}

// ReplayEvent reports one selected record's outcome.
type ReplayEvent struct {
	Record  *Record
	Outcome Outcome
	Target  string // the topic it went (or would go) to; "" when skipped for no target
	Detail  string // for a skip: the topic it names (SkippedNotMainTopic), why its value is gone (SkippedValueGone); escaped with Text
	// Partition and Offset it was written at (Replayed only).
	Partition int32
	Offset    int64
}

// Skip is a selected record a replay did not replay.
type Skip struct {
	Partition int32
	Offset    int64
	Why       Outcome
	Replays   int    // its kretry-replays, for SkippedMaxReplays
	Detail    string // the topic it names (SkippedNotMainTopic), why the value is gone (SkippedValueGone); escaped with Text
}

// ReplaySummary says what a replay did. It is returned with the error of a
// replay that stopped early, and then says how far it got.
type ReplaySummary struct {
	Topic     string
	Group     string
	Selection string // Filter.Selection
	DryRun    bool
	// TransactionalID is the transactional id of an exactly-once replay
	// (ReplayExactlyOnce); "" otherwise.
	TransactionalID string

	Replayed   int            // produced and acknowledged (with a dry run: would be)
	ByTarget   map[string]int // Replayed by target topic
	PassedOver int            // read after the progress but not selected by the filter
	// Skips are the selected records not replayed, in the order met.
	Skips []Skip
	// Resumed holds, for each partition with progress from an earlier replay,
	// the offset this one started from: the records before it were handled.
	Resumed map[int32]int64
	// Progress is the offset committed for each partition when it ended.
	Progress map[int32]int64
	// StartedOver lists the partitions where the group held progress of
	// another selection (kept by an earlier kretry in the same group): it is
	// not trusted, and this replay read them from the start.
	StartedOver []int32

	LimitReached bool // stopped at Filter.Limit replayed records
	Interrupted  bool // ctx was cancelled; Replayed counts what was acknowledged
}

// Skipped counts s.Skips for why.
func (s *ReplaySummary) Skipped(why Outcome) int {
	n := 0
	for _, sk := range s.Skips {
		if sk.Why == why {
			n++
		}
	}
	return n
}

// MinReplayRate is the lowest rate cap a replay takes: one record an hour.
const MinReplayRate = 1.0 / 3600

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
// ReplayMainTopics lists it, or to ReplayTo: key and user headers unchanged,
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
// were read. Outcomes (ReplayOnRecord, the summary) are reported in that
// order too, each once it is final.
//
// Progress: the replay group's committed offset on each DLQ partition is
// where the next replay of the same selection starts. It never passes a
// record that is not acknowledged: it is committed once a second while
// acknowledgements come in, when a partition is done, and when the replay
// stops; records the filter does not select, and selected records skipped
// (max replays, no target, not a main topic), are passed over with it. Each
// selection keeps its progress in a group of its own (see ReplayGroup). So an
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
	c := replayCfg{maxReplays: DefaultMaxReplays, group: r.topic + "-replay", produceTimeout: 30 * time.Second}
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
		return sum, errors.New("no main topics to replay to: list them (ReplayMainTopics), or name a target topic (ReplayTo)")
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
					"committed_selection", Text(strings.TrimPrefix(o.Metadata, progressPrefix)), "selection", f.selectionID())
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

// classify decides what a replay does with a selected record: to ReplayTo,
// or to its original topic when that is a main topic; a too-large record
// with the value the main topic still holds.
func (r *Reader) classify(ctx context.Context, rec *Record, c replayCfg) (verdict, error) {
	v := verdict{target: c.to, out: Replayed}
	if v.target == "" {
		if !rec.hasOriginal() {
			return verdict{out: SkippedNoTarget}, nil
		}
		if !slices.Contains(c.mainTopics, rec.Meta.OriginalTopic) {
			return verdict{out: SkippedNotMainTopic, detail: Text(rec.Meta.OriginalTopic)}, nil
		}
		v.target = rec.Meta.OriginalTopic
	}
	if n, ok := rec.Replays(); (!ok || n >= c.maxReplays) && !c.force {
		v.out = SkippedMaxReplays
		return v, nil
	}
	if rec.Reason == ReasonTooLarge && len(rec.Value) == 0 {
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
	where := fmt.Sprintf("%s partition %d offset %d", Text(md.OriginalTopic), md.OriginalPartition, md.OriginalOffset)
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
		return nil, fmt.Sprintf("%s: the record there has key %s, not %s", where, KeyText(found.Key), KeyText(rec.Key)), nil
	}
	return found.Value, "", nil
}

// replayed returns the record a replay produces for rec: to its original
// topic, addressed to the group that failed it with its first delivery
// kept; elsewhere (ReplayTo), as a first delivery.
func replayed(rec *Record, v verdict) *kgo.Record {
	n, _ := rec.Replays() // unreadable: only with force, counted afresh
	md := retrytopics.Metadata{Replays: n + 1}
	if rec.known&fieldGroup != 0 && rec.hasOriginal() && v.target == rec.Meta.OriginalTopic {
		md.Group = rec.Meta.Group
		if rec.known&fieldOriginalTimestamp != 0 {
			md.OriginalTopic, md.OriginalPartition, md.OriginalOffset = rec.Meta.OriginalTopic, rec.Meta.OriginalPartition, rec.Meta.OriginalOffset
			md.OriginalTimestamp = rec.Meta.OriginalTimestamp
		}
	}
	out := &kgo.Record{
		Topic:     v.target,
		Key:       rec.Key,
		Value:     rec.Value,
		Headers:   retrytopics.Encode(rec.Headers, md),
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

// checkTargets returns the partition count of every target, or an error
// naming the ones that do not exist.
func (r *Reader) checkTargets(ctx context.Context, targets []string) (map[string]int, error) {
	counts := map[string]int{}
	if len(targets) == 0 {
		return counts, nil
	}
	if slices.Contains(targets, r.topic) {
		return nil, fmt.Errorf("records name %s itself as their original topic: replaying them would loop; name a target topic", r.topic)
	}
	details, err := r.adm.ListTopics(ctx, targets...)
	if err != nil {
		return nil, fmt.Errorf("looking up the target topics %s: %w", strings.Join(targets, ", "), err)
	}
	var missing []string
	for _, t := range targets {
		d, ok := details[t]
		switch {
		case !ok || errors.Is(d.Err, kerr.UnknownTopicOrPartition):
			missing = append(missing, t)
		case d.Err != nil:
			return nil, fmt.Errorf("looking up the target topic %s: %w", t, d.Err)
		default:
			counts[t] = len(d.Partitions)
		}
	}
	if len(missing) > 0 {
		return nil, &unknownTopicError{"target topic", missing, "nothing was replayed; create it (`kretry topics apply`), or choose another with --to"}
	}
	return counts, nil
}

// txnCommitProgress commits progress as the replay group's offsets within
// the open transaction of cl (KIP-98's AddOffsetsToTxn and TxnOffsetCommit:
// franz-go does this only for a group it consumes with, and a replay reads
// without one).
func (r *Reader) txnCommitProgress(ctx context.Context, cl *kgo.Client, t *replayTxn, group string, progress map[int32]int64, meta string) error {
	if len(progress) == 0 {
		return nil
	}
	id, epoch, err := cl.ProducerID(ctx)
	if err != nil {
		return fmt.Errorf("replay transaction %s: producer id: %w", t.id, err)
	}
	err = withCoordinator(ctx, func() error {
		req := kmsg.NewPtrAddOffsetsToTxnRequest()
		req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Group = t.id, id, epoch, group
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			return err
		}
		return kerr.ErrorForCode(resp.ErrorCode)
	})
	if err != nil {
		return fmt.Errorf("replay transaction %s: adding the progress of group %s: %w", t.id, group, err)
	}
	err = withCoordinator(ctx, func() error {
		req := kmsg.NewPtrTxnOffsetCommitRequest()
		req.TransactionalID, req.Group, req.ProducerID, req.ProducerEpoch = t.id, group, id, epoch
		req.Generation = -1
		rt := kmsg.NewTxnOffsetCommitRequestTopic()
		rt.Topic, rt.TopicID = r.topic, t.topicID
		for p, at := range progress {
			rp := kmsg.NewTxnOffsetCommitRequestTopicPartition()
			rp.Partition, rp.Offset, rp.LeaderEpoch, rp.Metadata = p, at, -1, &meta
			rt.Partitions = append(rt.Partitions, rp)
		}
		req.Topics = append(req.Topics, rt)
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			return err
		}
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
					return fmt.Errorf("partition %d: %w", p.Partition, err)
				}
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("replay transaction %s: committing the progress of group %s on %s: %w", t.id, group, r.topic, err)
	}
	return nil
}

// newTxn returns the transaction state of an exactly-once replay whose
// progress group is group: a transactional id of its own and the DLQ's
// topic id (TxnOffsetCommit v6 names topics by id).
func (r *Reader) newTxn(ctx context.Context, group string) (*replayTxn, error) {
	var b [8]byte
	if _, err := crand.Read(b[:]); err != nil {
		return nil, err
	}
	t := &replayTxn{id: "kretry/" + group + "/replay/" + hex.EncodeToString(b[:]), progress: map[int32]int64{}}
	details, err := r.adm.ListTopics(ctx, r.topic)
	if err == nil {
		err = details[r.topic].Err
	}
	if err != nil {
		return nil, fmt.Errorf("looking up %s: %w", r.topic, err)
	}
	t.topicID = details[r.topic].ID
	return t, nil
}

// defaultBatchMaxBytes is franz-go's default ProducerBatchMaxBytes.
const defaultBatchMaxBytes = 1_000_012

// batchLimit is the smallest max.message.bytes of the targets, or 0 when it
// cannot be read (then franz-go's default applies).
func (r *Reader) batchLimit(ctx context.Context, targets []string) int32 {
	if len(targets) == 0 {
		return 0
	}
	rcs, err := r.adm.DescribeTopicConfigs(ctx, targets...)
	if err != nil {
		return 0
	}
	limit := int64(math.MaxInt32)
	for _, rc := range rcs {
		if rc.Err != nil {
			return 0
		}
		for _, c := range rc.Configs {
			if c.Key == "max.message.bytes" && c.Value != nil {
				n, err := strconv.ParseInt(*c.Value, 10, 32)
				if err != nil || n <= 0 {
					return 0
				}
				limit = min(limit, n)
			}
		}
	}
	if limit == math.MaxInt32 {
		return 0
	}
	return int32(limit)
}

// progress returns the group's committed offsets on the DLQ.
func (r *Reader) progress(ctx context.Context, group string) (map[int32]kadm.Offset, error) {
	var resps kadm.OffsetResponses
	err := withCoordinator(ctx, func() (err error) {
		resps, err = r.adm.FetchOffsetsForTopics(ctx, group, r.topic)
		return err
	})
	if err != nil {
		if errors.Is(err, kerr.GroupIDNotFound) {
			return nil, nil
		}
		return nil, fmt.Errorf("reading the progress of replay group %s: %w", group, err)
	}
	out := map[int32]kadm.Offset{}
	for p, o := range resps[r.topic] {
		if o.Err != nil {
			return nil, fmt.Errorf("reading the progress of replay group %s on %s partition %d: %w", group, r.topic, p, o.Err)
		}
		if o.At >= 0 {
			out[p] = o.Offset
		}
	}
	return out, nil
}

func (r *Reader) deleteProgress(ctx context.Context, group string, ps []Partition) error {
	set := kadm.TopicsSet{}
	for _, p := range ps {
		set.Add(r.topic, p.Partition)
	}
	var resps kadm.DeleteOffsetsResponses
	err := withCoordinator(ctx, func() (err error) {
		resps, err = r.adm.DeleteOffsets(ctx, group, set)
		return err
	})
	switch {
	case errors.Is(err, kerr.GroupIDNotFound):
		return nil
	case err != nil:
		return fmt.Errorf("deleting the progress of replay group %s: %w (is a replay of this group running?)", group, err)
	}
	for _, ps := range resps {
		for p, err := range ps {
			if err != nil && !errors.Is(err, kerr.UnknownTopicOrPartition) {
				return fmt.Errorf("deleting the progress of replay group %s on partition %d: %w", group, p, err)
			}
		}
	}
	return nil
}

func (r *Reader) commit(ctx context.Context, group string, p int32, at int64, meta string) error {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	os := kadm.Offsets{}
	os.Add(kadm.Offset{Topic: r.topic, Partition: p, At: at, LeaderEpoch: -1, Metadata: meta})
	err := withCoordinator(cctx, func() error {
		resps, err := r.adm.CommitOffsets(cctx, group, os)
		if err == nil {
			err = resps.Error()
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("committing the progress of replay group %s on %s partition %d at %d: %w", group, r.topic, p, at, err)
	}
	return nil
}

// coordinatorWait bounds how long a replay waits for its group's
// coordinator: on a new cluster there is none until the offsets topic is
// created, and anywhere one may be loading or moving.
const coordinatorWait = 30 * time.Second

// withCoordinator calls fn again, backing off, while it fails for want of
// the group's coordinator, for up to coordinatorWait or until ctx is done;
// then it returns fn's last error.
func withCoordinator(ctx context.Context, fn func() error) error {
	deadline := time.Now().Add(coordinatorWait)
	backoff := 50 * time.Millisecond
	for {
		err := fn()
		if !errors.Is(err, kerr.CoordinatorNotAvailable) && !errors.Is(err, kerr.CoordinatorLoadInProgress) && !errors.Is(err, kerr.NotCoordinator) ||
			time.Now().Add(backoff).After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Second)
	}
}

// replayPartitioner writes a record to the partition set on it (mod the
// partition count), or by its key when it is -1.
type replayPartitioner struct{ byKey kgo.Partitioner }

func (p replayPartitioner) ForTopic(t string) kgo.TopicPartitioner {
	return replayTopicPartitioner{p.byKey.ForTopic(t)}
}

type replayTopicPartitioner struct{ byKey kgo.TopicPartitioner }

func (p replayTopicPartitioner) RequiresConsistency(*kgo.Record) bool { return true }

func (p replayTopicPartitioner) Partition(r *kgo.Record, n int) int {
	if r.Partition >= 0 {
		return int(r.Partition) % n
	}
	return p.byKey.Partition(r, n)
}

func (p replayTopicPartitioner) OnNewBatch() {
	if nb, ok := p.byKey.(kgo.TopicPartitionerOnNewBatch); ok {
		nb.OnNewBatch()
	}
}
