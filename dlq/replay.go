package dlq

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
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
	dryRun         bool
	rate           float64
	maxReplays     int
	force          bool
	group          string
	fromStart      bool
	produceTimeout time.Duration
	onStart        func(ReplayPlan)
	onRecord       func(ReplayEvent)
}

// ReplayTo replays every record to topic instead of its original topic.
// Records without an original topic (reason unknown: written by something
// other than kretry, or with unreadable kretry headers) are replayed only with
// it. Default: each record's kretry-original-topic.
func ReplayTo(topic string) ReplayOpt { return replayOptFunc(func(c *replayCfg) { c.to = topic }) }

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

// ReplayGroup keeps the replay's progress as the committed offsets of group.
// Default: the DLQ topic + "-replay" (orders.dlq-replay).
func ReplayGroup(group string) ReplayOpt {
	return replayOptFunc(func(c *replayCfg) { c.group = group })
}

// ReplayFromStart deletes the group's progress on the DLQ first and starts
// over from the oldest record (or the filter's first offset). A dry run
// deletes nothing and reads as if there were no progress. Default: false.
func ReplayFromStart(fromStart bool) ReplayOpt {
	return replayOptFunc(func(c *replayCfg) { c.fromStart = fromStart })
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
	Replayed          Outcome = iota // produced and acknowledged
	WouldReplay                      // a dry run's Replayed
	SkippedMaxReplays                // replayed ReplayMaxReplays times already
	SkippedNoTarget                  // no original topic and no ReplayTo
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
	}
	return fmt.Sprintf("Outcome(%d)", int(o))
}

// ReplayEvent reports one selected record's outcome.
type ReplayEvent struct {
	Record  *Record
	Outcome Outcome
	Target  string // the topic it went (or would go) to; "" when skipped for no target
	// Partition and Offset it was written at (Replayed only).
	Partition int32
	Offset    int64
}

// Skip is a selected record a replay did not replay.
type Skip struct {
	Partition int32
	Offset    int64
	Why       Outcome
	Replays   int // its kretry-replays, for SkippedMaxReplays
}

