package topics

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kretry/kretry/ladder"
)

// Retention defaults of the topics that Plan wants (docs/design.md §2).
const (
	// MinTierRetention is the shortest retention Plan wants for a tier topic:
	// a tier's retention is max(2 × delay, MinTierRetention), so that a record
	// outlives a relay that is down for a while.
	MinTierRetention = 24 * time.Hour
	// DefaultDLQRetention is the retention Plan wants for a DLQ topic: long
	// enough to notice an incident, look at it and replay.
	DefaultDLQRetention = 14 * 24 * time.Hour
)

// Provision is what Plan provisions for one ladder: its tier topics and its
// DLQ, and the retention they should have.
type Provision struct {
	Ladder *ladder.Ladder
	// TierRetention is the retention every tier topic should have at least.
	// 0: per tier, max(2 × delay, MinTierRetention).
	TierRetention time.Duration
	// DLQRetention is the retention the DLQ should have at least.
	// 0: DefaultDLQRetention (14 days).
	DLQRetention time.Duration
	// MainPartitions, when > 0, is the partition count of the main topic:
	// Plan then wants the main topic too, creates it when it is missing
	// (rather than returning a *MissingTopicError), raises its partitions
	// only with WithRaisePartitions, and returns a *PartitionsError when it
	// has more (Kafka cannot remove partitions). 0: the main topic is the
	// service's, never created nor changed.
	MainPartitions int32
	// MainReplication is the replication factor Plan creates a missing main
	// topic with (only with MainPartitions); 0: the brokers'
	// default.replication.factor. An existing topic's is never changed: a
	// different one is a warning of its row.
	MainReplication int16
	// TierConfigs and DLQConfigs are other topic configs the tier topics
	// and the DLQ should have (min.insync.replicas, compression.type, …):
	// set when Apply creates a topic, set again (IncrementalAlterConfigs)
	// where a topic has another value. Values are compared as text with what
	// the broker describes. Names must pass CheckConfigName.
	TierConfigs, DLQConfigs map[string]string
}

// Owned are the topic configs that kretry sets itself on the tier and DLQ
// topics, and so refuses among Provision's TierConfigs and DLQConfigs.
var owned = map[string]string{
	"retention.ms":      "kretry sets it from the retention settings (retention.tiers, retention.dlq)",
	"max.message.bytes": "kretry sets it from the main topic's, plus room for its headers",
	"cleanup.policy":    "tier and DLQ topics must delete, never compact: compaction would drop records that share a key",
}

// CheckConfigName reports whether name may be given as an extra topic
// config: a Kafka config name (lower-case words of letters and digits
// joined by '.') that kretry does not set itself (retention.ms,
// max.message.bytes, cleanup.policy).
func CheckConfigName(name string) error {
	if why, ok := owned[name]; ok {
		return fmt.Errorf("topic config %s is kretry's: %s; remove it", name, why)
	}
	words := strings.Split(name, ".")
	for _, w := range words {
		ok := w != "" && 'a' <= w[0] && w[0] <= 'z'
		for _, c := range []byte(w) {
			ok = ok && ('a' <= c && c <= 'z' || '0' <= c && c <= '9')
		}
		if !ok || len(name) > 249 {
			return fmt.Errorf("topic config name %q is not a Kafka topic config name: lower-case words of letters and digits joined by '.', such as min.insync.replicas", name)
		}
	}
	return nil
}

// PartitionsError is returned by Plan when a main topic has more partitions
// than its Provision's MainPartitions: Kafka cannot remove partitions.
type PartitionsError struct {
	Topic      string
	Have, Want int32
}

func (e *PartitionsError) Error() string {
	return fmt.Sprintf("main topic %s has %d partitions and %d are wanted: Kafka cannot remove partitions; want %d (partitions: %d in the config) or leave the count out",
		e.Topic, e.Have, e.Want, e.Have, e.Have)
}

// Opt is an option of Plan and EnsureTopics.
type Opt interface{ apply(*cfg) }

type cfg struct{ raisePartitions bool }

type optFunc func(*cfg)

func (f optFunc) apply(c *cfg) { f(c) }

// WithRaisePartitions lets Apply raise a main topic's partitions to its
// Provision's MainPartitions (ActionAddPartitions on its row). Default
// false: a main topic with fewer partitions keeps them, its row holds the
// raise in Held. Raising a main topic's partitions moves keys to other
// partitions, which breaks per-key order across the change.
func WithRaisePartitions(raise bool) Opt { return optFunc(func(c *cfg) { c.raisePartitions = raise }) }

