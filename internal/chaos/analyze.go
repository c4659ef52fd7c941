package chaos

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/kretry/kretry/ladder"
)

// Result is the figures of one scenario in one mode.
type Result struct {
	Scenario string
	Title    string
	Mode     Mode
	// Unavailable says why the mode could not run; the figures are empty.
	Unavailable string

	Produced     int // records acknowledged by the broker, malformed ones included
	Malformed    int // of which with broken kretry headers
	HandledOK    int // distinct records handled ok
	DeadLettered int // distinct records in the DLQ
	Lost         int // produced, neither handled ok nor in the DLQ when the run ended
	// Unsettled: the wait for every record ran out (Settle), so Lost counts
	// records that were stuck (a wedged consumer) as well as lost ones.
	Unsettled bool
	Misrouted int // handled ok although bound for the DLQ, or dead-lettered although bound to succeed

	Handlings    int // handler calls
	DupHandlings int // handler calls of a record at an attempt it was already handled at
	// ... of which Redelivered: of the same copy (partition and offset)
	// handled again, what the at-least-once bound (DupBound) is about; the
	// others are of another copy of the record at that attempt (a forward
	// or a re-feed written twice, DupLadder).
	Redelivered int
	MaxRepeat   int // the most handler calls of one record at one attempt
	// KillsOverBound describes each consumer kill after which more records
	// the killed worker had handled were handled again than the bound
	// allows it (what it handled in CommitInterval + InFlight before the
	// kill): "re-delivered/bound". At least once only: with exactly_once
	// a transaction may be open longer than that window (its end waits for
	// a join in flight), and CommittedRedelivered and DupLadder tell work
	// done again after it committed.
	KillsOverBound []string
	// DupBound is the at-least-once bound on DupHandlings: the sum, over the
	// faults, of what the processes hit handled in the CommitInterval +
	// InFlight before the fault (and, for a broker down, until it was back).
	DupBound int

	// Duplicate ladder copies: records forwarded to a tier, re-fed, or
	// dead-lettered more than once for the same attempt (read_committed).
	DupLadder int
	DupTier   int
	DupRefeed int
	DupDLQ    int
	Refeeds   int
	Reparked  int // tier records the relay re-parked (kretry-parked-at): not counted in DupTier
	// Emit outputs (OutputTopic): chaosworker emits one per handling that
	// succeeded; read_committed.
	Outputs        int
	DupOutputs     int // outputs of a record beyond its first
	MissingOutputs int // records handled ok, not dead-lettered, without an output
	// CommittedRedelivered counts re-deliveries of a copy whose earlier
	// handling succeeded and whose output is visible: committed work done
	// again. With exactly_once it must be 0: a re-delivery is then of a
	// handling whose transaction never committed, in flight at the fault.
	CommittedRedelivered int
	NotInTxn             int // exactly_once: ladder records written outside a transaction
	// ... of which in the tiers, re-fed to the main topic, in the DLQ
	NotInTxnTier, NotInTxnRefeed, NotInTxnDLQ int
	Faults                                    int
	Recoveries                                []time.Duration // one per fault that has a recovery
	NoRecovery                                int             // faults after which the partitions hit were never handled again

	// Gaps is, per partition of the main topic, the longest time no
	// process handled a record of it while records were produced (from the
	// start of production, to its end); MaxGap the largest.
	Gaps   [Partitions]time.Duration
	MaxGap time.Duration

	MaxLateness time.Duration // re-feed time − kretry-due-at, largest
	Early       int           // re-feeds before their due time, and handlings of re-fed records before it

	Notes []string
}

type analysis struct {
	want      map[int64]bool // id → bound for the DLQ
	malformed int
	events    []Event
	recs      []rec
	topic     string
	steps     []ladder.Step
	dlq       string
	faults    []Fault
	// from and to are when production started and stopped: the window of
	// the handling gaps.
	from, to time.Time
}

func normal(id int64) bool { return id >= 0 && id < MalformedBase }

