package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
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
	var exitCode, raise bool
	planCmd := &cobra.Command{
		Use:   "plan",
		Short: "Compare the retry and DLQ topics with the cluster; change nothing",
		Long: `plan lists every tier and DLQ topic of the config with what it has and what
kretry wants: the main topic's partition count, a retention of at least
max(2 × delay, 1d) for a tier and 14d for a DLQ (or the configured overrides),
and a max.message.bytes of at least the main topic's plus room for kretry's
headers, and the configs of topic_configs, tier_configs and dlq_configs. A
topic that declares partitions is planned too, first: created when missing;
its partitions raised only with --raise-partitions (else the raise is held).
The action column says what "kretry topics apply" would do.

With --exit-code the exit status says whether anything is pending, for a CI
gate: 3 when apply would change something or a raise is held, 0 when nothing
(1 and 2 as ever).`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			plan, err := a.plan(cmd.Context(), raise)
			if err != nil {
				return err
			}
			if err := a.printPlan(plan); err != nil {
				return err
			}
			if exitCode && len(plan.Pending()) > 0 {
				return errChangesPending
			}
			return nil
		},
	}
	planCmd.Flags().BoolVar(&exitCode, "exit-code", false, "exit 3 when changes are pending, 0 when none")
	planCmd.Flags().BoolVar(&raise, "raise-partitions", false, "plan to raise a main topic's partitions to its configured partitions")
	applyCmd := &cobra.Command{
		Use:   "apply",
		Short: "Create missing retry and DLQ topics, raise short retention and max.message.bytes, add missing partitions",
		Long: `apply makes the changes that "kretry topics plan" shows: it creates a missing
topic with the main topic's partition count and replication factor, the
wanted retention and max.message.bytes, raises a retention or a
max.message.bytes that is too small, and adds partitions up to the main
topic's count (safe: kretry routes a record back by the partition in its
headers, not by where it sits), and sets configs of topic_configs,
tier_configs and dlq_configs that differ. It creates a main topic that
declares partitions (replication_factor, else the brokers' default) and
raises its partitions only with --raise-partitions (raising moves keys to
other partitions). It never deletes a topic, never removes partitions,
never changes a replication factor and never shortens a retention or a
max.message.bytes. Applying twice changes nothing the second time.`,
		RunE: func(cmd *cobra.Command, _ []string) error { return a.apply(cmd.Context(), raise) },
	}
	applyCmd.Flags().BoolVar(&raise, "raise-partitions", false, "raise a main topic's partitions to its configured partitions")
	topics.AddCommand(planCmd, applyCmd)
	return topics
}

// planWith loads the config, connects and plans; the caller closes adm.
func (a *app) planWith(ctx context.Context, raise bool) (*config.Config, *kadm.Client, *topics.TopicPlan, error) {
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
	plan, err := topics.Plan(ctx, adm, provs, topics.WithRaisePartitions(raise))
	if err != nil {
		adm.Close()
		var mte *topics.MissingTopicError
		var pe *topics.PartitionsError
		if errors.As(err, &mte) || errors.As(err, &pe) {
			return nil, nil, nil, err
		}
		return nil, nil, nil, a.kafkaError(ctx, cfg, err)
	}
	return cfg, adm, plan, nil
}

func (a *app) plan(ctx context.Context, raise bool) (*topics.TopicPlan, error) {
	_, adm, plan, err := a.planWith(ctx, raise)
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
	a.printWarnings(plan)
	changes := plan.Changes()
	held := len(plan.Pending()) - len(changes)
	if len(changes) == 0 && held == 0 {
		fmt.Fprintf(a.stdout, "\n%s: nothing to apply\n", countTopics(len(plan.Topics), "up to date"))
		return nil
	}
	if len(changes) > 0 {
		fmt.Fprintf(a.stdout, "\n%s to change (%s): run %s\n", countTopics(len(changes), ""), summarizeActions(changes), a.hint("topics apply"))
	}
	if held > 0 {
		fmt.Fprintf(a.stdout, "\n%d main %s with fewer partitions than the config: run %s to raise them\n",
			held, plural(held, "topic", "topics"), a.hint("topics apply --raise-partitions"))
	}
	return nil
}

// printWarnings writes what the plan leaves as it is, one line per topic.
func (a *app) printWarnings(plan *topics.TopicPlan) {
	for _, s := range plan.Topics {
		for _, w := range s.Warnings {
			fmt.Fprintf(a.stdout, "warning: %s %s: %s\n", s.Kind, s.Topic, w)
		}
	}
}

func (a *app) apply(ctx context.Context, raise bool) error {
	cfg, adm, plan, err := a.planWith(ctx, raise)
	if err != nil {
		return err
	}
	defer adm.Close()
	done, err := topics.Apply(ctx, adm, plan)
	a.printApplied(plan, done, err != nil)
	if err != nil {
		return fmt.Errorf("%w: fix that and run %s again (what was done stays done)", a.kafkaError(ctx, cfg, err), a.hint("topics apply"))
	}
	return nil
}