// TopicKind says what a provisioned topic is for.
type TopicKind string

// The kinds of topics that Plan provisions.
const (
	KindTier TopicKind = "tier"
	KindDLQ  TopicKind = "dlq"
	// KindDLQRoute is a DLQ route (dlq_routes); Tier is the route's name.
	KindDLQRoute TopicKind = "dlq-route"
	// KindMain is a main topic, planned when its Provision has
	// MainPartitions.
	KindMain TopicKind = "main"
)

// Action is one change that Apply makes to a topic.
type Action string

// The actions of a plan. Apply never deletes a topic, never removes
// partitions and never shortens a retention.
const (
	// ActionCreate creates a missing topic with the main topic's partition
	// count and replication factor and the wanted retention.
	ActionCreate Action = "create"
	// ActionRaiseRetention sets retention.ms to the wanted retention
	// (IncrementalAlterConfigs), where the topic keeps records for less.
	ActionRaiseRetention Action = "raise-retention"
	// ActionRaiseMaxMessageBytes sets max.message.bytes to the wanted size
	// (IncrementalAlterConfigs), where the topic takes smaller batches: a
	// record the main topic accepted must fit with kretry's headers.
	ActionRaiseMaxMessageBytes Action = "raise-max-message-bytes"
	// ActionAddPartitions raises the partition count to the main topic's
	// (of a main topic: to its Provision's MainPartitions, only with
	// WithRaisePartitions).
	// It is safe for kretry: the relay re-feeds a record to the partition
	// named by its kretry-original-partition header, and DLQ replay to its
	// original topic and partition, so which partition of a tier or DLQ topic
	// holds a record never decides where it goes back to. Records already in
	// a tier topic stay where they are and are re-fed when due.
	ActionAddPartitions Action = "add-partitions"
	// ActionSetConfigs sets the topic configs of TierConfigs or DLQConfigs
	// that the topic lacks or has another value of (IncrementalAlterConfigs).
	ActionSetConfigs Action = "set-configs"
)

// Unlimited is the retention of a topic with retention.ms = -1.
const Unlimited time.Duration = -1

// HeaderRoom is what Plan adds to the main topic's max.message.bytes for
// the tier and DLQ topics, besides the lengths of the group and main topic
// names: kretry's headers with a kretry-error of MaxErrorLen bytes, their
// names and framing, and a margin. A record the main topic accepted so
// always fits, with its kretry headers, in a batch of its own.
const HeaderRoom = 2 << 10

// WantMaxMessageBytes returns the max.message.bytes Plan wants for the tier
// and DLQ topics of l when its main topic has mainMax: mainMax plus
// HeaderRoom plus the names the headers carry, at most the int32 maximum.
func WantMaxMessageBytes(l *ladder.Ladder, mainMax int32) int32 {
	return int32(min(int64(mainMax)+HeaderRoom+int64(len(l.Group())+len(l.Topic())), 1<<31-1))
}

// TopicState is one row of a plan: a tier or DLQ topic as the cluster has it
// and as kretry wants it, and what Apply would change.
type TopicState struct {
	Topic string
	Kind  TopicKind
	// MainTopic is the ladder's main topic (the first one, when ladders share
	// a DLQ); Tier the step's name ("retry-5s"), empty for a DLQ.
	MainTopic, Tier string
	Exists          bool
	// Partitions, Retention and MaxMessageBytes are what the topic has: 0
	// when it does not exist; Retention is Unlimited for retention.ms = -1.
	Partitions      int32
	Retention       time.Duration
	MaxMessageBytes int32
	// WantPartitions is the main topic's partition count (the most of all
	// main topics when ladders share a topic); WantReplication the main
	// topic's replication factor, used only to create the topic.
	WantPartitions  int32
	WantReplication int16
	WantRetention   time.Duration
	// WantMaxMessageBytes is WantMaxMessageBytes of the main topic's
	// max.message.bytes (the most of all main topics when ladders share a
	// topic).
	WantMaxMessageBytes int32
	// ReplicationFactor is what the topic has: 0 when it does not exist.
	ReplicationFactor int16
	// WantConfigs are the other configs the topic should have (Provision's
	// TierConfigs or DLQConfigs); Configs what it has of them (a key is
	// absent when the broker does not describe it).
	WantConfigs, Configs map[string]string
	// Actions is empty when the topic is as wanted.
	Actions []Action
	// Held are the changes Apply makes only with WithRaisePartitions: the
	// raise of a main topic's partitions.
	Held []Action
	// Warnings are differences that Apply never changes: a main topic's
	// replication factor.
	Warnings []string
}

