package chaos

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kretry/kretry/ladder"
)

func TestOutcome(t *testing.T) {
	tests := []struct {
		id      int64
		attempt int
		want    string
	}{
		{0, 0, OutcomeFail}, {0, 2, OutcomeFail}, {21, 1, OutcomeFail},
		{2, 0, OutcomePermanent},
		{3, 0, OutcomeFail}, {3, 1, OutcomeOK}, {6, 1, OutcomeOK},
		{7, 1, OutcomeFail}, {7, 2, OutcomeOK},
		{8, 0, OutcomeOK}, {19, 0, OutcomeOK},
		{-1, 0, OutcomeOK}, // probes
	}
	for _, tt := range tests {
		if got := Outcome(tt.id, tt.attempt); got != tt.want {
			t.Errorf("Outcome(%d, %d) = %s, want %s", tt.id, tt.attempt, got, tt.want)
		}
	}
	// Every record bound for the DLQ never succeeds within the ladder of two
	// tiers (three attempts), and every other one does.
	for id := range int64(40) {
		ok := false
		for a := range 3 {
			if Outcome(id, a) == OutcomeOK {
				ok = true
				break
			}
			if Outcome(id, a) == OutcomePermanent {
				break
			}
		}
		if ok == WantDLQ(id) {
			t.Errorf("record %d: succeeds within three attempts %v, WantDLQ %v", id, ok, WantDLQ(id))
		}
	}
}

func TestEventLine(t *testing.T) {
	e := Event{At: time.UnixMilli(1700000000123), PID: 42, Partition: 3, ID: 17, Attempt: 2, DueAt: time.UnixMilli(1700000000100), Outcome: OutcomeFail, Offset: 99}
	got, err := parseEvent(e.AppendLine(nil))
	if err != nil {
		t.Fatal(err)
	}
	if !got.At.Equal(e.At) || !got.DueAt.Equal(e.DueAt) || got.PID != 42 || got.Partition != 3 || got.ID != 17 || got.Attempt != 2 || got.Outcome != OutcomeFail || got.Offset != 99 {
		t.Errorf("round trip: got %+v, want %+v", got, e)
	}
}

