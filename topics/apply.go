package topics

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
)

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
