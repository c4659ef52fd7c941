package topics

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"

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

// Plan compares the tier and DLQ topics that the ladders want with the
// cluster: a topic is to be created when it is missing, to get partitions
// when it has fewer than its main topic, to get a longer retention when it
// keeps records for less than the wanted retention (see Provision), to
// take larger batches when its max.message.bytes is below
// WantMaxMessageBytes of its main topic's, and to get its other configs
// set where they differ from TierConfigs or DLQConfigs. A main topic
// whose Provision has MainPartitions is planned too, first (see
// Provision.MainPartitions); any other main topic that does not exist is a
// *MissingTopicError (joined, one per topic). Plan changes nothing.
func Plan(ctx context.Context, adm *kadm.Client, provisions []Provision, opts ...Opt) (*TopicPlan, error) {
	var o cfg
	for _, opt := range opts {
		opt.apply(&o)
	}
	var mains []string
	declared := map[string]Provision{} // main topic → the provision that declares its partitions
	for i, p := range provisions {
		if p.Ladder == nil {
			return nil, fmt.Errorf("plan topics: provision %d has no ladder: give each Provision its Ladder", i)
		}
		if p.TierRetention < 0 || p.DLQRetention < 0 {
			return nil, fmt.Errorf("plan topics of %s: negative retention override: use 0 for the default", p.Ladder.Topic())
		}
		if p.MainPartitions < 0 || p.MainReplication < 0 {
			return nil, fmt.Errorf("plan topics of %s: negative partitions or replication factor: use 0 to leave the main topic alone", p.Ladder.Topic())
		}
		for _, cs := range []map[string]string{p.TierConfigs, p.DLQConfigs} {
			for k := range cs {
				if err := CheckConfigName(k); err != nil {
					return nil, fmt.Errorf("plan topics of %s: %w", p.Ladder.Topic(), err)
				}
			}
		}
		main := p.Ladder.Topic()
		if !slices.Contains(mains, main) {
			mains = append(mains, main)
		}
		if p.MainPartitions > 0 {
			if d, ok := declared[main]; ok && (d.MainPartitions != p.MainPartitions || d.MainReplication != p.MainReplication) {
				return nil, fmt.Errorf("plan topics: main topic %s is declared twice with different partitions or replication factors: declare it once", main)
			}
			declared[main] = p
		}
	}
	if len(mains) == 0 {
		return &TopicPlan{}, nil
	}

	mainDetails, err := listTopics(ctx, adm, mains)
	if err != nil {
		return nil, err
	}
	var problems []error
	var existing []string
	for _, m := range mains {
		d, ok := mainDetails[m]
		if !ok {
			if _, decl := declared[m]; !decl {
				problems = append(problems, &MissingTopicError{Topic: m})
			}
			continue
		}
		existing = append(existing, m)
		if p, decl := declared[m]; decl && int32(len(d.Partitions)) > p.MainPartitions {
			problems = append(problems, &PartitionsError{Topic: m, Have: int32(len(d.Partitions)), Want: p.MainPartitions})
		}
	}
	if len(problems) > 0 {
		return nil, errors.Join(problems...)
	}
	mainConfigs, err := describeConfigs(ctx, adm, existing)
	if err != nil {
		return nil, err
	}
	if len(existing) < len(mains) {
		// a main topic to be created gets the brokers' message.max.bytes
		mmb := brokerMaxMessageBytes(ctx, adm)
		for _, m := range mains {
			if _, ok := mainConfigs[m]; !ok {
				mainConfigs[m] = topicConfigs{maxMessageBytes: mmb}
			}
		}
	}

	plan := &TopicPlan{}
	index := map[string]int{} // topic → row
	// The main topics declared come first, so that Apply creates them
	// before their tier topics.
	for _, m := range mains {
		p, ok := declared[m]
		if !ok {
			continue
		}
		rf := p.MainReplication
		if rf == 0 {
			rf = -1 // the brokers' default
		}
		index[m] = len(plan.Topics)
		plan.Topics = append(plan.Topics, TopicState{
			Topic: m, Kind: KindMain, MainTopic: m,
			WantPartitions: p.MainPartitions, WantReplication: rf,
		})
	}
	// mainShape is the partition count and replication factor the main
	// topic has after Apply: tier and DLQ topics follow it.
	mainShape := func(main string) (int32, int16) {
		md, ok := mainDetails[main]
		p, decl := declared[main]
		switch {
		case !ok:
			rf := p.MainReplication
			if rf == 0 {
				rf = -1 // the brokers' default
			}
			return p.MainPartitions, rf
		case decl && o.raisePartitions:
			return max(int32(len(md.Partitions)), p.MainPartitions), int16(md.Partitions.NumReplicas())
		default:
			return int32(len(md.Partitions)), int16(md.Partitions.NumReplicas())
		}
	}
	var conflict error
	want := func(topic string, kind TopicKind, l *ladder.Ladder, tier string, retention time.Duration, configs map[string]string) {
		main := l.Topic()
		parts, rf := mainShape(main)
		maxBytes := WantMaxMessageBytes(l, mainConfigs[main].maxMessageBytes)
		if i, ok := index[topic]; ok { // shared between ladders: want the most of each
			s := &plan.Topics[i]
			if s.Kind != kind {
				conflict = fmt.Errorf("plan topics: topic %s is both a %s topic and a %s topic: give each its own name", topic, s.Kind, kind)
				return
			}
			s.WantPartitions = max(s.WantPartitions, parts)
			s.WantReplication = max(s.WantReplication, rf)
			s.WantRetention = max(s.WantRetention, retention)
			s.WantMaxMessageBytes = max(s.WantMaxMessageBytes, maxBytes)
			for k, v := range configs {
				if have, ok := s.WantConfigs[k]; ok && have != v {
					conflict = fmt.Errorf("plan topics: topic %s is shared by the ladders of %s and %s, which want %s %q and %q: give both the same value", topic, s.MainTopic, main, k, have, v)
					return
				}
				if s.WantConfigs == nil {
					s.WantConfigs = map[string]string{}
				}
				s.WantConfigs[k] = v
			}
			return
		}
		index[topic] = len(plan.Topics)
		plan.Topics = append(plan.Topics, TopicState{
			Topic: topic, Kind: kind, MainTopic: main, Tier: tier,
			WantPartitions: parts, WantReplication: rf, WantRetention: retention, WantMaxMessageBytes: maxBytes,
			WantConfigs: maps.Clone(configs),
		})
	}
	for _, p := range provisions {
		l := p.Ladder
		for _, s := range l.Steps() {
			r := p.TierRetention
			if r == 0 {
				r = TierRetention(s.Delay)
			}
			want(s.Topic, KindTier, l, s.Name, r, p.TierConfigs)
		}
		r := p.DLQRetention
		if r == 0 {
			r = DefaultDLQRetention
		}
		want(l.DLQ(), KindDLQ, l, "", r, p.DLQConfigs)
		for _, name := range l.RouteNames() {
			rt, _ := l.Route(name)
			want(rt, KindDLQRoute, l, name, r, p.DLQConfigs) // like the DLQ
		}
	}
	if conflict != nil {
		return nil, conflict
	}

	names := make([]string, len(plan.Topics))
	for i, s := range plan.Topics {
		names[i] = s.Topic
	}
	if err := observe(ctx, adm, plan.Topics, names, o); err != nil {
		return nil, err
	}
	plan.raisePartitions = o.raisePartitions
	return plan, nil
}