func TestAnalyze(t *testing.T) {
	t0 := time.UnixMilli(1700000000000)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	steps := []ladder.Step{{Name: "retry-1s", Topic: "m.retry-1s"}, {Name: "retry-2s", Topic: "m.retry-2s"}}
	ev := func(ms, pid int, part int32, id int64, attempt int, out string, offset int64) Event {
		return Event{At: at(ms), PID: pid, Partition: part, ID: id, Attempt: attempt, Outcome: out, Offset: offset}
	}
	// Records: 8 ok; 3 fails once (tier, re-fed, ok); 2 permanent (DLQ);
	// 9 produced, never handled: lost. Worker 1 handles 8 and 3, is killed
	// at 1000 ms; worker 2 handles 8 again (a re-delivery: the same offset)
	// at 4000 ms, and a second re-fed copy of 3 (another offset).
	a := analysis{
		want: map[int64]bool{8: false, 3: false, 2: true, 9: false},
		events: []Event{
			ev(100, 1, 0, 8, 0, OutcomeOK, 10),
			ev(200, 1, 0, 3, 0, OutcomeFail, 11),
			{At: at(2500), PID: 2, Partition: 0, ID: 3, Attempt: 1, DueAt: at(2300), Outcome: OutcomeOK, Offset: 14},
			ev(300, 1, 1, 2, 0, OutcomePermanent, 3),
			ev(4000, 2, 0, 8, 0, OutcomeOK, 10), // re-delivered: its offset was not committed
			ev(4100, 2, 0, 3, 1, OutcomeOK, 15), // the second re-fed copy of 3's attempt 1
			ev(50, 1, 0, -1, 0, OutcomeOK, 0),   // a probe: left out
		},
		recs: []rec{
			{Topic: "m.retry-1s", Partition: 0, ID: 3, IDOK: true, Attempts: "1"},
			{Topic: "m.retry-1s", Partition: 0, ID: 3, IDOK: true, Attempts: "1"}, // a second copy
			{Topic: "m", Partition: 0, ID: 3, IDOK: true, Attempts: "1", DueAt: at(2300), Timestamp: at(2400)},
			{Topic: "m", Partition: 0, ID: 8, IDOK: true},
			{Topic: "m.dlq", Partition: 1, ID: 2, IDOK: true, Reason: "permanent"},
		},
		topic: "m", steps: steps, dlq: "m.dlq",
		faults: []Fault{{Kind: "consumer", At: at(1000), PID: 1}},
	}
	res := analyze(Result{Mode: AtLeastOnce}, a)
	want := Result{
		Mode: AtLeastOnce, Produced: 4, HandledOK: 2, DeadLettered: 1, Lost: 1,
		Handlings: 6, DupHandlings: 2, Redelivered: 1, MaxRepeat: 2, DupBound: 3, DupLadder: 1, DupTier: 1, Refeeds: 1, Faults: 1,
		MaxLateness: 100 * time.Millisecond,
	}
	if len(res.Recoveries) != 1 || res.Recoveries[0] != 1500*time.Millisecond {
		t.Errorf("recoveries %v, want [1.5s] (partition 0 handled again by pid 2 at 2500 ms; partition 1 never)", res.Recoveries)
	}
	if res.NoRecovery != 0 {
		// Partition 1 is not handled again, but partition 0 is: the fault has a recovery.
		t.Errorf("NoRecovery %d, want 0", res.NoRecovery)
	}
	// Worker 1's record 8 was re-delivered; its bound is its 3 handlings
	// of the 3s before the kill: not over it.
	if len(res.KillsOverBound) != 0 {
		t.Errorf("kills over their bound %v, want none", res.KillsOverBound)
	}
	res.Recoveries, res.NoRecovery = nil, 0
	if res.Line() == "" || !equal(res, want) {
		t.Errorf("analyze:\n got %+v\nwant %+v", res, want)
	}

	// In exactly_once mode every ladder record must be transactional: here
	// none is (the plain main-topic record 8 is no ladder record).
	eos := analyze(Result{Mode: ExactlyOnce}, a)
	if eos.NotInTxn != 4 || eos.NotInTxnTier != 2 || eos.NotInTxnRefeed != 1 || eos.NotInTxnDLQ != 1 {
		t.Errorf("not in a transaction: %d (tier %d, re-feed %d, dlq %d), want 4 (2, 1, 1)", eos.NotInTxn, eos.NotInTxnTier, eos.NotInTxnRefeed, eos.NotInTxnDLQ)
	}
	a.recs[0].Transactional = true
	if eos := analyze(Result{Mode: ExactlyOnce}, a); eos.NotInTxnTier != 1 {
		t.Errorf("a transactional tier record counted as outside a transaction: %d, want 1", eos.NotInTxnTier)
	}

	// A re-feed before its due time and a handling before it are both early.
	a.recs[2].Timestamp = at(2200)
	a.events[2].At = at(2250)
	if res := analyze(Result{}, a); res.Early != 2 {
		t.Errorf("Early = %d, want 2", res.Early)
	}
}

// A tier record the relay re-parked (kretry-parked-at: a RetryAfter longer
// than the tier's delay) is the same attempt written again on purpose: it
// is counted as a re-park, not as a duplicate ladder copy.
func TestAnalyzeReparks(t *testing.T) {
	steps := []ladder.Step{{Name: "retry-1s", Topic: "m.retry-1s"}}
	a := analysis{
		want: map[int64]bool{3: false},
		recs: []rec{
			{Topic: "m.retry-1s", ID: 3, IDOK: true, Attempts: "1"},
			{Topic: "m.retry-1s", ID: 3, IDOK: true, Attempts: "1", Reparked: true},
			{Topic: "m.retry-1s", ID: 3, IDOK: true, Attempts: "1", Reparked: true},
			{Topic: "m", ID: 3, IDOK: true, Attempts: "1"},
		},
		topic: "m", steps: steps, dlq: "m.dlq",
	}
	res := analyze(Result{Mode: AtLeastOnce}, a)
	if res.DupTier != 0 || res.DupLadder != 0 || res.Reparked != 2 {
		t.Errorf("duplicate tier copies %d (ladder %d), re-parks %d: want 0, 0 and 2", res.DupTier, res.DupLadder, res.Reparked)
	}
	a.recs = append(a.recs, rec{Topic: "m.retry-1s", ID: 3, IDOK: true, Attempts: "1"}) // a real second copy
	if res := analyze(Result{Mode: AtLeastOnce}, a); res.DupTier != 1 {
		t.Errorf("duplicate tier copies %d with a second copy besides the re-parks, want 1", res.DupTier)
	}
}

