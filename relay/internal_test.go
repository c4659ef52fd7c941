package relay

import (
	"context"
	"log/slog"
	"maps"
	"slices"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/internal/kafkatest"
	"github.com/kretry/kretry/internal/metrics"
	"github.com/kretry/kretry/ladder"
)

// hold holds the nearest not-due partitions within the budget, those due
// later than holdAhead within its far part, and leaves the rest to the pause
// path.
func TestHoldBudget(t *testing.T) {
	now := time.Now()
	b := newHoldBudget(DefaultHoldBytes)
	recs := func(n, valueBytes int) []*kgo.Record {
		out := make([]*kgo.Record, n)
		for i := range out {
			out[i] = &kgo.Record{Value: make([]byte, valueBytes)}
		}
		return out
	}
	out := func(p int32, due time.Duration, waiting []*kgo.Record) *outcome {
		return &outcome{tp: topicPartition{"t", p}, rewind: waiting[0], until: now.Add(due), waiting: waiting, wbytes: recordsSize(waiting)}
	}
	outs := []*outcome{
		out(0, 300*time.Millisecond, recs(b.records-2*(b.records/4)+1, 1)), // third nearest: over the record budget with 1 and 2
		out(1, 100*time.Millisecond, recs(b.records/4, 1)),                 // nearest: held
		out(2, 200*time.Millisecond, recs(b.records/4, 1)),                 // held: half the budget in all
		out(3, 10*time.Minute, recs(1, 1)),                                 // far: over the far budget, which 1 and 2 fill already
		out(4, 400*time.Millisecond, recs(1, b.bytes)),                     // over the byte budget
		out(5, 500*time.Millisecond, recs(1000, 1)),                        // fits in what is left
		{tp: topicPartition{"t", 6}, rewind: &kgo.Record{}, until: now.Add(time.Second), failure: true},
		{tp: topicPartition{"t", 7}}, // nothing to wait for
	}
	m, err := metrics.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	r := &Relay{metrics: m, tiers: map[string]tierOf{"t": {step: ladder.Step{Name: "retry-1s"}}}}
	heldGauge := func() float64 {
		var out dto.Metric
		if err := m.HeldBytes.WithLabelValues("retry-1s").Write(&out); err != nil {
			t.Fatal(err)
		}
		return out.GetGauge().GetValue()
	}
	s := &session{r: r, held: map[topicPartition]held{}, holdPaused: map[topicPartition]bool{}, budget: b}
	s.hold(outs)

	for _, tc := range []struct {
		p    int32
		held bool
	}{{0, false}, {1, true}, {2, true}, {3, false}, {4, false}, {5, true}, {6, false}, {7, false}} {
		o := outs[tc.p]
		h, isHeld := s.held[o.tp]
		if isHeld != tc.held {
			t.Errorf("partition %d held = %v, want %v", tc.p, isHeld, tc.held)
		}
		if isHeld && (o.rewind != nil || len(h.recs) != len(o.waiting) || !h.due.Equal(o.until)) {
			t.Errorf("partition %d held %d records due %v with rewind %v", tc.p, len(h.recs), h.due, o.rewind)
		}
		if !isHeld && tc.p < 7 && o.rewind == nil {
			t.Errorf("partition %d is neither held nor rewound", tc.p)
		}
	}
	if s.heldRecords != 2*(b.records/4)+1000 {
		t.Errorf("heldRecords = %d; want %d", s.heldRecords, 2*(b.records/4)+1000)
	}
	if want := outs[1].wbytes + outs[2].wbytes + outs[5].wbytes; s.heldBytes != want || heldGauge() != float64(want) {
		t.Errorf("heldBytes = %d, kretry_held_bytes = %v; want %d", s.heldBytes, heldGauge(), want)
	}
	// What is held no more leaves the gauge: partition 1 revoked, then the
	// session stopped.
	cl, err := kgo.NewClient()
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	kept := maps.Clone(s.held)
	s.release(cl, map[string][]int32{"t": {1}})
	if want := outs[2].wbytes + outs[5].wbytes; heldGauge() != float64(want) {
		t.Errorf("after a revoke: kretry_held_bytes = %v; want %d", heldGauge(), want)
	}
	s.stop()
	if g := heldGauge(); g != 0 {
		t.Errorf("after stop: kretry_held_bytes = %v; want 0", g)
	}
	s.held, s.closed = kept, false // for nextWake below
	// Alone, a far partition is held within the far budget, not past it,
	// and only when its head is due within holdFar.
	for _, tc := range []struct {
		n    int
		due  time.Duration
		held bool
	}{
		{b.farRecords, holdFar - time.Second, true},
		{b.farRecords + 1, holdFar - time.Second, false},
		{1, holdFar + time.Second, false},
		{1, 10 * time.Minute, false},
	} {
		o := out(3, tc.due, recs(tc.n, 1))
		far := &session{r: r, held: map[topicPartition]held{}, budget: b}
		far.hold([]*outcome{o})
		if _, held := far.held[o.tp]; held != tc.held || (o.rewind == nil) != tc.held {
			t.Errorf("far partition of %d records due in %v: held %v, rewind %v; want held %v", tc.n, tc.due, held, o.rewind != nil, tc.held)
		}
	}
	// With no budget, nothing is held.
	none := &session{r: r, held: map[topicPartition]held{}, budget: newHoldBudget(0)}
	o := out(1, 100*time.Millisecond, recs(1, 1))
	none.hold([]*outcome{o})
	if len(none.held) != 0 || o.rewind == nil {
		t.Errorf("hold bytes 0: held %d partitions; want none, rewound", len(none.held))
	}
	if due := s.nextWake(); !due.Equal(now.Add(100 * time.Millisecond)) {
		t.Errorf("nextWake = %v; want the nearest due time, +100ms", due)
	}
	// A partition paused while it holds wakes the loop holdAhead before its
	// last record is due, to be resumed, or at its head's due time if that
	// comes first.
	tp3 := topicPartition{"t", 3}
	s.holdPaused[tp3] = true
	clear(s.held)
	for _, tc := range []struct{ head, tail, want time.Duration }{
		{10 * time.Minute, 10 * time.Minute, 10*time.Minute - holdAhead},
		{10 * time.Minute, 11 * time.Minute, 10 * time.Minute},
		{holdAhead / 2, holdAhead, holdAhead / 2}, // resuming is due already
	} {
		s.held[tp3] = held{recs: outs[3].waiting, due: now.Add(tc.head), tail: now.Add(tc.tail)}
		if due := s.nextWake(); !due.Equal(now.Add(tc.want)) {
			t.Errorf("head +%v, last +%v: nextWake = +%v; want +%v", tc.head, tc.tail, due.Sub(now), tc.want)
		}
	}
	// Re-feeds in flight bring the wake-up to settleEvery from now.
	s.inflight = map[topicPartition][]*refeed{tp3: {{}}}
	if due := s.nextWake(); due.IsZero() || due.After(time.Now().Add(settleEvery)) {
		t.Errorf("nextWake = %v with re-feeds in flight; want within %v", due, settleEvery)
	}
	clear(s.held)
	if due := s.nextWake(); due.IsZero() {
		t.Error("nextWake = zero with re-feeds in flight and nothing held")
	}
	clear(s.inflight)
	if due := s.nextWake(); !due.IsZero() {
		t.Errorf("nextWake = %v with nothing held or in flight; want zero", due)
	}
}

