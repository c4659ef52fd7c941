package dlq

import (
	"fmt"
	"time"
)

// DefaultMaxReplays is the default of WithMaxReplays.
const DefaultMaxReplays = 3

// ReplayOpt configures one Reader.Replay; Opt configures the Reader. See the
// package doc for why the two families.
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

// defaultReplayCfg holds the defaults of a replay of topic.
func defaultReplayCfg(topic string) replayCfg {
	return replayCfg{maxReplays: DefaultMaxReplays, group: topic + "-replay", produceTimeout: DefaultProduceTimeout}
}

// DefaultProduceTimeout is the default of WithProduceTimeout.
const DefaultProduceTimeout = 30 * time.Second

// WithTarget replays every record to topic instead of its original topic.
// Records without an original topic (reason unknown: written by something
// other than kretry, or with unreadable kretry headers) are replayed only with
// it. Default: each record's kretry-original-topic, when WithMainTopics
// lists it.
func WithTarget(topic string) ReplayOpt { return replayOptFunc(func(c *replayCfg) { c.to = topic }) }

// WithMainTopics lists the topics a record may be replayed to by its
// kretry-original-topic: the main topics the consumers read (the config's
// topics). A record naming any other topic is skipped (SkippedNotMainTopic)
// and the replay goes on, so that a forged header cannot send a record to
// another service's topic. Without WithTarget, it is required.
func WithMainTopics(topics ...string) ReplayOpt {
	return replayOptFunc(func(c *replayCfg) { c.mainTopics, c.mainTopicsSet = append(c.mainTopics, topics...), true })
}

// WithDryRun reads and selects as a replay would, reports every record it
// would replay, and produces and commits nothing. Default: false.
func WithDryRun(dry bool) ReplayOpt { return replayOptFunc(func(c *replayCfg) { c.dryRun = dry }) }

// WithRate caps the replay at perSecond records a second. Default: 0, no cap.
func WithRate(perSecond float64) ReplayOpt {
	return replayOptFunc(func(c *replayCfg) { c.rate = perSecond })
}

// WithMaxReplays skips a record that was already replayed k times or more
// (its kretry-replays header), unless WithForce. Default: DefaultMaxReplays
// (3); k must be ≥ 1.
func WithMaxReplays(k int) ReplayOpt { return replayOptFunc(func(c *replayCfg) { c.maxReplays = k }) }

// WithForce replays records over the WithMaxReplays limit. Default: false.
func WithForce(force bool) ReplayOpt { return replayOptFunc(func(c *replayCfg) { c.force = force }) }

// WithGroup names the groups that keep replays' progress: a replay of
// every record keeps it in group itself, a replay of a selection (a filter)
// in group + "-" + 12 hex digits of the selection's SHA-256, so that each
// selection resumes on its own (ReplaySummary.Group names it), and after
// the progress of every record's replay, which went over all of them.
// Default: the DLQ topic + "-replay" (orders.dlq-replay).
func WithGroup(group string) ReplayOpt {
	return replayOptFunc(func(c *replayCfg) { c.group = group })
}

// WithFromStart deletes the progress of this selection's group on the DLQ
// first and starts over from the oldest record (or the filter's first
// offset); other selections keep theirs. A dry run deletes nothing and reads
// as if there were no progress. Default: false.
func WithFromStart(fromStart bool) ReplayOpt {
	return replayOptFunc(func(c *replayCfg) { c.fromStart = fromStart })
}

// WithExactlyOnce produces the replayed records and commits the progress
// that passes them in Kafka transactions (one about every second, and when a
// partition is done): a read_committed consumer sees each replayed record
// once the progress past it is committed, and never a record whose progress
// was not (a crash, a refused produce: the transaction aborts, and the next
// run replays its records again). The transactional id is
// kretry/<progress group>/replay/<random>. Default: false (at least once:
// after a crash, the last second's records go again).
func WithExactlyOnce(on bool) ReplayOpt {
	return replayOptFunc(func(c *replayCfg) { c.exactlyOnce = on })
}

// WithProduceTimeout bounds the wait for one record's acknowledgement,
// which is not cut short when ctx is cancelled. Default:
// DefaultProduceTimeout, 30s.
func WithProduceTimeout(d time.Duration) ReplayOpt {
	return replayOptFunc(func(c *replayCfg) { c.produceTimeout = d })
}

// WithOnStart calls fn once the replay has planned its work and checked its
// target topics, before it produces anything. Default: none.
func WithOnStart(fn func(ReplayPlan)) ReplayOpt {
	return replayOptFunc(func(c *replayCfg) { c.onStart = fn })
}

// WithOnRecord calls fn for every selected record once its outcome is
// known: after its produce is acknowledged, or when it is skipped. Default:
// none.
func WithOnRecord(fn func(ReplayEvent)) ReplayOpt {
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
	SkippedMaxReplays                  // replayed WithMaxReplays times already
	SkippedNoTarget                    // no original topic and no WithTarget
	SkippedNotMainTopic                // its original topic is not one of WithMainTopics
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
	// (WithExactlyOnce); "" otherwise.
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