// printApplied prints what was done; failed says Apply stopped at an error,
// which the caller prints: the summary then counts what was done before it.
func (a *app) printApplied(plan *topics.TopicPlan, done []topics.Applied, failed bool) {
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
			fmt.Fprintf(a.stdout, "created   %s: %s\n", d.Topic, d.CreateSummary())
		case d.Action == topics.ActionSetConfigs:
			var set []string
			for _, k := range d.ConfigDrift() {
				set = append(set, fmt.Sprintf("%s %s -> %s", k, haveConfig(d.TopicState, k), d.WantConfigs[k]))
			}
			fmt.Fprintf(a.stdout, "set       %s: %s\n", d.Topic, strings.Join(set, ", "))
		case d.Action == topics.ActionRaiseRetention:
			fmt.Fprintf(a.stdout, "raised    %s: retention %s -> %s\n",
				d.Topic, topics.FormatRetention(d.Retention), topics.FormatRetention(d.WantRetention))
		case d.Action == topics.ActionRaiseMaxMessageBytes:
			fmt.Fprintf(a.stdout, "raised    %s: max.message.bytes %d -> %d\n", d.Topic, d.MaxMessageBytes, d.WantMaxMessageBytes)
		case d.Action == topics.ActionAddPartitions:
			fmt.Fprintf(a.stdout, "added     %s: partitions %d -> %d\n", d.Topic, d.Partitions, d.WantPartitions)
		}
	}
	a.printWarnings(plan)
	if failed {
		fmt.Fprintf(a.stdout, "applied %d %s before an error\n", len(done), plural(len(done), "change", "changes"))
		return
	}
	if len(done) == 0 {
		fmt.Fprintf(a.stdout, "nothing to change: %s\n", countTopics(len(plan.Topics)-len(plan.Pending()), "up to date"))
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
	// HaveReplication is the topic's replication factor (0: it does not
	// exist); ReplicationFactor is the one wanted (-1: the brokers' default).
	HaveReplication int16             `json:"have_replication_factor"`
	Configs         map[string]string `json:"configs,omitempty"`      // what the topic has of WantConfigs
	WantConfigs     map[string]string `json:"want_configs,omitempty"` // topic_configs, tier_configs, dlq_configs
	Held            []string          `json:"held,omitempty"`         // applied only with --raise-partitions
	Warnings        []string          `json:"warnings,omitempty"`
}

func topicJSON(s topics.TopicState, applied []topics.Action) planJSON {
	j := planJSON{
		Topic: s.Topic, Kind: string(s.Kind), MainTopic: s.MainTopic, Tier: s.Tier, Exists: s.Exists,
		Partitions: s.Partitions, WantPartitions: s.WantPartitions, ReplicationFactor: s.WantReplication,
		WantRetentionMs: s.WantRetention.Milliseconds(), WantMaxMessage: s.WantMaxMessageBytes, Actions: []string{},
		HaveReplication: s.ReplicationFactor, Configs: s.Configs, WantConfigs: s.WantConfigs, Warnings: s.Warnings,
	}
	for _, a := range s.Held {
		j.Held = append(j.Held, string(a))
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
	// The CONFIGS column shows only when a topic wants extra configs.
	withConfigs := slices.ContainsFunc(plan.Topics, func(s topics.TopicState) bool { return len(s.WantConfigs) > 0 })
	row := func(cells ...string) {
		if !withConfigs {
			cells = slices.Delete(cells, 6, 7)
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	row("TOPIC", "KIND", "MAIN", "PARTITIONS", "RETENTION", "MAX.MESSAGE.BYTES", "CONFIGS", "ACTION")
	for _, s := range plan.Topics {
		if s.Kind == topics.KindMain {
			parts := strconv.Itoa(int(s.Partitions))
			switch {
			case !s.Exists:
				parts = "- -> " + strconv.Itoa(int(s.WantPartitions))
			case s.Partitions < s.WantPartitions:
				parts += " -> " + strconv.Itoa(int(s.WantPartitions))
			}
			action := "ok"
			switch {
			case !s.OK():
				action = joinActions(s.Actions)
			case len(s.Held) > 0:
				action = "held: --raise-partitions"
			}
			row(s.Topic, string(s.Kind), s.MainTopic, parts, "-", "-", "-", action)
			continue
		}
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
			action = joinActions(s.Actions)
		}
		row(s.Topic, string(s.Kind), s.MainTopic, parts, ret, maxBytes, configsCell(s), action)
	}
	tw.Flush()
}

func joinActions(actions []topics.Action) string {
	as := make([]string, len(actions))
	for i, a := range actions {
		as[i] = string(a)
	}
	return strings.Join(as, ",")
}

// configsCell is the CONFIGS cell of a tier or DLQ row: "-" when no extra
// configs are wanted, "ok" when the topic has them, else each that differs
// as "name have -> want".
func configsCell(s topics.TopicState) string {
	if len(s.WantConfigs) == 0 {
		return "-"
	}
	drift := s.ConfigDrift()
	if s.Exists && len(drift) == 0 {
		return "ok"
	}
	parts := make([]string, len(drift))
	for i, k := range drift {
		parts[i] = k + " " + haveConfig(s, k) + " -> " + s.WantConfigs[k]
	}
	return strings.Join(parts, ",")
}

// haveConfig is a topic's value of an extra config, "-" when it has none.
func haveConfig(s topics.TopicState, key string) string {
	if v, ok := s.Configs[key]; ok && s.Exists {
		return v
	}
	return "-"
}

func summarizeActions(changes []topics.TopicState) string {
	counts := map[topics.Action]int{}
	for _, s := range changes {
		for _, a := range s.Actions {
			counts[a]++
		}
	}
	var parts []string
	for _, a := range []topics.Action{topics.ActionCreate, topics.ActionRaiseRetention, topics.ActionRaiseMaxMessageBytes, topics.ActionAddPartitions, topics.ActionSetConfigs} {
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