// pauseHolders pauses a holding partition (without a rewind) while the last
// record it holds is far, while it holds budget.pauseAt records, or while the
// relay holds three quarters of its budget, and resumes it once none of that holds; the
// paused-partitions gauge follows.
func TestPauseHolders(t *testing.T) {
	_, brokers := kafkatest.Fake(t, kfake.NumBrokers(1), kfake.SeedTopics(4, "t.retry-5s"))
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics("t.retry-5s"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	m, err := metrics.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	r := &Relay{metrics: m, tiers: map[string]tierOf{"t.retry-5s": {step: ladder.Step{Name: "retry-5s"}}}}
	b := newHoldBudget(DefaultHoldBytes)
	s := &session{r: r, cons: cl, held: map[topicPartition]held{}, holdPaused: map[topicPartition]bool{}, budget: b}
	tp := func(p int32) topicPartition { return topicPartition{"t.retry-5s", p} }
	recs := func(n int) []*kgo.Record { return make([]*kgo.Record, n) }
	paused := func() []int32 {
		ps := cl.PauseFetchPartitions(nil)["t.retry-5s"]
		slices.Sort(ps)
		return ps
	}
	gauge := func() float64 {
		var out dto.Metric
		if err := m.PausedPartitions.WithLabelValues("retry-5s").Write(&out); err != nil {
			t.Fatal(err)
		}
		return out.GetGauge().GetValue()
	}
	var outs []*outcome
	for p := range int32(4) {
		outs = append(outs, &outcome{tp: tp(p)})
	}
	now := time.Now()
	s.held[tp(0)] = held{recs: recs(10), due: now, tail: now.Add(2 * holdAhead)} // last record far
	s.held[tp(1)] = held{recs: recs(b.pauseAt), due: now, tail: now}             // many records
	s.held[tp(2)] = held{recs: recs(10), due: now, tail: now.Add(holdAhead / 2)} // all near: keeps fetching
	s.heldRecords = 20 + b.pauseAt
	s.pauseHolders(outs)
	if got := paused(); !slices.Equal(got, []int32{0, 1}) || gauge() != 2 {
		t.Fatalf("paused %v, gauge %v; want [0 1], 2", got, gauge())
	}

	// Three quarters of the budget held: every holder pauses.
	s.heldRecords = b.records * 3 / 4
	s.pauseHolders(outs)
	if got := paused(); !slices.Equal(got, []int32{0, 1, 2}) || gauge() != 3 {
		t.Fatalf("with 3/4 of the budget held: paused %v, gauge %v; want [0 1 2], 3", got, gauge())
	}

	// Below that again: 2 is near and small, 1 drained below half of
	// pauseAt, 0 holds nothing any more; 3 was never paused.
	s.heldRecords = 30
	s.held[tp(1)] = held{recs: recs(b.pauseAt / 2), due: now, tail: now}
	delete(s.held, tp(0))
	s.pauseHolders(outs)
	if got := paused(); len(got) != 0 || gauge() != 0 {
		t.Fatalf("after draining: paused %v, gauge %v; want none, 0", got, gauge())
	}
}

// kretry_paused_partitions counts, per tier, the partitions paused by a timer
// or while they hold, after each change: a pause, a hold-pause, a resume by
// the timer or by pauseHolders, a revoke, a loss, an abort and stop. Two
// sessions sharing the metrics add up.
func TestPausedPartitionsGauge(t *testing.T) {
	const a, b = "t.retry-5s", "t.retry-1m"
	_, brokers := kafkatest.Fake(t, kfake.NumBrokers(1), kfake.SeedTopics(4, a, b))
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(a, b))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	m, err := metrics.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	r := &Relay{
		metrics: m,
		cfg:     cfg{retryBackoff: time.Hour, maxRetryBackoff: time.Hour, deliveryTimeout: time.Second},
		tiers:   map[string]tierOf{a: {step: ladder.Step{Name: "retry-5s"}}, b: {step: ladder.Step{Name: "retry-1m"}}},
	}
	newSession := func() *session {
		return &session{r: r, cons: cl, log: slog.New(slog.DiscardHandler), budget: newHoldBudget(DefaultHoldBytes),
			paused: map[topicPartition]*pause{}, held: map[topicPartition]held{}, holdPaused: map[topicPartition]bool{},
			inflight: map[topicPartition][]*refeed{}, failures: map[topicPartition]int{}}
	}
	s, s2 := newSession(), newSession()
	tp := func(topic string, p int32) topicPartition { return topicPartition{topic, p} }
	now := time.Now()
	// failed: a re-feed failed, paused for the backoff. far: one small record
	// due within holdFar but not holdAhead, held and paused while it holds. tooBig: past the
	// budget, paused and rewound until holdAhead before it is due.
	failed := func(tp topicPartition) *outcome {
		return &outcome{tp: tp, rewind: &kgo.Record{Topic: tp.topic, Partition: tp.partition}, failure: true}
	}
	waiting := func(tp topicPartition, wbytes int) *outcome {
		rec := &kgo.Record{Topic: tp.topic, Partition: tp.partition, Value: []byte{1}}
		due := now.Add(holdFar / 2)
		return &outcome{tp: tp, rewind: rec, until: due, waiting: []*kgo.Record{rec}, wreads: []read{{}}, wbytes: wbytes, tailDue: due}
	}
	far := func(tp topicPartition) *outcome { return waiting(tp, 1) }
	tooBig := func(tp topicPartition) *outcome { return waiting(tp, s.budget.bytes+1) }
	check := func(step string, want5s, want1m int) {
		t.Helper()
		state := map[string]int{}
		for _, s := range []*session{s, s2} {
			for tp := range s.paused {
				state[r.tiers[tp.topic].step.Name]++
			}
			for tp := range s.holdPaused {
				if s.paused[tp] == nil {
					state[r.tiers[tp.topic].step.Name]++
				}
			}
		}
		for tier, want := range map[string]int{"retry-5s": want5s, "retry-1m": want1m} {
			var out dto.Metric
			if err := m.PausedPartitions.WithLabelValues(tier).Write(&out); err != nil {
				t.Fatal(err)
			}
			if got := out.GetGauge().GetValue(); got != float64(want) || state[tier] != want {
				t.Errorf("%s: %s gauge %v, paused in the sessions' state %d; want %d", step, tier, got, state[tier], want)
			}
		}
	}
	ctx := context.Background()

	s.finish([]*outcome{failed(tp(a, 0)), tooBig(tp(b, 0))})
	check("pause", 1, 1)
	s.finish([]*outcome{far(tp(a, 1))})
	if !s.holdPaused[tp(a, 1)] {
		t.Fatal("a partition holding a far record is not paused")
	}
	check("hold-pause", 2, 1)
	s.resume(tp(a, 0), s.paused[tp(a, 0)])
	check("resume by the timer", 1, 1)
	delete(s.held, tp(a, 1)) // as handle does: the held record is taken
	s.finish([]*outcome{{tp: tp(a, 1)}})
	check("resume of a holder that holds nothing", 0, 1)

	s.finish([]*outcome{failed(tp(a, 2)), far(tp(a, 3))})
	check("pause and hold-pause before a revoke", 2, 1)
	s.revoked(ctx, cl, map[string][]int32{a: {2, 3}})
	check("revoke", 0, 1)
	s.lost(ctx, cl, map[string][]int32{b: {0}})
	check("loss", 0, 0)

	s.finish([]*outcome{failed(tp(a, 0)), far(tp(b, 1))})
	check("pause and hold-pause before an abort", 1, 1)
	s.resetAfterAbort()
	check("abort", 0, 0)

	s2.finish([]*outcome{failed(tp(a, 0))})
	s.finish([]*outcome{failed(tp(a, 1)), far(tp(a, 2)), tooBig(tp(b, 2))})
	check("two sessions", 3, 1)
	s.stop()
	check("stop of one", 1, 0)
	s2.stop()
	check("stop of both", 0, 0)
}

