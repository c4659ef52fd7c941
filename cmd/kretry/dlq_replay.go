package main

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/kretry/kretry/dlq"
)

// replayFlags are replay's own flags.
type replayFlags struct {
	to         string
	dryRun     bool
	rate       float64
	maxReplays int
	force      bool
	group      string
	fromStart  bool
}

func newDLQReplayCommand(a *app) *cobra.Command {
	var d dlqFlags
	var rf replayFlags
	cmd := &cobra.Command{
		Use:   "replay",
		Short: "Re-produce DLQ records to their original topic, resumably",
		Long: `replay re-produces the selected records of the DLQ to the topic they were first
delivered on (or to --to TOPIC): key, value and user headers unchanged, the
original partition when the topic has it, a new timestamp, and of the kretry
headers only kretry-replays, one more than before. The consumer sees a replayed
record as a new first delivery, with its whole retry ladder ahead of it. Up to
1,000 records are in flight at once, each acknowledged by all in-sync replicas;
every target partition gets its records in the order they were read. The DLQ is
never changed.

Before producing anything, replay reads the selection once and stops with an
error if a target topic does not exist. Records without kretry headers (reason
unknown) or with unreadable ones have no original topic: they are replayed only
with --to, and skipped otherwise. A record already replayed --max-replays times
is skipped unless --force.

Progress. The offsets of the replay group (--group, default <dlq>-replay) on the
DLQ say how far replays got; it is committed every second, when a partition is
done and when the replay stops, never past a record that is not acknowledged
(after a crash, the last second's records go again: nothing is lost). A replay
starts after that progress, so:
  - running the same command again replays only records dead-lettered since;
  - an interrupted replay (Ctrl-C stops producing, waits for the records in
    flight and commits them; or --limit) continues where it stopped when run
    again;
  - records the filters do not select, and skipped records, are passed over with
    the progress: the same group will not look at them again. A replay with
    other filters on partitions that hold progress is refused; use --from-start
    to start that selection over from the oldest record (records it selects that
    an earlier replay already replayed go again), or another --group to keep its
    progress apart. --partition and --limit are not part of the selection: progress
    is per partition.
--dry-run lists what would be replayed and produces and commits nothing.

` + dlqFiltersHelp,
		Example: `  kretry dlq replay -c kretry.yaml --reason exhausted --since 6h --dry-run
  kretry dlq replay -c kretry.yaml --reason exhausted --since 6h --rate 100
  kretry dlq replay -c kretry.yaml --reason unknown --to orders`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, err := d.filter()
			if err != nil {
				return err
			}
			switch {
			case rf.maxReplays < 1:
				return usagef("--max-replays %d: want 1 or more (--force replays records over it)", rf.maxReplays)
			case rf.rate < 0:
				return usagef("--rate %g: want records per second, more than 0 (0: no cap)", rf.rate)
			case cmd.Flags().Changed("group") && strings.TrimSpace(rf.group) == "":
				return usagef("--group is empty: name a consumer group, or leave the default <dlq>-replay")
			case cmd.Flags().Changed("to") && strings.TrimSpace(rf.to) == "":
				return usagef("--to is empty: name a topic, or leave it out to replay to each record's original topic")
			}
			r, err := a.openDLQ(cmd, &d)
			if err != nil {
				return err
			}
			defer r.Close()
			if rf.to == r.Topic() {
				return usagef("--to %s is the DLQ itself: replaying into it would loop", rf.to)
			}
			return a.replay(cmd, r, f, rf)
		},
	}
	d.addTopic(cmd.Flags())
	d.addFilters(cmd.Flags())
	fl := cmd.Flags()
	fl.StringVar(&rf.to, "to", "", "replay to this topic instead of each record's original topic")
	fl.BoolVar(&rf.dryRun, "dry-run", false, "list what would be replayed; produce and commit nothing")
	fl.Float64Var(&rf.rate, "rate", 0, "at most this many records per second (0: no cap)")
	fl.IntVar(&rf.maxReplays, "max-replays", dlq.DefaultMaxReplays, "skip records already replayed this many times")
	fl.BoolVar(&rf.force, "force", false, "replay records over --max-replays too")
	fl.StringVar(&rf.group, "group", "", "the consumer group that keeps the replay's progress (default <dlq>-replay)")
	fl.BoolVar(&rf.fromStart, "from-start", false, "delete the group's progress on the DLQ and start from the oldest record")
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
}