// brokerMaxMessageBytes is the brokers' message.max.bytes, the
// max.message.bytes of a topic created without one: Kafka's default
// (1048588) when it cannot be read.
func brokerMaxMessageBytes(ctx context.Context, adm *kadm.Client) int32 {
	const kafkaDefault = 1048588
	// Without a broker id, DescribeBrokerConfigs answers the cluster's
	// dynamic defaults only.
	bm, err := adm.BrokerMetadata(ctx)
	if err != nil || len(bm.Brokers) == 0 {
		return kafkaDefault
	}
	rcs, err := adm.DescribeBrokerConfigs(ctx, bm.Brokers.NodeIDs()[0])
	if err != nil {
		return kafkaDefault
	}
	for _, rc := range rcs {
		for _, c := range rc.Configs {
			if c.Key == "message.max.bytes" && c.Value != nil {
				if n, err := strconv.ParseInt(*c.Value, 10, 32); err == nil && n > 0 {
					return int32(n)
				}
			}
		}
	}
	return kafkaDefault
}

// observe fills in what the cluster has of the named topics of states and
// decides their actions.
func observe(ctx context.Context, adm *kadm.Client, states []TopicState, names []string, o cfg) error {
	details, err := listTopics(ctx, adm, names)
	if err != nil {
		return err
	}
	var existing []string
	for _, n := range names {
		if _, ok := details[n]; ok {
			existing = append(existing, n)
		}
	}
	configs, err := describeConfigs(ctx, adm, existing)
	if err != nil {
		return err
	}
	for i := range states {
		s := &states[i]
		if !slices.Contains(names, s.Topic) {
			continue
		}
		d, ok := details[s.Topic]
		s.Exists, s.Partitions, s.Retention, s.MaxMessageBytes, s.Actions = ok, 0, 0, 0, nil
		s.ReplicationFactor, s.Configs, s.Held, s.Warnings = 0, nil, nil, nil
		if !ok {
			s.Actions = []Action{ActionCreate}
			continue
		}
		s.Partitions = int32(len(d.Partitions))
		s.ReplicationFactor = int16(d.Partitions.NumReplicas())
		s.Retention = configs[s.Topic].retention
		s.MaxMessageBytes = configs[s.Topic].maxMessageBytes
		if len(s.WantConfigs) > 0 {
			s.Configs = map[string]string{}
			for k := range s.WantConfigs {
				if v, ok := configs[s.Topic].all[k]; ok {
					s.Configs[k] = v
				}
			}
		}
		if s.Kind == KindMain {
			if s.WantReplication > 0 && s.ReplicationFactor != s.WantReplication {
				s.Warnings = append(s.Warnings, fmt.Sprintf("replication factor %d, the config wants %d: kretry never changes a replication factor (reassign the partitions with Kafka's tools, or want %d)",
					s.ReplicationFactor, s.WantReplication, s.ReplicationFactor))
			}
			if s.Partitions < s.WantPartitions {
				if o.raisePartitions {
					s.Actions = append(s.Actions, ActionAddPartitions)
				} else {
					s.Held = append(s.Held, ActionAddPartitions)
					s.Warnings = append(s.Warnings, fmt.Sprintf("%d partitions, the config wants %d: raised only with --raise-partitions (keys move to other partitions)",
						s.Partitions, s.WantPartitions))
				}
			}
			continue
		}
		if s.Retention != Unlimited && s.Retention < s.WantRetention {
			s.Actions = append(s.Actions, ActionRaiseRetention)
		}
		if s.MaxMessageBytes < s.WantMaxMessageBytes {
			s.Actions = append(s.Actions, ActionRaiseMaxMessageBytes)
		}
		if s.Partitions < s.WantPartitions {
			s.Actions = append(s.Actions, ActionAddPartitions)
		}
		if len(s.ConfigDrift()) > 0 {
			s.Actions = append(s.Actions, ActionSetConfigs)
		}
	}
	return nil
}