func TestKillsOverBound(t *testing.T) {
	t0 := time.UnixMilli(1700000000000)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	// Worker 1 handled 2 records in the 3s before its kill at 10s; worker 2
	// 1 before its kill at 20s.
	hs := []Event{{At: at(1000), PID: 1}, {At: at(8000), PID: 1}, {At: at(9000), PID: 1}, {At: at(19000), PID: 2}}
	faults := []Fault{{Kind: "consumer", At: at(10000), PID: 1}, {Kind: "consumer", At: at(20000), PID: 2}, {Kind: "broker", At: at(5000)}}
	got := killsOverBound(faults, hs, map[int]int{1: 2, 2: 5})
	if !slices.Equal(got, []string{"5/1"}) {
		t.Errorf("killsOverBound = %v, want [5/1]: worker 2's 5 re-deliveries against its 1 handling, worker 1 within its 2", got)
	}
}

func equal(a, b Result) bool {
	return a.Produced == b.Produced && a.HandledOK == b.HandledOK && a.DeadLettered == b.DeadLettered &&
		a.Lost == b.Lost && a.Misrouted == b.Misrouted && a.Handlings == b.Handlings &&
		a.DupHandlings == b.DupHandlings && a.Redelivered == b.Redelivered && a.MaxRepeat == b.MaxRepeat && a.DupBound == b.DupBound && a.DupLadder == b.DupLadder &&
		a.DupTier == b.DupTier && a.DupRefeed == b.DupRefeed && a.DupDLQ == b.DupDLQ &&
		a.Refeeds == b.Refeeds && a.Faults == b.Faults && a.MaxLateness == b.MaxLateness && a.Early == b.Early
}

func TestFaultFigures(t *testing.T) {
	t0 := time.UnixMilli(1700000000000)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	// Worker 1 handles partitions 0 and 1 until 10 s; worker 2 takes partition
	// 0 over at 12 s and partition 1 at 15 s. Worker 3 had just joined.
	var hs []Event
	for ms := 0; ms <= 10000; ms += 500 {
		hs = append(hs, Event{At: at(ms), PID: 1, Partition: int32(ms/500) % 2})
	}
	hs = append(hs, Event{At: at(12000), PID: 2, Partition: 0}, Event{At: at(15000), PID: 2, Partition: 1},
		Event{At: at(16000), PID: 2, Partition: 2}, Event{At: at(17000), PID: 2, Partition: 3})
	// Re-feeds: two in the 3 s before a relay kill at 20 s, then partition
	// 0's next one (due at 21 s) at 26 s and partition 1's (due before the
	// kill) at 23 s.
	refeed := func(ms, due int, p int32) rec {
		return rec{Topic: "m", Partition: p, Attempts: "1", Timestamp: at(ms), DueAt: at(due)}
	}
	recs := []rec{refeed(18000, 17900, 0), refeed(19500, 19400, 1), refeed(26000, 21000, 0), refeed(23000, 19800, 1)}

	tests := []struct {
		name      string
		fault     Fault
		bound     int
		recovery  []time.Duration
		noRecover int
	}{
		{"consumer kill", Fault{Kind: "consumer", At: at(10000), PID: 1}, 7, []time.Duration{5 * time.Second}, 0},
		{"consumer kill of a worker that handled nothing", Fault{Kind: "consumer", At: at(10000), PID: 3}, 0, []time.Duration{7 * time.Second}, 0},
		{"relay kill", Fault{Kind: "relay", At: at(20000)}, 2, []time.Duration{5 * time.Second}, 0},
		{"broker restart", Fault{Kind: "broker", At: at(9000), Ready: at(11000)}, 10, []time.Duration{6 * time.Second}, 0},
		{"join", Fault{Kind: "join", At: at(5000)}, 0, nil, 0},
		{"consumer kill at the end", Fault{Kind: "consumer", At: at(20000), PID: 2}, 1, []time.Duration(nil), 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bound, recov, none := faultFigures([]Fault{tt.fault}, hs, recs, "m")
			if bound != tt.bound || !slices.Equal(recov, tt.recovery) || none != tt.noRecover {
				t.Errorf("got bound %d, recovery %v, never %d; want %d, %v, %d", bound, recov, none, tt.bound, tt.recovery, tt.noRecover)
			}
		})
	}
}