// refedIDs remembers the last copiesKept identities and no more; the record
// that was re-fed is not its own copy (fetched again after a rewind), a
// record behind it with its identity is.
func TestRefedIDsBounded(t *testing.T) {
	var m refedIDs
	id := func(i int) copyID { return copyID{topic: "orders", offset: int64(i), partition: 1, attempts: 1} }
	const n = copiesKept + 100
	for i := range n {
		m.remember(id(i), int64(i))
		if m.indexed() > copiesKept || len(m.ring) > copiesKept {
			t.Fatalf("after %d re-feeds it remembers %d identities (ring %d), want at most %d", i+1, m.indexed(), len(m.ring), copiesKept)
		}
	}
	if m.indexed() != copiesKept {
		t.Errorf("remembers %d identities, want %d", m.indexed(), copiesKept)
	}
	for i := range 100 {
		if m.copyOf(id(i), n+int64(i)) {
			t.Fatalf("identity %d, among the oldest, is still remembered", i)
		}
	}
	for i := 100; i < n; i++ {
		if !m.copyOf(id(i), n+int64(i)) {
			t.Fatalf("identity %d, among the newest, is forgotten", i)
		}
		if m.copyOf(id(i), int64(i)) {
			t.Fatalf("the record re-fed with identity %d is taken for its own copy", i)
		}
	}
	other := id(n - 1)
	other.replays = 1
	if m.copyOf(other, 2*n) {
		t.Error("a replayed record is taken for a copy of the attempt it replays")
	}
	other = id(n - 1)
	other.attempts = 2
	if m.copyOf(other, 2*n) {
		t.Error("another attempt is taken for a copy")
	}
	// No first delivery named: never remembered, never a copy.
	var none refedIDs
	none.remember(copyID{attempts: 1}, 1)
	if none.copyOf(copyID{attempts: 1}, 2) || none.indexed() != 0 {
		t.Error("a record without kretry-original-topic is taken for a copy")
	}
}
