package main

import (
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/kretry/kretry/dlq"
	"github.com/kretry/kretry/internal/safetext"
)

// replayFlags are replay's own flags.
type replayFlags struct {
	allGroups   bool
	exactlyOnce bool // the config's exactly_once
	to          string
	dryRun      bool
	rate        float64
	maxReplays  int
	force       bool
	group       string
	fromStart   bool
	mainTopics  []string
}

func newDLQReplayCommand(a *app) *cobra.Command {
	var d dlqFlags
	var rf replayFlags
	cmd := &cobra.Command{
		Use:   "replay",
		Short: "Re-produce DLQ records to their original topic, resumably",
		Long: `replay re-produces the selected records of the DLQ to the topic they were first
delivered on (or to --to TOPIC): key, value and user headers unchanged, the
original partition when the topic has it, a new timestamp. A record replayed to
its original topic goes back to the group that failed it: it carries that
group's kretry-group, so the other kretry groups of the topic commit past it,
its first delivery's kretry-original-* (kept across replays), and
kretry-replays, one more than before; the group sees it as a new first
delivery, with its whole retry ladder ahead of it. Replayed with --to to
another topic, it carries kretry-replays only. Up to 1,000 records are in
flight at once, each acknowledged by all in-sync replicas; every target
partition gets its records in the order they were read. The DLQ is never
changed.

Only the main topics the config declares, and those --main-topics names, are
targets: a record whose kretry-original-topic names another topic is skipped
and listed with its partition/offset, and the run goes on (--to replays the
selection to one topic of your choice). Without a config file, --to or
--main-topics is required.

A dead letter written by Spring Kafka goes back to its kafka_dlt-original-topic
(a main topic as above) at its original partition, with its key, value and
headers byte for byte but Spring's dead-letter and retry headers
(kafka_dlt-*, kafka_original-*, kafka_exception-*, retry_topic-*): Spring's
listener handles it as a first delivery. Of kretry's headers it carries only
kretry-replays, which Spring copies to the next dead letter, so --max-replays
counts its replays too. Before producing
anything, replay reads the selection once and stops with an error if a target
topic does not exist. Records without kretry headers (reason unknown) or with
an unreadable original have no original topic: they are replayed only with
--to, and skipped otherwise. A record already replayed --max-replays times is
skipped unless --force. A too-large record (its value was too large to forward
with kretry's headers) is replayed with the value read from the main topic at
its original partition/offset, while retention keeps it there; when it is gone,
the record is skipped and listed.

Groups. By default replay selects only the records failed by the config's
group (their kretry-group); --failed-group G selects another group's,
--all-groups every record.

Progress. Each selection (the filters, and the failed group) keeps its progress
in a consumer group of its own on the DLQ: <dlq>-replay for every record,
<dlq>-replay-<digest of the selection> otherwise (--group changes the
<dlq>-replay part); the summary names it. It is committed every second, when a
partition is done and when the replay stops, never past a record that is not
acknowledged (after a crash, the last second's records go again: nothing is
lost). A replay starts after its selection's progress, so:
  - running the same command again replays only records dead-lettered since;
  - an interrupted replay (Ctrl-C stops producing, waits for the records in
    flight and commits them; or --limit) continues where it stopped when run
    again;
  - records the filters do not select, and skipped records, are passed over with
    the progress: the same selection will not look at them again; another
    selection starts from the oldest record;
  - --from-start drops this selection's progress (others keep theirs) and starts
    it over from the oldest record (records it already replayed go again).
--partition and --limit are not part of the selection: progress is per
partition. --dry-run lists what would be replayed and produces and commits
nothing.

With exactly_once: true in the config, the replayed records and the progress
past them commit together in Kafka transactions (about one a second): a
read_committed consumer sees a replayed record only once its progress is
committed, so a crash or a refused produce repeats nothing it saw.

` + dlqFiltersHelp,
		Example: `  kretry dlq replay -c kretry.yaml --reason exhausted --since 6h --dry-run
  kretry dlq replay -c kretry.yaml --reason exhausted --since 6h --rate 100
  kretry dlq replay -c kretry.yaml --all-groups --reason unknown --to orders
  kretry dlq replay --brokers 127.0.0.1:9092 --topic payments.DLT --main-topics payments`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, err := d.filter(cmd)
			if err != nil {
				return err
			}
			switch {
			case rf.maxReplays < 1:
				return usagef("--max-replays %d: want 1 or more (--force replays records over it)", rf.maxReplays)
			case math.IsNaN(rf.rate) || math.IsInf(rf.rate, 0) || rf.rate < 0 || rf.rate > 0 && rf.rate < dlq.MinReplayRate:
				return usagef("--rate %g: want records per second, finite and at least 0.0003 (one an hour), or 0 for no cap", rf.rate)
			case rf.allGroups && cmd.Flags().Changed("failed-group"):
				return usagef("--all-groups and --failed-group both select groups: give one")
			}
			r, cfg, err := a.openDLQ(cmd, &d)
			if err != nil {
				return err
			}
			defer r.Close()
			if rf.to == r.Topic() {
				return usagef("--to %s is the DLQ itself: replaying into it would loop", rf.to)
			}
			var mains []string
			if cfg != nil && cfg.ExactlyOnce {
				rf.exactlyOnce = true
			}
			switch {
			case cfg != nil:
				for _, t := range cfg.Topics {
					mains = append(mains, t.Name)
				}
				if f.FailedGroup == "" && !rf.allGroups {
					f.FailedGroup = cfg.Group
				}
			case rf.to == "" && len(rf.mainTopics) == 0:
				return usagef("replay without a config file needs --to TOPIC or --main-topics T,...: the config (-c FILE) names the main topics records may go back to")
			}
			mains = append(mains, rf.mainTopics...)
			return a.replay(cmd, r, f, rf, mains)
		},
	}
	d.addTopic(cmd.Flags())
	d.addFilters(cmd.Flags())
	fl := cmd.Flags()
	fl.StringVar(&rf.to, "to", "", "replay to this topic instead of each record's original topic")
	fl.BoolVar(&rf.dryRun, "dry-run", false, "list what would be replayed; produce and commit nothing")
	fl.Float64Var(&rf.rate, "rate", 0, "at most this many records per second, at least one an hour (0: no cap)")
	fl.IntVar(&rf.maxReplays, "max-replays", dlq.DefaultMaxReplays, "skip records already replayed this many times")
	fl.BoolVar(&rf.force, "force", false, "replay records over --max-replays too")
	fl.BoolVar(&rf.allGroups, "all-groups", false, "replay the records of every failed group, not only the config's group's")
	fl.StringVar(&rf.group, "group", "", "the consumer group that keeps the progress of replaying every record; a selection's is this + a digest (default <dlq>-replay)")
	fl.StringSliceVar(&rf.mainTopics, "main-topics", nil, "more topics records may go back to by their original topic, besides the config's (a Spring service's topic)")
	fl.BoolVar(&rf.fromStart, "from-start", false, "delete this selection's progress on the DLQ and start from the oldest record")
	return cmd
}