// ConfigDrift returns the names of WantConfigs whose value the topic does
// not have, sorted.
func (s TopicState) ConfigDrift() []string {
	var out []string
	for k, v := range s.WantConfigs {
		if have, ok := s.Configs[k]; !ok || have != v {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// CreateSummary says what Apply creates the topic with: "6 partitions,
// replication factor 3, retention 1d, max.message.bytes 1050636" and its
// other configs; a main topic has only its partitions and replication
// factor, the brokers' default where WantReplication is -1.
func (s TopicState) CreateSummary() string {
	rf := strconv.Itoa(int(s.WantReplication))
	if s.WantReplication <= 0 {
		rf = "the brokers' default"
	}
	out := fmt.Sprintf("%d partitions, replication factor %s", s.WantPartitions, rf)
	if s.Kind != KindMain {
		out += fmt.Sprintf(", retention %s, max.message.bytes %d", FormatRetention(s.WantRetention), s.WantMaxMessageBytes)
	}
	for _, k := range slices.Sorted(maps.Keys(s.WantConfigs)) {
		out += ", " + k + " " + s.WantConfigs[k]
	}
	return out
}

// OK reports whether the topic needs no change.
func (s TopicState) OK() bool { return len(s.Actions) == 0 }

// TopicPlan is the result of Plan: one row per tier and DLQ topic of the
// ladders, in ladder order, each topic once.
type TopicPlan struct {
	Topics []TopicState

	raisePartitions bool // WithRaisePartitions, for Apply's second looks
}

// Changes returns the rows that Apply would change.
func (p *TopicPlan) Changes() []TopicState {
	var out []TopicState
	for _, s := range p.Topics {
		if !s.OK() {
			out = append(out, s)
		}
	}
	return out
}

// Pending returns the rows that differ from what is wanted and that Apply
// changes, with WithRaisePartitions for the Held ones: what a CI gate
// (kretry topics plan --exit-code) fails on.
func (p *TopicPlan) Pending() []TopicState {
	var out []TopicState
	for _, s := range p.Topics {
		if !s.OK() || len(s.Held) > 0 {
			out = append(out, s)
		}
	}
	return out
}

// Missing returns the names of the planned topics that do not exist.
func (p *TopicPlan) Missing() []string {
	var out []string
	for _, s := range p.Topics {
		if !s.Exists {
			out = append(out, s.Topic)
		}
	}
	return out
}

// MissingTopicError is returned by Plan when a ladder's main topic does not
// exist and its Provision has no MainPartitions: kretry then provisions the
// retry and DLQ topics of a main topic, never the main topic itself.
type MissingTopicError struct {
	Topic string
}

func (e *MissingTopicError) Error() string {
	return fmt.Sprintf("main topic %s does not exist: create it first, or give it partitions (and replication_factor) in the config for kretry topics apply to create it", e.Topic)
}

// TierRetention returns the retention that Plan wants for a tier with the
// given delay when no override is configured: max(2 × delay, 24h).
func TierRetention(delay time.Duration) time.Duration {
	return max(2*delay, MinTierRetention)
}

func retentionMs(d time.Duration) string {
	if d == Unlimited {
		return "-1"
	}
	return strconv.FormatInt(d.Milliseconds(), 10)
}

// FormatRetention writes a retention in whole days where it is whole days
// ("14d", "1d"), else in FormatDelay form ("20m", "36h" is "1d12h"), and
// Unlimited as "unlimited".
func FormatRetention(d time.Duration) string {
	const day = 24 * time.Hour
	switch {
	case d == Unlimited:
		return "unlimited"
	case d >= day && d%day == 0:
		return strconv.FormatInt(int64(d/day), 10) + "d"
	case d > day:
		return strconv.FormatInt(int64(d/day), 10) + "d" + ladder.FormatDelay(d%day)
	default:
		return ladder.FormatDelay(d)
	}
}