// listTopics returns the details of the topics that exist; a topic that does
// not exist is absent, any other per-topic error is returned.
func listTopics(ctx context.Context, adm *kadm.Client, topics []string) (kadm.TopicDetails, error) {
	// kadm answers metadata from the client's cache, up to MetadataMinAge
	// (5s) old, unless authorized operations are asked for: a plan right
	// after an apply on the same client must see the topics it created.
	details, err := adm.ListTopics(kadm.WithAuthorizedOps(ctx), topics...)
	if err != nil {
		return nil, fmt.Errorf("list topics %v: %w", topics, err)
	}
	out := kadm.TopicDetails{}
	for _, t := range topics {
		d, ok := details[t]
		switch {
		case !ok || errors.Is(d.Err, kerr.UnknownTopicOrPartition):
		case d.Err != nil:
			return nil, fmt.Errorf("describe topic %s: %w", t, d.Err)
		default:
			out[t] = d
		}
	}
	return out, nil
}

// topicConfigs is what Plan reads of a topic's configs.
type topicConfigs struct {
	retention       time.Duration
	maxMessageBytes int32
	all             map[string]string // every config the broker described with a value
}

// describeConfigs returns retention.ms and max.message.bytes of each topic,
// as the broker applies them (set on the topic or its default).
func describeConfigs(ctx context.Context, adm *kadm.Client, topics []string) (map[string]topicConfigs, error) {
	out := make(map[string]topicConfigs, len(topics))
	if len(topics) == 0 {
		return out, nil
	}
	rcs, err := adm.DescribeTopicConfigs(ctx, topics...)
	if err != nil {
		return nil, fmt.Errorf("describe configs of topics %v: %w", topics, err)
	}
	for _, t := range topics {
		rc, err := rcs.On(t, nil)
		if err == nil {
			err = rc.Err
		}
		if err != nil {
			return nil, fmt.Errorf("describe configs of topic %s: %w", t, err)
		}
		var v, mb *string
		all := make(map[string]string, len(rc.Configs))
		for _, c := range rc.Configs {
			if c.Value != nil {
				all[c.Key] = *c.Value
			}
			switch c.Key {
			case "retention.ms":
				v = c.Value
			case "max.message.bytes":
				mb = c.Value
			}
		}
		if v == nil || mb == nil {
			return nil, fmt.Errorf("describe configs of topic %s: the broker did not return retention.ms and max.message.bytes", t)
		}
		ms, err := strconv.ParseInt(*v, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("topic %s: retention.ms %q is not a number", t, *v)
		}
		tc := topicConfigs{all: all}
		if ms < 0 {
			tc.retention = Unlimited
		} else {
			tc.retention = time.Duration(ms) * time.Millisecond
		}
		n, err := strconv.ParseInt(*mb, 10, 32)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("topic %s: max.message.bytes %q is not a size in bytes", t, *mb)
		}
		tc.maxMessageBytes = int32(n)
		out[t] = tc
	}
	return out, nil
}