// replayLine is one --json line of a replay: a record's outcome.
type replayLine struct {
	Partition       int32  `json:"partition"`
	Offset          int64  `json:"offset"`
	Key             string `json:"key"`
	Reason          string `json:"reason"`
	Outcome         string `json:"outcome"`
	Target          string `json:"target,omitempty"`
	TargetPartition *int32 `json:"target_partition,omitempty"`
	TargetOffset    *int64 `json:"target_offset,omitempty"`
	Replays         int    `json:"replays"`
	Detail          string `json:"detail,omitempty"`
}

func (a *app) replay(cmd *cobra.Command, r *dlq.Reader, f dlq.Filter, rf replayFlags, mains []string) error {
	opts := []dlq.ReplayOpt{
		dlq.WithMainTopics(mains...), dlq.WithExactlyOnce(rf.exactlyOnce),
		dlq.WithTarget(rf.to), dlq.WithDryRun(rf.dryRun), dlq.WithRate(rf.rate),
		dlq.WithMaxReplays(rf.maxReplays), dlq.WithForce(rf.force), dlq.WithFromStart(rf.fromStart),
	}
	if rf.group != "" {
		opts = append(opts, dlq.WithGroup(rf.group))
	}
	var bar *progressbar.ProgressBar
	if !rf.dryRun && isTerminal(a.stderr) {
		opts = append(opts, dlq.WithOnStart(func(p dlq.ReplayPlan) {
			bar = progressbar.NewOptions(p.Records,
				progressbar.OptionSetWriter(a.stderr),
				progressbar.OptionSetDescription("replaying "+r.Topic()),
				progressbar.OptionShowCount(),
				progressbar.OptionShowIts(),
				progressbar.OptionSetItsString("records"),
				progressbar.OptionThrottle(100*time.Millisecond),
				progressbar.OptionClearOnFinish(),
			)
		}))
	}
	enc := newJSONEncoder(a.stdout)
	opts = append(opts, dlq.WithOnRecord(func(e dlq.ReplayEvent) {
		if bar != nil && e.Outcome == dlq.Replayed {
			_ = bar.Add(1)
		}
		n, _ := e.Record.Replays()
		switch {
		case a.json:
			l := replayLine{Partition: e.Record.Partition, Offset: e.Record.Offset, Key: safetext.Key(e.Record.Key),
				Reason: string(e.Record.Reason), Outcome: e.Outcome.String(), Target: e.Target, Replays: n, Detail: e.Detail}
			if e.Outcome == dlq.Replayed {
				l.TargetPartition, l.TargetOffset = &e.Partition, &e.Offset
			}
			_ = enc.Encode(l)
		case rf.dryRun && e.Outcome == dlq.WouldReplay:
			fmt.Fprintf(a.stdout, "would replay %d/%d  key %s  %s  → %s\n", e.Record.Partition, e.Record.Offset,
				safetext.Key(e.Record.Key), safetext.Text(string(e.Record.Reason)), safetext.Text(e.Target))
		}
	}))

	sum, err := r.Replay(cmd.Context(), f, opts...)
	if bar != nil {
		_ = bar.Finish()
	}
	if sum != nil && (err == nil || sum.Interrupted || sum.Replayed > 0) {
		if a.json {
			_ = enc.Encode(summaryJSON(sum, f, rf))
		} else {
			writeSummary(a.stdout, sum, f, rf)
		}
	}
	switch {
	case sum != nil && sum.Interrupted:
		return fmt.Errorf("replay interrupted after %s, each acknowledged and committed: run the same command to continue", records(sum.Replayed))
	case err != nil:
		return err
	}
	return nil
}