func analyze(res Result, a analysis) Result {
	res.Produced = len(a.want)
	res.Malformed = a.malformed
	res.Faults = len(a.faults)

	okIDs := map[int64]bool{}
	type key struct {
		id      int64
		attempt int
	}
	seen := map[key]int{}
	var handlings []Event
	for _, e := range a.events {
		if e.ID < 0 { // probes
			continue
		}
		handlings = append(handlings, e)
		if e.Outcome == OutcomeOK {
			okIDs[e.ID] = true
		}
		if e.Outcome == OutcomeMalformed {
			res.Notes = append(res.Notes, fmt.Sprintf("the handler was called with record %d whose kretry headers are malformed", e.ID))
		}
		if !e.DueAt.IsZero() && e.At.Before(e.DueAt) {
			res.Early++
		}
	}
	outputs := map[int64]int{}
	committed := map[string]bool{} // Handling of each visible output
	for _, r := range a.recs {
		if r.Topic == OutputTopic(a.topic) && r.IDOK && normal(r.ID) {
			outputs[r.ID]++
			committed[r.Handling] = true
			res.Outputs++
		}
	}
	for _, n := range outputs {
		res.DupOutputs += n - 1
	}
	slices.SortFunc(handlings, func(x, y Event) int { return x.At.Compare(y.At) })
	res.Handlings = len(handlings)
	type copyKey struct {
		partition int32
		offset    int64
	}
	handledBy := map[copyKey]int{}      // the first handler's pid
	redeliveredOf := map[int]int{}      // re-deliveries by the pid that first handled the record
	committedCopy := map[copyKey]bool{} // an earlier handling of the copy has its output visible
	for _, e := range handlings {
		k := key{e.ID, e.Attempt}
		seen[k]++
		if seen[k] > 1 {
			res.DupHandlings++
		}
		ck := copyKey{e.Partition, e.Offset}
		if pid, ok := handledBy[ck]; ok {
			res.Redelivered++
			redeliveredOf[pid]++
			if committedCopy[ck] {
				res.CommittedRedelivered++
			}
		} else {
			handledBy[ck] = e.PID
		}
		if committed[Handling(e)] {
			committedCopy[ck] = true
		}
		res.MaxRepeat = max(res.MaxRepeat, seen[k])
	}

	tierTopics := map[string]bool{}
	for _, s := range a.steps {
		tierTopics[s.Topic] = true
	}
	dlqIDs := map[int64]bool{}
	type lkey struct {
		topic    string
		id       int64
		attempts string
	}
	copies := map[lkey]int{}
	for _, r := range a.recs {
		if !r.IDOK {
			continue
		}
		var notInTxn *int
		switch {
		case r.Topic == a.dlq:
			dlqIDs[r.ID] = true
			copies[lkey{r.Topic, r.ID, ""}]++
			notInTxn = &res.NotInTxnDLQ
		case tierTopics[r.Topic] && normal(r.ID) && r.Reparked:
			res.Reparked++ // the relay's re-park of a long RetryAfter: the same attempt again, not a copy
			notInTxn = &res.NotInTxnTier
		case tierTopics[r.Topic] && normal(r.ID):
			copies[lkey{r.Topic, r.ID, r.Attempts}]++
			notInTxn = &res.NotInTxnTier
		case r.Topic == a.topic && r.Attempts != "" && normal(r.ID):
			copies[lkey{r.Topic, r.ID, r.Attempts}]++
			notInTxn = &res.NotInTxnRefeed
			res.Refeeds++
			if !r.DueAt.IsZero() {
				late := r.Timestamp.Sub(r.DueAt)
				if late < 0 {
					res.Early++
				}
				res.MaxLateness = max(res.MaxLateness, late)
			}
		default:
			continue
		}
		if !r.Transactional && res.Mode == ExactlyOnce {
			res.NotInTxn++
			*notInTxn++
		}
	}
	for k, n := range copies {
		if n <= 1 {
			continue
		}
		switch {
		case k.topic == a.dlq:
			res.DupDLQ += n - 1
		case k.topic == a.topic:
			res.DupRefeed += n - 1
		default:
			res.DupTier += n - 1
		}
	}
	res.DupLadder = res.DupTier + res.DupRefeed + res.DupDLQ

	for id, toDLQ := range a.want {
		switch {
		case !okIDs[id] && !dlqIDs[id]:
			res.Lost++
		case toDLQ && !dlqIDs[id], !toDLQ && dlqIDs[id]:
			res.Misrouted++
		}
	}
	for id := range a.want {
		if okIDs[id] && !dlqIDs[id] && outputs[id] == 0 {
			res.MissingOutputs++
		}
		if okIDs[id] {
			res.HandledOK++
		}
		if dlqIDs[id] {
			res.DeadLettered++
		}
	}

	res.DupBound, res.Recoveries, res.NoRecovery = faultFigures(a.faults, handlings, a.recs, a.topic)
	if res.Mode != ExactlyOnce { // exactly_once: CommittedRedelivered
		res.KillsOverBound = killsOverBound(a.faults, handlings, redeliveredOf)
	}
	res.Gaps = handlingGaps(handlings, a.from, a.to)
	for _, g := range res.Gaps {
		res.MaxGap = max(res.MaxGap, g)
	}
	return res
}