// ReplaySummary says what a replay did. It is returned with the error of a
// replay that stopped early, and then says how far it got.
type ReplaySummary struct {
	Topic     string
	Group     string
	Selection string // Filter.Selection
	DryRun    bool

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

// ProgressError is returned by Replay when its group holds progress on the
// DLQ from a replay with another selection: resuming from it would pass over
// records the earlier replay did not select.
type ProgressError struct {
	Group     string
	Topic     string
	Partition int32
	Offset    int64
	Committed string // the selection of the earlier replay
	Selection string // this replay's
}

func (e *ProgressError) Error() string {
	return fmt.Sprintf("replay group %s holds progress on %s partition %d (offset %d) from a replay of another selection (%s; this one is %s): "+
		"start this selection over from the oldest record (ReplayFromStart), or keep its progress in another replay group (ReplayGroup)",
		e.Group, e.Topic, e.Partition, e.Offset, e.Committed, e.Selection)
}

// progressPrefix starts the metadata of a replay's offset commit; the
// selection follows it.
const progressPrefix = "kretry-replay/1 "

// Replay re-produces the records f selects to their original topic (or
// ReplayTo): key, value and user headers unchanged, kretry headers replaced by
// kretry-replays (one more than the record had), a new timestamp, the
// original partition (mod the target's partition count) when known, else the
// key's partition. The consumer sees it as a new first delivery. The DLQ is
// never written.
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
// (max replays, no target), are passed over with it. So an identical second
// replay delivers only records dead-lettered since, an interrupted one (ctx
// cancelled, Filter.Limit) continues where it stopped, and a replay of another
// selection is refused with a *ProgressError until it is run with
// ReplayFromStart or another ReplayGroup. Progress is per partition: a
// replay limited to some partitions resumes, or is refused, on those only.
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
		Topic: r.topic, Group: c.group, Selection: f.Selection(), DryRun: c.dryRun,
		ByTarget: map[string]int{}, Resumed: map[int32]int64{}, Progress: map[int32]int64{},
	}
	switch {
	case c.maxReplays < 1:
		return sum, fmt.Errorf("max replays %d: want 1 or more (and --force to replay records over it)", c.maxReplays)
	case c.rate < 0:
		return sum, fmt.Errorf("rate %g: want records per second > 0, or 0 for no cap", c.rate)
	case c.group == "":
		return sum, errors.New("no replay group: name one, or leave the default")
	case c.to == r.topic:
		return sum, fmt.Errorf("replaying %s into itself would loop: name another target topic", r.topic)
	}
	if err := f.Validate(); err != nil {
		return sum, err
	}
	m := f.compile(r.cfg.now())
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
				prev := strings.TrimPrefix(o.Metadata, progressPrefix)
				if !strings.HasPrefix(o.Metadata, progressPrefix) {
					prev = "not a kretry replay: " + strings.TrimSpace(o.Metadata)
				}
				return sum, &ProgressError{c.group, r.topic, sp.partition, o.At, prev, f.selectionID()}
			}
			sum.Resumed[sp.partition] = o.At
			spans[i].from = max(sp.from, o.At)
		}
	}

	// Plan: the targets must exist before anything is produced.
	plan := ReplayPlan{ByTarget: map[string]int{}, Resumed: maps.Clone(sum.Resumed)}
	err = r.walk(ctx, spans, m, f.Limit, c, nil, func(rec *Record, target string, out Outcome) error {
		if out == Replayed {
			plan.Records++
			plan.ByTarget[target]++
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
	run := &replayRun{r: r, c: c, sum: sum, meta: meta, counts: counts, acked: map[int32]int64{}, failed: map[int32]bool{}, lastCommit: time.Now()}
	if c.rate > 0 {
		run.lim = rate.NewLimiter(rate.Limit(c.rate), 1)
	}
	err = r.walk(ctx, spans, m, f.Limit, c, &sum.PassedOver, func(rec *Record, target string, out Outcome) error {
		return run.add(ctx, rec, target, out)
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

func skipOf(rec *Record, why Outcome) Skip {
	n, _ := rec.Replays()
	return Skip{Partition: rec.Partition, Offset: rec.Offset, Why: why, Replays: n}
}

// walk reads spans in order and calls fn for every record m selects with
// the outcome a replay gives it (Replayed, or a skip), after limit Replayed
// outcomes returns errStop. done(p, offset) is called with the offset up to
// which a partition was examined: when the partition is done, and before
// walk returns early (an error, ctx, the limit) with what was examined up to
// the record that stopped it — so that records passed over are not read
// again. A record whose fn returned an error was not examined.
func (r *Reader) walk(ctx context.Context, spans []span, m matcher, limit int, c replayCfg, passedOver *int,
	fn func(rec *Record, target string, out Outcome) error, done func(p int32, at int64) error,
) error {
	n := 0
	for _, sp := range spans {
		examined := sp.from // offsets before it are done
		err := r.scan(ctx, sp, func(kr *kgo.Record) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			rec := NewRecord(kr)
			if m.match(rec) {
				target, out := classify(rec, c)
				if err := fn(rec, target, out); err != nil {
					return err
				}
				if out == Replayed {
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

// classify decides what a replay does with a selected record.
func classify(rec *Record, c replayCfg) (string, Outcome) {
	target := c.to
	if target == "" {
		target = rec.Meta.OriginalTopic // "" without readable kretry headers
	}
	if target == "" {
		return "", SkippedNoTarget
	}
	if n, ok := rec.Replays(); (!ok || n >= c.maxReplays) && !c.force {
		return target, SkippedMaxReplays
	}
	return target, Replayed
}

// replayed returns the record a replay produces for rec.
func replayed(rec *Record, target string) *kgo.Record {
	n, _ := rec.Replays() // unreadable: only with force, counted afresh
	out := &kgo.Record{
		Topic:     target,
		Key:       rec.Key,
		Value:     rec.Value,
		Headers:   retrytopics.Encode(rec.Headers, retrytopics.Metadata{Replays: n + 1}),
		Partition: -1,
	}
	if rec.HasMeta {
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