func TestMarkdown(t *testing.T) {
	res := []Result{
		{Scenario: "a", Title: "kill -9 storm of consumers", Mode: AtLeastOnce, Produced: 10, HandledOK: 8, DeadLettered: 2,
			DupHandlings: 3, Redelivered: 1, DupBound: 5, Faults: 2, Recoveries: []time.Duration{2 * time.Second, 4 * time.Second}},
		{Scenario: "a", Title: "kill -9 storm of consumers", Mode: ExactlyOnce, Unavailable: "no transactions"},
		{Scenario: "c", Title: "broker stopped and restarted", Mode: ExactlyOnce, Unavailable: "no transactions"},
	}
	md := Markdown(res, "a machine", "abc1234", time.Date(2026, 12, 6, 21, 0, 0, 0, time.UTC), time.Minute)
	for _, want := range []string{
		"| (a) kill -9 storm of consumers | at-least-once | 10 | 8 | 2 | 0 | 3: 1 (5) + 2 | 0 | 0 | 2 | max 4.0s, median 4.0s, n=2 | 0.0s | 0.0s | yes |",
		"| (a) kill -9 storm of consumers | exactly_once | not available (below) |",
		"- exactly_once: not available: no transactions\n",
		"(a) at-least-once: recovery after each fault, in order: 2.0s, 4.0s",
		"2026-12-06 21:00 UTC", "a machine", "abc1234",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("RELIABILITY.md lacks %q:\n%s", want, md)
		}
	}
	if n := strings.Count(md, "not available: no transactions"); n != 1 {
		t.Errorf("the reason exactly_once is not available is given %d times, want once", n)
	}
}

func TestHandlingGaps(t *testing.T) {
	t0 := time.UnixMilli(1700000000000)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	ev := func(ms int, p int32) Event { return Event{At: at(ms), Partition: p} }
	tests := []struct {
		name string
		hs   []Event
		to   int // ms after from
		want [Partitions]time.Duration
	}{
		{
			name: "steady: the gaps between handlings, from the start to the end of production",
			hs:   []Event{ev(100, 0), ev(300, 0), ev(350, 1), ev(900, 1), ev(950, 2), ev(990, 3)},
			to:   1000,
			want: [Partitions]time.Duration{700 * time.Millisecond, 550 * time.Millisecond, 950 * time.Millisecond, 990 * time.Millisecond},
		},
		{
			name: "a gap open when production stops lasts until the partition's next handling, later ones do not count",
			hs:   []Event{ev(100, 0), ev(100, 1), ev(100, 2), ev(100, 3), ev(5000, 0), ev(9000, 0), ev(1100, 1), ev(1200, 1), ev(1300, 2), ev(1400, 3), ev(8000, 3)},
			to:   1000,
			want: [Partitions]time.Duration{4900 * time.Millisecond, time.Second, 1200 * time.Millisecond, 1300 * time.Millisecond},
		},
		{
			name: "a partition never handled again: until the last handling of any",
			hs:   []Event{ev(100, 0), ev(100, 1), ev(100, 2), ev(100, 3), ev(1500, 0), ev(3000, 1), ev(1500, 2)},
			to:   1000,
			want: [Partitions]time.Duration{1400 * time.Millisecond, 2900 * time.Millisecond, 1400 * time.Millisecond, 2900 * time.Millisecond},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hs := slices.Clone(tt.hs)
			slices.SortStableFunc(hs, func(x, y Event) int { return x.At.Compare(y.At) })
			if got := handlingGaps(hs, t0, at(tt.to)); got != tt.want {
				t.Errorf("handlingGaps = %v, want %v", got, tt.want)
			}
		})
	}
	if got := handlingGaps([]Event{ev(100, 0)}, time.Time{}, at(1000)); got != ([Partitions]time.Duration{}) {
		t.Errorf("without a production window: %v, want zero gaps", got)
	}
}