// handlingGaps returns, per partition, the longest time without a handling
// of a record of it (hs sorted by time) that began while records were
// produced (in [from, to]); one open at to lasts until the partition's next
// handling, or until the last handling of any partition when it had none.
// At 200 records a second over 4 partitions a partition that is being
// consumed is handled every few milliseconds, so a gap is the time the
// partition was not consumed at all. Zero from and to give zero gaps.
func handlingGaps(hs []Event, from, to time.Time) (gaps [Partitions]time.Duration) {
	if from.IsZero() || !to.After(from) || len(hs) == 0 {
		return gaps
	}
	var last [Partitions]time.Time
	var closed [Partitions]bool
	for p := range last {
		last[p] = from
	}
	for _, e := range hs {
		p := e.Partition
		if p < 0 || p >= Partitions || e.At.Before(from) || closed[p] {
			continue
		}
		gaps[p] = max(gaps[p], e.At.Sub(last[p]))
		last[p] = e.At
		closed[p] = e.At.After(to)
	}
	end := to
	if l := hs[len(hs)-1].At; l.After(end) {
		end = l
	}
	for p := range last {
		if !closed[p] {
			gaps[p] = max(gaps[p], end.Sub(last[p]))
		}
	}
	return gaps
}

// killsOverBound returns "re-delivered/bound" for each consumer kill whose
// worker's records were re-delivered (redeliveredOf, by first handler) more
// than its bound: what it handled in CommitInterval + InFlight before it.
func killsOverBound(faults []Fault, hs []Event, redeliveredOf map[int]int) []string {
	window := CommitInterval + InFlight
	var out []string
	for _, f := range faults {
		if f.Kind != "consumer" {
			continue
		}
		bound := 0
		for _, e := range hs {
			if e.PID == f.PID && !e.At.Before(f.At.Add(-window)) && !e.At.After(f.At) {
				bound++
			}
		}
		if n := redeliveredOf[f.PID]; n > bound {
			out = append(out, fmt.Sprintf("%d/%d", n, bound))
		}
	}
	return out
}

// faultFigures computes the duplicate bound and the recovery after each fault:
//
//   - consumer kill: the partitions the killed worker handled in the 3s before
//     the kill (every partition when it handled none); the time until another
//     process handled each of them again; the largest.
//   - relay kill: per partition of the main topic, the first re-feed after the
//     kill, less the later of the kill and its due time; the largest.
//   - broker restart: per partition, the first handling after the node answered
//     again, less that moment; the largest.
//   - leader kill: the partitions the node led; the first handling of each
//     after the kill, less the kill; the largest.
func faultFigures(faults []Fault, hs []Event, recs []rec, topic string) (bound int, recs_ []time.Duration, none int) {
	window := CommitInterval + InFlight
	for _, f := range faults {
		var parts map[int32]bool
		from := f.At
		switch f.Kind {
		case "consumer":
			parts = map[int32]bool{}
			for _, e := range hs {
				if e.PID == f.PID && !e.At.Before(f.At.Add(-window)) && !e.At.After(f.At) {
					bound++
				}
				if e.PID == f.PID && !e.At.Before(f.At.Add(-3*time.Second)) && !e.At.After(f.At) {
					parts[e.Partition] = true
				}
			}
			if len(parts) == 0 {
				// The killed worker handled nothing lately (it had just
				// joined, or the group was stuck): until every partition
				// is handled again.
				parts = nil
			}
		case "broker":
			from = f.Ready
			for _, e := range hs {
				if !e.At.Before(f.At.Add(-window)) && !e.At.After(f.Ready.Add(window)) {
					bound++
				}
			}
		case "leader":
			parts = map[int32]bool{}
			for _, p := range f.Partitions {
				parts[p] = true
			}
			for _, e := range hs {
				if parts[e.Partition] && !e.At.Before(f.At.Add(-window)) && !e.At.After(f.Ready.Add(window)) {
					bound++
				}
			}
		case "relay":
			// What the killed relay may re-feed again: its re-feeds of the
			// window before the kill; the re-fed records are unknown, so
			// every relay's count.
			for _, r := range recs {
				if r.Topic == topic && r.Attempts != "" && !r.Timestamp.Before(f.At.Add(-window)) && !r.Timestamp.After(f.At) {
					bound++
				}
			}
			worst, found := time.Duration(-1), false
			first := map[int32]rec{}
			for _, r := range recs {
				if r.Topic != topic || r.Attempts == "" || !r.Timestamp.After(f.At) {
					continue
				}
				if cur, ok := first[r.Partition]; !ok || r.Timestamp.Before(cur.Timestamp) {
					first[r.Partition] = r
				}
			}
			for _, r := range first {
				start := f.At
				if r.DueAt.After(start) {
					start = r.DueAt
				}
				worst, found = max(worst, r.Timestamp.Sub(start)), true
			}
			if found {
				recs_ = append(recs_, worst)
			} else {
				none++
			}
			continue
		default: // join, leave
			continue
		}
		worst, found, missing := time.Duration(0), false, false
		check := func(p int32) {
			for _, e := range hs { // sorted by time
				if e.Partition == p && e.At.After(from) && e.PID != f.PID {
					worst, found = max(worst, e.At.Sub(from)), true
					return
				}
			}
			missing = true
		}
		if parts == nil {
			for p := range int32(Partitions) {
				check(p)
			}
		} else {
			for p := range parts {
				check(p)
			}
		}
		switch {
		case found:
			recs_ = append(recs_, worst)
		case missing:
			none++
		}
	}
	return bound, recs_, none
}