func (a *app) replay(cmd *cobra.Command, r *dlq.Reader, f dlq.Filter, rf replayFlags) error {
	opts := []dlq.ReplayOpt{
		dlq.ReplayTo(rf.to), dlq.ReplayDryRun(rf.dryRun), dlq.ReplayRate(rf.rate),
		dlq.ReplayMaxReplays(rf.maxReplays), dlq.ReplayForce(rf.force), dlq.ReplayFromStart(rf.fromStart),
	}
	if rf.group != "" {
		opts = append(opts, dlq.ReplayGroup(rf.group))
	}
	var bar *progressbar.ProgressBar
	if !rf.dryRun && isTerminal(a.stderr) {
		opts = append(opts, dlq.ReplayOnStart(func(p dlq.ReplayPlan) {
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
	opts = append(opts, dlq.ReplayOnRecord(func(e dlq.ReplayEvent) {
		if bar != nil && e.Outcome == dlq.Replayed {
			_ = bar.Add(1)
		}
		n, _ := e.Record.Replays()
		switch {
		case a.json:
			l := replayLine{Partition: e.Record.Partition, Offset: e.Record.Offset, Key: dlq.KeyText(e.Record.Key),
				Reason: e.Record.Reason, Outcome: e.Outcome.String(), Target: e.Target, Replays: n}
			if e.Outcome == dlq.Replayed {
				l.TargetPartition, l.TargetOffset = &e.Partition, &e.Offset
			}
			_ = enc.Encode(l)
		case rf.dryRun && e.Outcome == dlq.WouldReplay:
			fmt.Fprintf(a.stdout, "would replay %d/%d  key %s  %s  → %s\n", e.Record.Partition, e.Record.Offset,
				dlq.KeyText(e.Record.Key), e.Record.Reason, e.Target)
		}
	}))

	sum, err := r.Replay(cmd.Context(), f, opts...)
	if bar != nil {
		_ = bar.Finish()
	}
	var pe *dlq.ProgressError
	if errors.As(err, &pe) {
		return fmt.Errorf("replay group %s holds progress on %s partition %d (offset %d) of another selection (%s; this one is %s): "+
			"run with --from-start to drop that progress and start this selection from the oldest record, or with --group NAME to keep this selection's progress apart",
			pe.Group, pe.Topic, pe.Partition, pe.Offset, pe.Committed, pe.Selection)
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
	}
	if s.PassedOver > 0 {
		fmt.Fprintf(w, "passed over %s the filters do not select\n", records(s.PassedOver))
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
		out = append(out, fmt.Sprintf("%d/%d", s.Partition, s.Offset))
	}
	return strings.Join(out, " ")
}

type summaryLine struct {
	Summary        bool            `json:"summary"`
	Topic          string          `json:"topic"`
	Group          string          `json:"group"`
	Selection      string          `json:"selection"`
	DryRun         bool            `json:"dry_run"`
	Replayed       int             `json:"replayed"`
	ByTarget       map[string]int  `json:"by_target"`
	SkippedMax     int             `json:"skipped_max_replays"`
	SkippedNoTopic int             `json:"skipped_no_original_topic"`
	PassedOver     int             `json:"passed_over"`
	Resumed        map[int32]int64 `json:"resumed_from"`
	Progress       map[int32]int64 `json:"progress"`
	LimitReached   bool            `json:"limit_reached"`
	Interrupted    bool            `json:"interrupted"`
}

func summaryJSON(s *dlq.ReplaySummary, _ dlq.Filter, _ replayFlags) summaryLine {
	return summaryLine{
		Summary: true, Topic: s.Topic, Group: s.Group, Selection: s.Selection, DryRun: s.DryRun,
		Replayed: s.Replayed, ByTarget: s.ByTarget,
		SkippedMax: s.Skipped(dlq.SkippedMaxReplays), SkippedNoTopic: s.Skipped(dlq.SkippedNoTarget),
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
