package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/kretry/kretry/config"
	"github.com/kretry/kretry/topics"
)

func (a *app) newTopicsCommand() *cobra.Command {
	topics := &cobra.Command{
		Use:   "topics",
		Short: "Plan and create the retry and DLQ topics of a config",
	}
	var exitCode bool
	planCmd := &cobra.Command{
		Use:   "plan",
		Short: "Compare the retry and DLQ topics with the cluster; change nothing",
		Long: `plan lists every tier and DLQ topic of the config with what it has and what
kretry wants: the main topic's partition count, a retention of at least
max(2 × delay, 1d) for a tier and 14d for a DLQ (or the configured overrides),
and a max.message.bytes of at least the main topic's plus room for kretry's
headers. The action column says what "kretry topics apply" would do.

With --exit-code the exit status says whether anything is pending, for a CI
gate: 3 when apply would change something, 0 when nothing (1 and 2 as ever).`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			plan, err := a.plan(cmd.Context())
			if err != nil {
				return err
			}
			if err := a.printPlan(plan); err != nil {
				return err
			}
			if exitCode && len(plan.Changes()) > 0 {
				return errChangesPending
			}
			return nil
		},
	}
	planCmd.Flags().BoolVar(&exitCode, "exit-code", false, "exit 3 when changes are pending, 0 when none")
	topics.AddCommand(
		planCmd,
		&cobra.Command{
			Use:   "apply",
			Short: "Create missing retry and DLQ topics, raise short retention and max.message.bytes, add missing partitions",
			Long: `apply makes the changes that "kretry topics plan" shows: it creates a missing
topic with the main topic's partition count and replication factor, the
wanted retention and max.message.bytes, raises a retention or a
max.message.bytes that is too small, and adds partitions up to the main
topic's count (safe: kretry routes a record back by the partition in its
headers, not by where it sits). It never deletes a topic, never removes
partitions and never shortens a retention or a max.message.bytes. Applying
twice changes nothing the second time.`,
			RunE: func(cmd *cobra.Command, _ []string) error { return a.apply(cmd.Context()) },
		},
	)
	return topics
}

// planWith loads the config, connects and plans; the caller closes adm.
func (a *app) planWith(ctx context.Context) (*config.Config, *kadm.Client, *topics.TopicPlan, error) {
	cfg, err := a.loadConfig()
	if err != nil {
		return nil, nil, nil, err
	}
	provs, err := cfg.Provisions()
	if err != nil {
		return nil, nil, nil, err
	}
	cl, err := a.connect(ctx, cfg)
	if err != nil {
		return nil, nil, nil, err
	}
	adm := kadm.NewClient(cl)
	plan, err := topics.Plan(ctx, adm, provs)
	if err != nil {
		adm.Close()
		var mte *topics.MissingTopicError
		if errors.As(err, &mte) {
			return nil, nil, nil, err
		}
		return nil, nil, nil, a.kafkaError(ctx, cfg, err)
	}
	return cfg, adm, plan, nil
}

func (a *app) plan(ctx context.Context) (*topics.TopicPlan, error) {
	_, adm, plan, err := a.planWith(ctx)
	if err != nil {
		return nil, err
	}
	adm.Close()
	return plan, nil
}

func (a *app) printPlan(plan *topics.TopicPlan) error {
	if a.json {
		enc := json.NewEncoder(a.stdout)
		for _, s := range plan.Topics {
			if err := enc.Encode(topicJSON(s, nil)); err != nil {
				return err
			}
		}
		return nil
	}
	writePlanTable(a.stdout, plan)
	changes := plan.Changes()
	if len(changes) == 0 {
		fmt.Fprintf(a.stdout, "\n%s: nothing to apply\n", countTopics(len(plan.Topics), "up to date"))
		return nil
	}
	fmt.Fprintf(a.stdout, "\n%s to change (%s): run %s\n", countTopics(len(changes), ""), summarizeActions(changes), a.hint("topics apply"))
	return nil
}

func (a *app) apply(ctx context.Context) error {
	cfg, adm, plan, err := a.planWith(ctx)
	if err != nil {
		return err
	}
	defer adm.Close()
	done, err := topics.Apply(ctx, adm, plan)
	a.printApplied(plan, done)
	if err != nil {
		return fmt.Errorf("%w: fix that and run %s again (what was done stays done)", a.kafkaError(ctx, cfg, err), a.hint("topics apply"))
	}
	return nil
}