// Applied is one change that Apply made.
type Applied struct {
	TopicState
	Action Action
	// AlreadyExisted is set on a create that found the topic there: created
	// in the meantime (by another kretry process applying the same plan), or
	// not yet in the metadata that Plan read. Apply then checks the topic
	// and raises its retention or partitions where they fall short.
	AlreadyExisted bool
}

// visibleTimeout bounds how long Apply waits for the broker it talks to to
// show its changes.
const visibleTimeout = 30 * time.Second

// Apply makes the changes of plan, in order: it creates missing topics with
// the wanted partitions, replication factor, retention.ms and
// max.message.bytes, raises a retention or a max.message.bytes that is too
// short, and adds partitions up to the main topic's count. It never deletes,
// never removes partitions and never shortens a retention or a
// max.message.bytes. It returns when the broker shows every change (at most 30s
// later), so that a consumer or relay started next finds the topics and a
// Plan right after finds nothing to do. It returns what it changed, nothing when the plan has no changes,
// so applying a fresh plan twice changes nothing the second time. On an
// error it returns the changes made before it.
func Apply(ctx context.Context, adm *kadm.Client, plan *TopicPlan) ([]Applied, error) {
	var done []Applied
	var changed []TopicState
	for _, s := range plan.Changes() {
		queue := slices.Clone(s.Actions)
		for len(queue) > 0 {
			ap := Applied{TopicState: s, Action: queue[0]}
			queue = queue[1:]
			var err error
			switch ap.Action {
			case ActionCreate:
				configs := map[string]*string{}
				if s.Kind != KindMain { // a main topic gets the brokers' defaults
					configs["retention.ms"] = kadm.StringPtr(retentionMs(s.WantRetention))
					configs["max.message.bytes"] = kadm.StringPtr(strconv.Itoa(int(s.WantMaxMessageBytes)))
				}
				for k, v := range s.WantConfigs {
					configs[k] = kadm.StringPtr(v)
				}
				_, err = adm.CreateTopic(ctx, s.WantPartitions, s.WantReplication, configs, s.Topic)
				if errors.Is(err, kerr.TopicAlreadyExists) {
					// Look at the topic as it is, and queue what it lacks.
					ap.AlreadyExisted = true
					if err = waitVisible(ctx, adm, []string{s.Topic}); err == nil {
						states := []TopicState{s}
						if err = observe(ctx, adm, states, []string{s.Topic}, cfg{raisePartitions: plan.raisePartitions}); err == nil {
							s = states[0]
							for _, a := range s.Actions {
								if a != ActionCreate { // seen above; never loop on create
									queue = append(queue, a)
								}
							}
						}
					}
				}
				if err != nil {
					err = fmt.Errorf("create topic %s (%s): %w", s.Topic, s.CreateSummary(), err)
				}
			case ActionSetConfigs:
				var alter []kadm.AlterConfig
				var what []string
				for _, k := range s.ConfigDrift() {
					alter = append(alter, kadm.AlterConfig{Op: kadm.SetConfig, Name: k, Value: kadm.StringPtr(s.WantConfigs[k])})
					what = append(what, k+"="+s.WantConfigs[k])
				}
				var rs kadm.AlterConfigsResponses
				rs, err = adm.AlterTopicConfigs(ctx, alter, s.Topic)
				if err == nil {
					_, err = rs.On(s.Topic, func(r *kadm.AlterConfigsResponse) error { return r.Err })
				}
				if err != nil {
					err = fmt.Errorf("set configs %s of topic %s: %w", strings.Join(what, ", "), s.Topic, err)
				}
			case ActionRaiseRetention:
				var rs kadm.AlterConfigsResponses
				rs, err = adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{
					Op: kadm.SetConfig, Name: "retention.ms", Value: kadm.StringPtr(retentionMs(s.WantRetention)),
				}}, s.Topic)
				if err == nil {
					_, err = rs.On(s.Topic, func(r *kadm.AlterConfigsResponse) error { return r.Err })
				}
				if err != nil {
					err = fmt.Errorf("raise retention.ms of topic %s from %s to %s: %w",
						s.Topic, FormatRetention(s.Retention), FormatRetention(s.WantRetention), err)
				}
			case ActionRaiseMaxMessageBytes:
				var rs kadm.AlterConfigsResponses
				rs, err = adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{
					Op: kadm.SetConfig, Name: "max.message.bytes", Value: kadm.StringPtr(strconv.Itoa(int(s.WantMaxMessageBytes))),
				}}, s.Topic)
				if err == nil {
					_, err = rs.On(s.Topic, func(r *kadm.AlterConfigsResponse) error { return r.Err })
				}
				if err != nil {
					err = fmt.Errorf("raise max.message.bytes of topic %s from %d to %d: %w",
						s.Topic, s.MaxMessageBytes, s.WantMaxMessageBytes, err)
				}
			case ActionAddPartitions:
				var rs kadm.CreatePartitionsResponses
				rs, err = adm.UpdatePartitions(ctx, int(s.WantPartitions), s.Topic)
				if err == nil {
					_, err = rs.On(s.Topic, func(r *kadm.CreatePartitionsResponse) error { return r.Err })
				}
				if err != nil {
					err = fmt.Errorf("add partitions to topic %s (%d to %d): %w", s.Topic, s.Partitions, s.WantPartitions, err)
				}
			default:
				err = fmt.Errorf("topic %s: unknown action %q", s.Topic, ap.Action)
			}
			if err != nil {
				return done, err
			}
			done = append(done, ap)
		}
		changed = append(changed, s)
	}
	if err := settle(ctx, adm, changed, cfg{raisePartitions: plan.raisePartitions}); err != nil {
		return done, err
	}
	return done, nil
}