// The worker's Emit outputs (OutputTopic), as a read_committed reader sees
// them: copies of a record's output beyond the first are duplicates, a
// record handled ok without one is missing it, and a re-delivery of a
// handling whose output is visible redid committed work.
func TestAnalyzeOutputs(t *testing.T) {
	t0 := time.UnixMilli(1700000000000)
	ev := func(ms, pid int, part int32, id int64, offset int64) Event {
		return Event{At: t0.Add(time.Duration(ms) * time.Millisecond), PID: pid, Partition: part, ID: id, Outcome: OutcomeOK, Offset: offset}
	}
	out := func(e Event) rec {
		return rec{Topic: OutputTopic("m"), ID: e.ID, IDOK: true, Handling: Handling(e)}
	}
	a := analysis{
		want: map[int64]bool{8: false, 10: false, 11: false, 12: false, 2: true},
		events: []Event{
			ev(100, 1, 0, 8, 10), ev(200, 2, 0, 8, 10), // 8: handled, its output committed, re-delivered
			ev(100, 1, 1, 10, 4), ev(200, 2, 1, 10, 4), // 10: handled, not committed (no output of the first), re-delivered
			// 12: handled by 1 (not committed), again by 1 (committed), a
			// third time by 2: one re-delivery after commit, not two
			ev(100, 1, 3, 12, 5), ev(200, 1, 3, 12, 5), ev(300, 2, 3, 12, 5),
			ev(100, 1, 2, 11, 7), // 11: handled ok, no output at all
			ev(100, 1, 3, 2, 1),  // 2: an ok handling of a record that ended in the DLQ: no output needed
			ev(100, 1, 0, -1, 0), // a probe
		},
		recs:  []rec{{Topic: "m.dlq", ID: 2, IDOK: true}},
		topic: "m", dlq: "m.dlq",
	}
	for _, i := range []int{0, 1, 3, 5, 6, 9} { // 8 twice, 10 by 2, 12 by 1's second handling and by 2, the probe
		a.recs = append(a.recs, out(a.events[i]))
	}
	res := analyze(Result{Mode: ExactlyOnce}, a)
	if res.Outputs != 5 || res.DupOutputs != 2 || res.MissingOutputs != 1 || res.CommittedRedelivered != 2 || res.Redelivered != 4 {
		t.Errorf("outputs %d, duplicate %d, missing %d, re-delivered after commit %d of %d re-deliveries; want 5, 2, 1, 2 of 4",
			res.Outputs, res.DupOutputs, res.MissingOutputs, res.CommittedRedelivered, res.Redelivered)
	}
	if !strings.Contains(res.Line(), "dup-outputs=2 (of 5; missing 1)") || !strings.Contains(res.Line(), "re-delivered-after-commit=2") {
		t.Errorf("line %q does not give the outputs' figures", res.Line())
	}
	md := Markdown([]Result{res}, "m", "", time.Now(), time.Second)
	if !strings.Contains(md, "re-deliveries of a handling whose transaction had committed (its output visible): 2") ||
		!strings.Contains(md, "1 records handled ok have no Emit output") {
		t.Errorf("RELIABILITY.md does not note the outputs:\n%s", md)
	}
}