func (a *app) printApplied(plan *topics.TopicPlan, done []topics.Applied) {
	if a.json {
		byTopic := map[string][]topics.Action{}
		for _, d := range done {
			byTopic[d.Topic] = append(byTopic[d.Topic], d.Action)
		}
		enc := json.NewEncoder(a.stdout)
		for _, s := range plan.Topics {
			_ = enc.Encode(topicJSON(s, byTopic[s.Topic]))
		}
		return
	}
	for _, d := range done {
		switch {
		case d.AlreadyExisted:
			fmt.Fprintf(a.stdout, "exists    %s: already there (created since the plan read the metadata); checked as it is\n", d.Topic)
		case d.Action == topics.ActionCreate:
			fmt.Fprintf(a.stdout, "created   %s: %d partitions, replication factor %d, retention %s, max.message.bytes %d\n",
				d.Topic, d.WantPartitions, d.WantReplication, topics.FormatRetention(d.WantRetention), d.WantMaxMessageBytes)
		case d.Action == topics.ActionRaiseRetention:
			fmt.Fprintf(a.stdout, "raised    %s: retention %s -> %s\n",
				d.Topic, topics.FormatRetention(d.Retention), topics.FormatRetention(d.WantRetention))
		case d.Action == topics.ActionRaiseMaxMessageBytes:
			fmt.Fprintf(a.stdout, "raised    %s: max.message.bytes %d -> %d\n", d.Topic, d.MaxMessageBytes, d.WantMaxMessageBytes)
		case d.Action == topics.ActionAddPartitions:
			fmt.Fprintf(a.stdout, "added     %s: partitions %d -> %d\n", d.Topic, d.Partitions, d.WantPartitions)
		}
	}
	if len(done) == 0 {
		fmt.Fprintf(a.stdout, "nothing to change: %s\n", countTopics(len(plan.Topics), "up to date"))
		return
	}
	fmt.Fprintf(a.stdout, "applied %d %s to %s\n", len(done), plural(len(done), "change", "changes"), countTopics(len(plan.Changes()), ""))
}

// planJSON is one line of "topics plan --json" and "topics apply --json".
type planJSON struct {
	Topic             string   `json:"topic"`
	Kind              string   `json:"kind"`
	MainTopic         string   `json:"main_topic"`
	Tier              string   `json:"tier,omitempty"`
	Exists            bool     `json:"exists"`
	Partitions        int32    `json:"partitions"`
	WantPartitions    int32    `json:"want_partitions"`
	ReplicationFactor int16    `json:"replication_factor"`
	RetentionMs       *int64   `json:"retention_ms"` // null: the topic does not exist; -1: unlimited
	WantRetentionMs   int64    `json:"want_retention_ms"`
	MaxMessageBytes   *int32   `json:"max_message_bytes"` // null: the topic does not exist
	WantMaxMessage    int32    `json:"want_max_message_bytes"`
	Actions           []string `json:"actions"` // empty: up to date
	Applied           []string `json:"applied,omitempty"`
}

func topicJSON(s topics.TopicState, applied []topics.Action) planJSON {
	j := planJSON{
		Topic: s.Topic, Kind: string(s.Kind), MainTopic: s.MainTopic, Tier: s.Tier, Exists: s.Exists,
		Partitions: s.Partitions, WantPartitions: s.WantPartitions, ReplicationFactor: s.WantReplication,
		WantRetentionMs: s.WantRetention.Milliseconds(), WantMaxMessage: s.WantMaxMessageBytes, Actions: []string{},
	}
	if s.Exists {
		n := s.MaxMessageBytes
		j.MaxMessageBytes = &n
		ms := s.Retention.Milliseconds()
		if s.Retention == topics.Unlimited {
			ms = -1
		}
		j.RetentionMs = &ms
	}
	for _, a := range s.Actions {
		j.Actions = append(j.Actions, string(a))
	}
	for _, a := range applied {
		j.Applied = append(j.Applied, string(a))
	}
	return j
}

// writePlanTable writes the plan as aligned columns. A cell shows the value
// the topic has, or "have -> want" where apply would change it.
func writePlanTable(w io.Writer, plan *topics.TopicPlan) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TOPIC\tKIND\tMAIN\tPARTITIONS\tRETENTION\tMAX.MESSAGE.BYTES\tACTION")
	for _, s := range plan.Topics {
		parts := strconv.Itoa(int(s.Partitions))
		ret := topics.FormatRetention(s.Retention)
		maxBytes := strconv.Itoa(int(s.MaxMessageBytes))
		switch {
		case !s.Exists:
			parts = "- -> " + strconv.Itoa(int(s.WantPartitions))
			ret = "- -> " + topics.FormatRetention(s.WantRetention)
			maxBytes = "- -> " + strconv.Itoa(int(s.WantMaxMessageBytes))
		default:
			if s.Partitions < s.WantPartitions {
				parts += " -> " + strconv.Itoa(int(s.WantPartitions))
			}
			if s.Retention != topics.Unlimited && s.Retention < s.WantRetention {
				ret += " -> " + topics.FormatRetention(s.WantRetention)
			}
			if s.MaxMessageBytes < s.WantMaxMessageBytes {
				maxBytes += " -> " + strconv.Itoa(int(s.WantMaxMessageBytes))
			}
		}
		action := "ok"
		if !s.OK() {
			as := make([]string, len(s.Actions))
			for i, a := range s.Actions {
				as[i] = string(a)
			}
			action = strings.Join(as, ",")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.Topic, s.Kind, s.MainTopic, parts, ret, maxBytes, action)
	}
	tw.Flush()
}

func summarizeActions(changes []topics.TopicState) string {
	counts := map[topics.Action]int{}
	for _, s := range changes {
		for _, a := range s.Actions {
			counts[a]++
		}
	}
	var parts []string
	for _, a := range []topics.Action{topics.ActionCreate, topics.ActionRaiseRetention, topics.ActionRaiseMaxMessageBytes, topics.ActionAddPartitions} {
		if n := counts[a]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, a))
		}
	}
	return strings.Join(parts, ", ")
}

// countTopics writes "1 topic" or "4 topics", followed by what when given.
func countTopics(n int, what string) string {
	s := fmt.Sprintf("%d %s", n, plural(n, "topic", "topics"))
	if what != "" {
		s += " " + what
	}
	return s
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
