package topics

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
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
}

// TopicKind says what a provisioned topic is for.
type TopicKind string

// The kinds of topics that Plan provisions.
const (
	KindTier TopicKind = "tier"
	KindDLQ  TopicKind = "dlq"
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
	// ActionAddPartitions raises the partition count to the main topic's.
	// It is safe for kretry: the relay re-feeds a record to the partition
	// named by its kretry-original-partition header, and DLQ replay to its
	// original topic and partition, so which partition of a tier or DLQ topic
	// holds a record never decides where it goes back to. Records already in
	// a tier topic stay where they are and are re-fed when due.
	ActionAddPartitions Action = "add-partitions"
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
	// Actions is empty when the topic is as wanted.
	Actions []Action
}

// OK reports whether the topic needs no change.
func (s TopicState) OK() bool { return len(s.Actions) == 0 }

// TopicPlan is the result of Plan: one row per tier and DLQ topic of the
// ladders, in ladder order, each topic once.
type TopicPlan struct {
	Topics []TopicState
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
// exist: kretry provisions the retry and DLQ topics of a main topic, never the
// main topic itself.
type MissingTopicError struct {
	Topic string
}

func (e *MissingTopicError) Error() string {
	return fmt.Sprintf("main topic %s does not exist: create it first (kretry creates only the retry and DLQ topics, with the main topic's partition count)", e.Topic)
}

// TierRetention returns the retention that Plan wants for a tier with the
// given delay when no override is configured: max(2 × delay, 24h).
func TierRetention(delay time.Duration) time.Duration {
	return max(2*delay, MinTierRetention)
}

// Plan compares the tier and DLQ topics that the ladders want with the
// cluster: a topic is to be created when it is missing, to get partitions
// when it has fewer than its main topic, to get a longer retention when it
// keeps records for less than the wanted retention (see Provision), and to
// take larger batches when its max.message.bytes is below
// WantMaxMessageBytes of its main topic's. A main
// topic that does not exist is a *MissingTopicError (joined, one per topic).
// Plan changes nothing.
func Plan(ctx context.Context, adm *kadm.Client, provisions []Provision) (*TopicPlan, error) {
	var mains []string
	for i, p := range provisions {
		if p.Ladder == nil {
			return nil, fmt.Errorf("plan topics: provision %d has no ladder: give each Provision its Ladder", i)
		}
		if p.TierRetention < 0 || p.DLQRetention < 0 {
			return nil, fmt.Errorf("plan topics of %s: negative retention override: use 0 for the default", p.Ladder.Topic())
		}
		if !slices.Contains(mains, p.Ladder.Topic()) {
			mains = append(mains, p.Ladder.Topic())
		}
	}
	if len(mains) == 0 {
		return &TopicPlan{}, nil
	}

	mainDetails, err := listTopics(ctx, adm, mains)
	if err != nil {
		return nil, err
	}
	var missing []error
	for _, m := range mains {
		if _, ok := mainDetails[m]; !ok {
			missing = append(missing, &MissingTopicError{Topic: m})
		}
	}
	if len(missing) > 0 {
		return nil, errors.Join(missing...)
	}
	mainConfigs, err := describeConfigs(ctx, adm, mains)
	if err != nil {
		return nil, err
	}

	plan := &TopicPlan{}
	index := map[string]int{} // topic → row
	want := func(topic string, kind TopicKind, l *ladder.Ladder, tier string, retention time.Duration) {
		main := l.Topic()
		md := mainDetails[main]
		parts := int32(len(md.Partitions))
		rf := int16(md.Partitions.NumReplicas())
		maxBytes := WantMaxMessageBytes(l, mainConfigs[main].maxMessageBytes)
		if i, ok := index[topic]; ok { // shared between ladders: want the most of each
			s := &plan.Topics[i]
			s.WantPartitions = max(s.WantPartitions, parts)
			s.WantReplication = max(s.WantReplication, rf)
			s.WantRetention = max(s.WantRetention, retention)
			s.WantMaxMessageBytes = max(s.WantMaxMessageBytes, maxBytes)
			return
		}
		index[topic] = len(plan.Topics)
		plan.Topics = append(plan.Topics, TopicState{
			Topic: topic, Kind: kind, MainTopic: main, Tier: tier,
			WantPartitions: parts, WantReplication: rf, WantRetention: retention, WantMaxMessageBytes: maxBytes,
		})
	}
	for _, p := range provisions {
		l := p.Ladder
		for _, s := range l.Steps() {
			r := p.TierRetention
			if r == 0 {
				r = TierRetention(s.Delay)
			}
			want(s.Topic, KindTier, l, s.Name, r)
		}
		r := p.DLQRetention
		if r == 0 {
			r = DefaultDLQRetention
		}
		want(l.DLQ(), KindDLQ, l, "", r)
	}

	names := make([]string, len(plan.Topics))
	for i, s := range plan.Topics {
		names[i] = s.Topic
	}
	if err := observe(ctx, adm, plan.Topics, names); err != nil {
		return nil, err
	}
	return plan, nil
}

// observe fills in what the cluster has of the named topics of states and
// decides their actions.
func observe(ctx context.Context, adm *kadm.Client, states []TopicState, names []string) error {
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
		if !ok {
			s.Actions = []Action{ActionCreate}
			continue
		}
		s.Partitions = int32(len(d.Partitions))
		s.Retention = configs[s.Topic].retention
		s.MaxMessageBytes = configs[s.Topic].maxMessageBytes
		if s.Retention != Unlimited && s.Retention < s.WantRetention {
			s.Actions = append(s.Actions, ActionRaiseRetention)
		}
		if s.MaxMessageBytes < s.WantMaxMessageBytes {
			s.Actions = append(s.Actions, ActionRaiseMaxMessageBytes)
		}
		if s.Partitions < s.WantPartitions {
			s.Actions = append(s.Actions, ActionAddPartitions)
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
		for _, c := range rc.Configs {
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
		var tc topicConfigs
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
				configs := map[string]*string{
					"retention.ms":      kadm.StringPtr(retentionMs(s.WantRetention)),
					"max.message.bytes": kadm.StringPtr(strconv.Itoa(int(s.WantMaxMessageBytes))),
				}
				_, err = adm.CreateTopic(ctx, s.WantPartitions, s.WantReplication, configs, s.Topic)
				if errors.Is(err, kerr.TopicAlreadyExists) {
					// Look at the topic as it is, and queue what it lacks.
					ap.AlreadyExisted = true
					if err = waitVisible(ctx, adm, []string{s.Topic}); err == nil {
						states := []TopicState{s}
						if err = observe(ctx, adm, states, []string{s.Topic}); err == nil {
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
					err = fmt.Errorf("create topic %s (%d partitions, replication factor %d, retention %s, max.message.bytes %d): %w",
						s.Topic, s.WantPartitions, s.WantReplication, FormatRetention(s.WantRetention), s.WantMaxMessageBytes, err)
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
	if err := settle(ctx, adm, changed); err != nil {
		return done, err
	}
	return done, nil
}

// settle waits until the changed topics show as wanted: in the metadata with
// a leader for each partition, with their partitions and retention. A broker
// applies CreateTopics, CreatePartitions and config changes from the
// controller a little after they return, and a Plan right after Apply must
// find nothing left to do.
func settle(ctx context.Context, adm *kadm.Client, changed []TopicState) error {
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
		err := observe(ctx, adm, states, names)
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
func EnsureTopics(ctx context.Context, adm *kadm.Client, provisions []Provision) ([]Applied, error) {
	plan, err := Plan(ctx, adm, provisions)
	if err != nil {
		return nil, err
	}
	return Apply(ctx, adm, plan)
}