// Line is the result as one line of the suite's output.
func (r Result) Line() string {
	head := fmt.Sprintf("(%s) %-34s %-13s", r.Scenario, r.Title, r.Mode)
	if r.Unavailable != "" {
		return head + " not available: " + r.Unavailable
	}
	var b strings.Builder
	b.WriteString(head)
	fmt.Fprintf(&b, " produced=%d ok=%d dlq=%d lost=%d", r.Produced, r.HandledOK, r.DeadLettered, r.Lost)
	if r.Unsettled {
		b.WriteString(" (not done when the wait ended: stuck or lost)")
	}
	if r.Misrouted > 0 {
		fmt.Fprintf(&b, " misrouted=%d", r.Misrouted)
	}
	fmt.Fprintf(&b, " dup-handlings=%d (re-delivered %d, bound %d; of other copies %d; at most %d calls of one attempt) dup-ladder=%d (tier %d, re-feed %d, dlq %d)",
		r.DupHandlings, r.Redelivered, r.DupBound, r.DupHandlings-r.Redelivered, r.MaxRepeat, r.DupLadder, r.DupTier, r.DupRefeed, r.DupDLQ)
	fmt.Fprintf(&b, " dup-outputs=%d (of %d; missing %d)", r.DupOutputs, r.Outputs, r.MissingOutputs)
	fmt.Fprintf(&b, " faults=%d recovery=%s longest-gap=%s (per partition %s)", r.Faults, r.RecoveryText(), fmtDur(r.MaxGap), r.GapsText())
	fmt.Fprintf(&b, " lateness-max=%s never-early=%s", fmtDur(r.MaxLateness), yesNo(r.Early == 0, r.Early))
	if r.Mode == ExactlyOnce {
		fmt.Fprintf(&b, " not-in-txn=%d (tier %d, re-feed %d, dlq %d) re-delivered-after-commit=%d", r.NotInTxn, r.NotInTxnTier, r.NotInTxnRefeed, r.NotInTxnDLQ, r.CommittedRedelivered)
	}
	for _, n := range r.Notes {
		b.WriteString("; " + n)
	}
	return b.String()
}

// RecoveryText is "-" without faults that have one, else the largest, the
// median and the count.
func (r Result) RecoveryText() string {
	if len(r.Recoveries) == 0 {
		if r.NoRecovery > 0 {
			return fmt.Sprintf("never (%d)", r.NoRecovery)
		}
		return "-"
	}
	xs := slices.Clone(r.Recoveries)
	slices.Sort(xs)
	s := fmt.Sprintf("max %s, median %s, n=%d", fmtDur(xs[len(xs)-1]), fmtDur(xs[len(xs)/2]), len(xs))
	if r.NoRecovery > 0 {
		s += fmt.Sprintf(", %d never", r.NoRecovery)
	}
	return s
}

// GapsText is the longest handling gap of each partition, in order.
func (r Result) GapsText() string {
	xs := make([]string, len(r.Gaps))
	for i, g := range r.Gaps {
		xs[i] = fmtDur(g)
	}
	return strings.Join(xs, ", ")
}

func fmtDur(d time.Duration) string {
	return fmt.Sprintf("%.1fs", d.Seconds())
}

func yesNo(ok bool, n int) string {
	if ok {
		return "yes"
	}
	return fmt.Sprintf("NO (%d early)", n)
}