// settle waits until the changed topics show as wanted: in the metadata with
// a leader for each partition, with their partitions and retention. A broker
// applies CreateTopics, CreatePartitions and config changes from the
// controller a little after they return, and a Plan right after Apply must
// find nothing left to do.
func settle(ctx context.Context, adm *kadm.Client, changed []TopicState, o cfg) error {
	if len(changed) == 0 {
		return nil
	}
	names := make([]string, len(changed))
	for i, s := range changed {
		names[i] = s.Topic
	}
	if err := waitVisible(ctx, adm, names); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, visibleTimeout)
	defer cancel()
	for wait := 10 * time.Millisecond; ; wait = min(2*wait, 500*time.Millisecond) {
		states := slices.Clone(changed)
		err := observe(ctx, adm, states, names, o)
		if err != nil && ctx.Err() == nil {
			return err
		}
		var pending []string
		for _, s := range states {
			if err != nil || !s.OK() {
				pending = append(pending, s.Topic)
			}
		}
		if len(pending) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("topics %v were changed but do not show the changes after %v: check the cluster's health and run the apply again: %w",
				pending, visibleTimeout, ctx.Err())
		case <-time.After(wait):
		}
	}
}

// waitVisible waits until every topic shows in the metadata with a leader
// for each partition: a broker learns of a topic from the controller a
// little after CreateTopics returns.
func waitVisible(ctx context.Context, adm *kadm.Client, topics []string) error {
	if len(topics) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, visibleTimeout)
	defer cancel()
	for wait := 10 * time.Millisecond; ; wait = min(2*wait, 500*time.Millisecond) {
		details, err := listTopics(ctx, adm, topics)
		if err != nil && ctx.Err() == nil {
			return err
		}
		var missing []string
		for _, t := range topics {
			d, ok := details[t]
			for _, p := range d.Partitions {
				if p.Leader < 0 || p.Err != nil {
					ok = false
				}
			}
			if !ok {
				missing = append(missing, t)
			}
		}
		if len(missing) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("topics %v were created but do not show in the broker's metadata after %v: check the cluster's health: %w",
				missing, visibleTimeout, ctx.Err())
		case <-time.After(wait):
		}
	}
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

// EnsureTopics plans and applies in one call: what a consumer or relay does
// at start to create its missing tier and DLQ topics. It returns what it
// changed; a missing main topic is a *MissingTopicError.
func EnsureTopics(ctx context.Context, adm *kadm.Client, provisions []Provision, opts ...Opt) ([]Applied, error) {
	plan, err := Plan(ctx, adm, provisions, opts...)
	if err != nil {
		return nil, err
	}
	return Apply(ctx, adm, plan)
}