func writeSummary(w io.Writer, s *dlq.ReplaySummary, f dlq.Filter, rf replayFlags) {
	verb := "replayed"
	if s.DryRun {
		verb = "dry run: would replay"
	}
	fmt.Fprintf(w, "%s %s of %s (selection: %s; progress group %s)\n", verb, records(s.Replayed), s.Topic, s.Selection, s.Group)
	if s.TransactionalID != "" {
		fmt.Fprintf(w, "  in transactions with their progress (exactly_once; transactional id %s)\n", s.TransactionalID)
	}
	for _, t := range slices.Sorted(maps.Keys(s.ByTarget)) {
		fmt.Fprintf(w, "  to %s: %d\n", t, s.ByTarget[t])
	}
	if n := len(s.Skips); n > 0 {
		fmt.Fprintf(w, "skipped %s:\n", records(n))
		if k := s.Skipped(dlq.SkippedMaxReplays); k > 0 {
			fmt.Fprintf(w, "  %d replayed %d times or more already (--max-replays %d; --force replays them): %s\n",
				k, rf.maxReplays, rf.maxReplays, skipList(s.Skips, dlq.SkippedMaxReplays))
		}
		if k := s.Skipped(dlq.SkippedNoTarget); k > 0 {
			fmt.Fprintf(w, "  %d without an original topic (no kretry headers, or unreadable ones; --to TOPIC replays them): %s\n",
				k, skipList(s.Skips, dlq.SkippedNoTarget))
		}
		if k := s.Skipped(dlq.SkippedNotMainTopic); k > 0 {
			fmt.Fprintf(w, "  %d naming an original topic the config does not declare (--main-topics T or --to TOPIC replays them): %s\n",
				k, skipList(s.Skips, dlq.SkippedNotMainTopic))
		}
		if k := s.Skipped(dlq.SkippedValueGone); k > 0 {
			fmt.Fprintf(w, "  %d too-large records whose value is no longer in the main topic: %s\n",
				k, skipList(s.Skips, dlq.SkippedValueGone))
		}
	}
	if s.PassedOver > 0 {
		hint := ""
		if f.FailedGroup != "" {
			hint = fmt.Sprintf(" (of other groups than %s, too: --failed-group G or --all-groups selects them)", safetext.Text(f.FailedGroup))
		}
		fmt.Fprintf(w, "passed over %s the filters do not select%s\n", records(s.PassedOver), hint)
	}
	if len(s.StartedOver) > 0 {
		fmt.Fprintf(w, "started over on partitions %v: progress group %s held the progress of another selection (kept by an earlier kretry)\n", s.StartedOver, s.Group)
	}
	if len(s.Resumed) > 0 {
		var ps []string
		for _, p := range slices.Sorted(maps.Keys(s.Resumed)) {
			ps = append(ps, fmt.Sprintf("%d at offset %d", p, s.Resumed[p]))
		}
		fmt.Fprintf(w, "resumed after earlier replays: partition %s\n", strings.Join(ps, ", partition "))
	}
	switch {
	case s.DryRun:
		fmt.Fprintln(w, "nothing was produced or committed")
	case s.LimitReached:
		fmt.Fprintf(w, "stopped at --limit %d: run the same command to continue\n", f.Limit)
	case s.Interrupted:
		fmt.Fprintln(w, "interrupted: run the same command to continue")
	}
}

