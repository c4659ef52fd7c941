package chaos

import (
	"fmt"
	"strings"
	"time"
)

// Markdown renders the results as RELIABILITY.md.
func Markdown(results []Result, machine, commit string, started time.Time, took time.Duration) string {
	// commit is what was built and run, from git describe --always --dirty.
	var b strings.Builder
	b.WriteString(`# Reliability: the fault suite

` + "`make chaos`" + ` runs real kretry processes (the chaosworker program of
internal/chaos/cmd/chaosworker, which runs consumer.New + Run with a handler
that fails chosen records the same way every run, and ` + "`kretry relay`" + `)
against real Apache Kafka brokers started by scripts/kafka/cluster.sh, kills
them, and reads back every topic read_committed. This file is written by the
last run; do not edit it by hand.

`)
	fmt.Fprintf(&b, "- Date: %s (took %s)\n", started.UTC().Format("2006-01-02 15:04 UTC"), took.Round(time.Second))
	fmt.Fprintf(&b, "- Machine: %s\n", machine)
	if commit != "" {
		fmt.Fprintf(&b, "- Commit: %s\n", commit)
	}
	b.WriteString(`- Load: 4 partitions per topic; a ladder of two tiers (1s, 2s) and a DLQ; of
  every 20 records 2 fail every attempt (DLQ, exhausted), 1 fails for good
  (DLQ, permanent), 4 fail once and 1 twice before they succeed.

| scenario | mode | produced | handled ok | dead-lettered | lost | duplicate handlings: re-delivered (bound) + other copies | duplicate ladder copies | duplicate Emit outputs | faults | recovery after a fault | longest handling gap | max re-feed lateness | never early |
|---|---|---|---|---|---|---|---|---|---|---|---|---|---|
`)
	for _, r := range results {
		if r.Unavailable != "" {
			fmt.Fprintf(&b, "| (%s) %s | %s | not available (below) | | | | | | | | | | | |\n", r.Scenario, r.Title, r.Mode)
			continue
		}
		fmt.Fprintf(&b, "| (%s) %s | %s | %d | %d | %d | %s | %d: %d (%d) + %d | %d | %d | %d | %s | %s | %s | %s |\n",
			r.Scenario, r.Title, r.Mode, r.Produced, r.HandledOK, r.DeadLettered, lostText(r),
			r.DupHandlings, r.Redelivered, r.DupBound, r.DupHandlings-r.Redelivered, r.DupLadder, r.DupOutputs, r.Faults, r.RecoveryText(), fmtDur(r.MaxGap), fmtDur(r.MaxLateness), yesNo(r.Early == 0, r.Early))
	}
	var notes []string
	unavailable := map[string]bool{}
	for _, r := range results {
		if r.Unavailable != "" && !unavailable[string(r.Mode)+r.Unavailable] {
			unavailable[string(r.Mode)+r.Unavailable] = true
			notes = append(notes, fmt.Sprintf("%s: not available: %s", r.Mode, r.Unavailable))
		}
	}
	for _, r := range results {
		for _, n := range r.Notes {
			notes = append(notes, fmt.Sprintf("(%s) %s: %s", r.Scenario, r.Mode, n))
		}
		if r.Misrouted > 0 {
			notes = append(notes, fmt.Sprintf("(%s) %s: %d records ended in the wrong place (handled ok although bound for the DLQ, or the reverse)", r.Scenario, r.Mode, r.Misrouted))
		}
		if len(r.Recoveries) > 1 {
			var xs []string
			for _, d := range r.Recoveries {
				xs = append(xs, fmtDur(d))
			}
			notes = append(notes, fmt.Sprintf("(%s) %s: recovery after each fault, in order: %s", r.Scenario, r.Mode, strings.Join(xs, ", ")))
		}
		if r.Faults > 0 {
			notes = append(notes, fmt.Sprintf("(%s) %s: longest handling gap of each partition: %s", r.Scenario, r.Mode, r.GapsText()))
		}
		if len(r.KillsOverBound) > 0 {
			notes = append(notes, fmt.Sprintf("(%s) %s: kills after which more of the killed worker's records were re-delivered than its bound (re-delivered/bound): %s",
				r.Scenario, r.Mode, strings.Join(r.KillsOverBound, ", ")))
		}
		if r.MaxRepeat > 2 {
			notes = append(notes, fmt.Sprintf("(%s) %s: one record was handled %d times at the same attempt", r.Scenario, r.Mode, r.MaxRepeat))
		}
		if r.DupLadder > 0 {
			notes = append(notes, fmt.Sprintf("(%s) %s: duplicate ladder copies: %d in the tiers, %d re-feeds, %d in the DLQ", r.Scenario, r.Mode, r.DupTier, r.DupRefeed, r.DupDLQ))
		}
		if r.MissingOutputs > 0 {
			notes = append(notes, fmt.Sprintf("(%s) %s: %d records handled ok have no Emit output", r.Scenario, r.Mode, r.MissingOutputs))
		}
		if r.Mode == ExactlyOnce && r.Unavailable == "" {
			notes = append(notes, fmt.Sprintf("(%s) %s: re-deliveries of a handling whose transaction had committed (its output visible): %d",
				r.Scenario, r.Mode, r.CommittedRedelivered))
		}
		if r.Mode == ExactlyOnce && r.Unavailable == "" && r.NotInTxn > 0 {
			notes = append(notes, fmt.Sprintf("(%s) %s: %d ladder records were written outside a transaction: %d in the tiers, %d re-feeds, %d in the DLQ",
				r.Scenario, r.Mode, r.NotInTxn, r.NotInTxnTier, r.NotInTxnRefeed, r.NotInTxnDLQ))
		}
	}
	if len(notes) > 0 {
		b.WriteString("\nNotes:\n\n")
		for _, n := range notes {
			b.WriteString("- " + n + "\n")
		}
	}
	b.WriteString(`
What the columns mean:

- produced: records the broker acknowledged (in (f), 30 of them with broken
  kretry headers). handled ok / dead-lettered: distinct records the handler
  returned nil for / found in the DLQ. lost: produced and neither, once every
  record was done or the wait for them (3 minutes after the last fault) ran
  out; in the latter case the column says "not done (stuck or lost)".
- duplicate handlings: handler calls of a record at an attempt it had already
  been handled at, split into re-deliveries (the same copy, partition and
  offset, handled again: its offset was not committed when a process died
  or lost the partition) and handlings of other copies (a forward or a
  re-feed written twice for the same attempt, counted in duplicate ladder
  copies, is handled once more at the next attempt, whoever does it and
  however long after the fault). The bound is the at-least-once goal of
  issue 13 and is about re-deliveries: for each fault, what the processes
  hit handled in the commit interval (1s) plus 2s of in-flight work before
  it (for a broker or a leader down: until it was back; for a relay kill:
  the re-feeds of that window). With exactly_once a re-delivery is of a
  handling whose transaction had not committed (in flight at the fault,
  however long the transaction was open): the notes count the
  re-deliveries of handlings whose output had committed, which must be 0.
- duplicate Emit outputs: the worker emits (consumer.Emit) one output per
  handling that succeeded; the outputs of a record beyond its first, as a
  read_committed reader sees them. exactly_once: must be 0; at least once:
  about the re-deliveries of handlings that succeeded.
- duplicate ladder copies: a record forwarded to a tier, re-fed to the main
  topic, or dead-lettered more than once for the same attempt
  (kretry-attempts), as a read_committed reader sees the topics.
- recovery: after a consumer kill, the time until another process handles
  each partition the killed one had handled in its last 3s (every partition
  when it had handled none) again (the largest). In a storm ((a), (i)) the
  next kills come before the group has settled, so a kill's recovery runs
  until the group settles after the storm: it measures the storm, not one
  kill ((g) and (h) measure one kill);
  after a relay kill, per partition the first re-feed after the kill less the
  later of the kill and its due time; after a broker restart, the time from
  the broker answering again to the next handling of each partition; after a
  leader kill, the time until each partition the node led is handled again.
- longest handling gap: per partition of the main topic, the longest time
  no process handled a record of it while records were produced (at 200
  records a second a partition being consumed is handled every few
  milliseconds); the largest over the partitions, each in the notes.
- max re-feed lateness: re-feed time (the re-fed record's timestamp) less its
  kretry-due-at. never early: no re-feed and no handling of a re-fed record
  before its kretry-due-at.
`)
	return b.String()
}

// lostText is the lost column: a run whose wait ran out cannot tell stuck
// records from lost ones.
func lostText(r Result) string {
	if r.Unsettled {
		return fmt.Sprintf("%d not done (stuck or lost)", r.Lost)
	}
	return fmt.Sprint(r.Lost)
}
