package topics

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/kretry/kretry/ladder"
)

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