func skipList(skips []dlq.Skip, why dlq.Outcome) string {
	var out []string
	for _, s := range skips {
		if s.Why != why {
			continue
		}
		if len(out) == 10 {
			out = append(out, "…")
			break
		}
		if s.Detail != "" {
			out = append(out, fmt.Sprintf("%d/%d (%s)", s.Partition, s.Offset, safetext.Text(s.Detail)))
			continue
		}
		out = append(out, fmt.Sprintf("%d/%d", s.Partition, s.Offset))
	}
	return strings.Join(out, " ")
}

type summaryLine struct {
	Summary         bool            `json:"summary"`
	TransactionalID string          `json:"transactional_id,omitempty"`
	Topic           string          `json:"topic"`
	Group           string          `json:"group"`
	Selection       string          `json:"selection"`
	DryRun          bool            `json:"dry_run"`
	Replayed        int             `json:"replayed"`
	ByTarget        map[string]int  `json:"by_target"`
	SkippedMax      int             `json:"skipped_max_replays"`
	SkippedNoTopic  int             `json:"skipped_no_original_topic"`
	SkippedNotMain  int             `json:"skipped_not_main_topic"`
	SkippedGone     int             `json:"skipped_value_gone"`
	StartedOver     []int32         `json:"started_over,omitempty"`
	PassedOver      int             `json:"passed_over"`
	Resumed         map[int32]int64 `json:"resumed_from"`
	Progress        map[int32]int64 `json:"progress"`
	LimitReached    bool            `json:"limit_reached"`
	Interrupted     bool            `json:"interrupted"`
}

func summaryJSON(s *dlq.ReplaySummary, _ dlq.Filter, _ replayFlags) summaryLine {
	return summaryLine{
		Summary: true, TransactionalID: s.TransactionalID, Topic: s.Topic, Group: s.Group, Selection: s.Selection, DryRun: s.DryRun,
		Replayed: s.Replayed, ByTarget: s.ByTarget,
		SkippedMax: s.Skipped(dlq.SkippedMaxReplays), SkippedNoTopic: s.Skipped(dlq.SkippedNoTarget),
		SkippedNotMain: s.Skipped(dlq.SkippedNotMainTopic), SkippedGone: s.Skipped(dlq.SkippedValueGone), StartedOver: s.StartedOver,
		PassedOver: s.PassedOver, Resumed: s.Resumed, Progress: s.Progress,
		LimitReached: s.LimitReached, Interrupted: s.Interrupted,
	}
}

func records(n int) string {
	if n == 1 {
		return "1 record"
	}
	return fmt.Sprintf("%d records", n)
}
