package dlq_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kretry/kretry/dlq"
	"github.com/kretry/kretry/headers"
	"github.com/kretry/kretry/internal/kafkatest"
)

// consumeAll returns every record of topic now (all partitions, to the end).
func consumeAll(t *testing.T, seeds []string, topic string) []*kgo.Record {
	t.Helper()
	r, err := dlq.NewReader(topic, dlq.WithClientOpts(kgo.SeedBrokers(seeds...)))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var out []*kgo.Record
	if err := r.Read(context.Background(), dlq.Filter{}, func(rec *dlq.Record) error {
		out = append(out, rec.Record)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func header(rec *kgo.Record, key string) (string, bool) {
	for _, h := range rec.Headers {
		if h.Key == key {
			return string(h.Value), true
		}
	}
	return "", false
}

// mains are the test DLQ's main topics.
var mains = dlq.WithMainTopics("orders", "payments")

func replay(t *testing.T, r *dlq.Reader, f dlq.Filter, opts ...dlq.ReplayOpt) *dlq.ReplaySummary {
	t.Helper()
	sum, err := r.Replay(context.Background(), f, append([]dlq.ReplayOpt{mains}, opts...)...)
	if err != nil {
		t.Fatalf("Replay: %v", err)
	}
	return sum
}

func TestReplayToOriginalTopic(t *testing.T) {
	seeds := newFake(t)
	put(t, seeds, "orders.dlq", fill...)
	r := newReader(t, seeds)
	var events []dlq.ReplayEvent
	var plan dlq.ReplayPlan
	sum := replay(t, r, dlq.Filter{OriginalTopic: "orders"},
		dlq.WithOnStart(func(p dlq.ReplayPlan) { plan = p }),
		dlq.WithOnRecord(func(e dlq.ReplayEvent) { events = append(events, e) }))
	if sum.Replayed != 3 || sum.ByTarget["orders"] != 3 || len(sum.Skips) != 0 || sum.PassedOver != 3 {
		t.Errorf("summary %+v", sum)
	}
	if plan.Records != 3 || plan.ByTarget["orders"] != 3 {
		t.Errorf("plan %+v", plan)
	}
	if len(events) != 3 || events[0].Outcome != dlq.Replayed || events[0].Target != "orders" {
		t.Errorf("events %+v", events)
	}
	got := consumeAll(t, seeds, "orders")
	if len(got) != 3 {
		t.Fatalf("orders holds %d records, want 3", len(got))
	}
	for _, rec := range got {
		// Key, value and user headers unchanged; kretry headers: only kretry-replays.
		i := slices.IndexFunc(fill, func(e entry) bool { return e.value == string(rec.Value) })
		if i < 0 {
			t.Fatalf("unexpected record %q", rec.Value)
		}
		e := fill[i]
		if string(rec.Key) != e.key || rec.Partition != e.p {
			t.Errorf("record %q: key %q partition %d, want %q %d", rec.Value, rec.Key, rec.Partition, e.key, e.p)
		}
		// Key, value and user headers unchanged; kretry headers: the group
		// that failed it, its first delivery, and kretry-replays.
		if users := headers.UserHeaders(rec.Headers); len(users) != 1 || users[0].Key != "trace" || string(users[0].Value) != fmt.Sprintf("t%d", i) {
			t.Errorf("record %q user headers %v", rec.Value, users)
		}
		md, ok, err := headers.Decode(rec.Headers)
		first := testMeta(e.orig, e.p, int64(100+i), "", "")
		if err != nil || !ok || md.Group != first.Group || md.Replays != 1 || md.Attempts != 0 || md.OriginalTopic != "orders" ||
			md.OriginalPartition != e.p || md.OriginalOffset != int64(100+i) || !md.OriginalTimestamp.Equal(first.OriginalTimestamp) || md.Tier != "" {
			t.Errorf("replayed record decodes as %+v %v %v: want one addressed to %s, with its first delivery and Replays 1", md, ok, err, first.Group)
		}
	}
	// The DLQ is untouched.
	if n := len(consumeAll(t, seeds, "orders.dlq")); n != len(fill) {
		t.Errorf("DLQ holds %d records after the replay, want %d", n, len(fill))
	}
}

func TestReplayIsResumable(t *testing.T) {
	seeds := newFake(t)
	put(t, seeds, "orders.dlq", fill...)
	r := newReader(t, seeds)
	f := dlq.Filter{Reasons: []headers.Reason{"permanent", "exhausted", "panic"}} // 5 records, 3 to orders, 2 to payments

	// Limit: 2 now, then the rest.
	lf := f
	lf.Limit = 2
	s1 := replay(t, r, lf)
	if s1.Replayed != 2 || !s1.LimitReached {
		t.Errorf("first replay %+v, want 2 and the limit reached", s1)
	}
	// Interrupted: cancel at the first record of the next run. What was in
	// flight then is seen through and counted, but not more than that.
	ctx, cancel := context.WithCancel(context.Background())
	reported := 0
	s2, err := r.Replay(ctx, f, mains, dlq.WithOnRecord(func(dlq.ReplayEvent) { reported++; cancel() }))
	if !errors.Is(err, context.Canceled) || !s2.Interrupted || s2.Replayed < 1 || s2.Replayed > 2 || s2.Replayed != reported {
		t.Errorf("interrupted replay: %+v, %v, %d reported; want 1 or 2 replayed (the second only if in flight) and interrupted", s2, err, reported)
	}
	s3 := replay(t, r, f)
	if s3.Replayed != 3-s2.Replayed {
		t.Errorf("resumed replay replayed %d, want the %d left", s3.Replayed, 3-s2.Replayed)
	}
	s4 := replay(t, r, f)
	if s4.Replayed != 0 || len(s4.Skips) != 0 {
		t.Errorf("identical replay after it all: %+v, want nothing", s4)
	}
	// Every selected record exactly once.
	var vals []string
	for _, topic := range []string{"orders", "payments"} {
		for _, rec := range consumeAll(t, seeds, topic) {
			vals = append(vals, string(rec.Value))
		}
	}
	slices.Sort(vals)
	if want := []string{"v2", "v4", "v5", "v6", `{"id":17}`}; !slices.Equal(vals, want) {
		t.Errorf("delivered %v, want each of %v once", vals, want)
	}

	// Newly dead-lettered records are what the next identical replay delivers.
	put(t, seeds, "orders.dlq", entry{1, 3 * time.Hour, "k9", headers.ReasonPanic, "orders", "again", "v9"})
	if s := replay(t, r, f); s.Replayed != 1 || s.Resumed[0] != 4 || s.Resumed[1] != 2 || s.Progress[1] != 3 {
		t.Errorf("replay after a new dead letter: %+v", s)
	}

	// Another selection keeps its own progress, in a group of its own.
	u := dlq.Filter{Reasons: []headers.Reason{"unknown"}}
	s5 := replay(t, r, u, dlq.WithTarget("other"))
	if s5.Replayed != 1 || s5.Group == s4.Group || !strings.HasPrefix(s5.Group, "orders.dlq-replay-") || len(s5.Resumed) != 0 {
		t.Errorf("replay of another selection: %+v (the first in %s)", s5, s4.Group)
	}
	if s := replay(t, r, u, dlq.WithTarget("other")); s.Replayed != 0 || len(s.Resumed) != 2 {
		t.Errorf("that selection again: %+v", s)
	}
	s6 := replay(t, r, f, dlq.WithFromStart(true), dlq.WithDryRun(true))
	if s6.Replayed != 6 || len(s6.Resumed) != 0 {
		t.Errorf("dry run from the start: %+v, want 6 that would be replayed", s6)
	}
	// From the start resets that selection only.
	s7 := replay(t, r, u, dlq.WithTarget("other"), dlq.WithFromStart(true))
	if s7.Replayed != 1 {
		t.Errorf("replay from the start of the other selection: %+v", s7)
	}
	if s := replay(t, r, f); s.Replayed != 0 || len(s.Resumed) != 2 {
		t.Errorf("the first selection after a from-start of the other: %+v, want its progress kept", s)
	}
}

func TestReplayDryRunProducesNothing(t *testing.T) {
	seeds := newFake(t)
	put(t, seeds, "orders.dlq", fill...)
	r := newReader(t, seeds)
	var outcomes []dlq.Outcome
	sum := replay(t, r, dlq.Filter{}, dlq.WithDryRun(true), dlq.WithOnRecord(func(e dlq.ReplayEvent) { outcomes = append(outcomes, e.Outcome) }))
	if sum.Replayed != 5 || sum.Skipped(dlq.SkippedNoTarget) != 1 || len(sum.Progress) != 0 {
		t.Errorf("dry run summary %+v", sum)
	}
	if outcomes[0] != dlq.WouldReplay {
		t.Errorf("dry run outcomes %v", outcomes)
	}
	for _, topic := range []string{"orders", "payments"} {
		if n := len(consumeAll(t, seeds, topic)); n != 0 {
			t.Errorf("dry run wrote %d records to %s", n, topic)
		}
	}
	// It committed nothing: a real replay after it does all the work.
	if s := replay(t, r, dlq.Filter{}); s.Replayed != 5 || len(s.Resumed) != 0 {
		t.Errorf("replay after a dry run: %+v", s)
	}
}

func TestReplayGuards(t *testing.T) {
	seeds := newFake(t)
	// k1 replayed 3 times already, k2 twice, k3 unreadable kretry headers.
	put(t, seeds, "orders.dlq",
		entry{0, 0, "k1", headers.ReasonPermanent, "orders", "e", "v1"},
		entry{0, time.Minute, "k2", headers.ReasonPermanent, "orders", "e", "v2"},
	)
	cl := producer(t, seeds)
	md := testMeta("orders", 0, 5, headers.ReasonPermanent, "e")
	md.Replays = 3
	hs := headers.Encode(nil, md)
	md.Replays = 2
	hs2 := headers.Encode(nil, md)
	bad := headers.Encode(nil, testMeta("orders", 0, 6, headers.ReasonPermanent, "e"))
	bad[2].Value = []byte("-1") // kretry-attempts
	bad[6].Value = []byte("x")  // kretry-original-partition: no original topic to replay to
	for i, h := range [][]kgo.RecordHeader{hs, hs2, bad} {
		rec := &kgo.Record{Topic: "orders.dlq", Partition: 1, Key: []byte("g" + strconv.Itoa(i)), Value: []byte("g" + strconv.Itoa(i)), Headers: h}
		if err := cl.ProduceSync(context.Background(), rec).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	r := newReader(t, seeds)

	s := replay(t, r, dlq.Filter{Partitions: []int32{1}}, dlq.WithDryRun(true))
	if s.Replayed != 1 || s.Skipped(dlq.SkippedMaxReplays) != 1 || s.Skipped(dlq.SkippedNoTarget) != 1 {
		t.Errorf("default max replays 3: %+v", s)
	}
	if sk := s.Skips[0]; sk.Partition != 1 || sk.Offset != 0 || sk.Why != dlq.SkippedMaxReplays || sk.Replays != 3 {
		t.Errorf("skip %+v", sk)
	}
	s = replay(t, r, dlq.Filter{Partitions: []int32{1}}, dlq.WithDryRun(true), dlq.WithMaxReplays(2))
	if s.Replayed != 0 || s.Skipped(dlq.SkippedMaxReplays) != 2 {
		t.Errorf("max replays 2: %+v", s)
	}
	s = replay(t, r, dlq.Filter{Partitions: []int32{1}}, dlq.WithMaxReplays(2), dlq.WithForce(true))
	if s.Replayed != 2 {
		t.Errorf("forced: %+v", s)
	}
	var replays []string
	for _, rec := range consumeAll(t, seeds, "orders") {
		v, _ := header(rec, headers.HeaderReplays)
		replays = append(replays, v)
	}
	if !slices.Equal(replays, []string{"4", "3"}) {
		t.Errorf("kretry-replays of the forced records %v, want [4 3]", replays)
	}
	// The record whose original cannot be read goes only with a target.
	s = replay(t, r, dlq.Filter{Partitions: []int32{1}, Key: "g2"}, dlq.WithTarget("other"), dlq.WithGroup("g2"))
	if s.Replayed != 1 {
		t.Errorf("unreadable original with a target: %+v", s)
	}
	if _, err := r.Replay(context.Background(), dlq.Filter{}, mains, dlq.WithMaxReplays(0)); err == nil {
		t.Errorf("max replays 0 accepted")
	}
	for _, rate := range []float64{math.NaN(), math.Inf(1), 1e-300, -1} {
		if _, err := r.Replay(context.Background(), dlq.Filter{}, mains, dlq.WithRate(rate)); err == nil || !strings.Contains(err.Error(), "at least") {
			t.Errorf("rate %g: %v, want an error", rate, err)
		}
	}
	if _, err := r.Replay(context.Background(), dlq.Filter{}); err == nil || !strings.Contains(err.Error(), "WithMainTopics") {
		t.Errorf("a replay without main topics or a target: %v", err)
	}
	if _, err := r.Replay(context.Background(), dlq.Filter{}, dlq.WithTarget("orders.dlq")); err == nil {
		t.Errorf("a replay into the DLQ itself accepted")
	}
}

func TestReplayMissingTargetProducesNothing(t *testing.T) {
	seeds := newFake(t)
	put(t, seeds, "orders.dlq", fill...)
	put(t, seeds, "orders.dlq", entry{1, time.Hour, "x", headers.ReasonPanic, "gone", "e", "vx"})
	r := newReader(t, seeds)
	_, err := r.Replay(context.Background(), dlq.Filter{}, dlq.WithMainTopics("orders", "payments", "gone"))
	if !errors.Is(err, dlq.ErrUnknownTopic) {
		t.Fatalf("replay with a missing target: %v, want ErrUnknownTopic", err)
	}
	for _, topic := range []string{"orders", "payments"} {
		if n := len(consumeAll(t, seeds, topic)); n != 0 {
			t.Errorf("a replay with a missing target wrote %d records to %s first", n, topic)
		}
	}
	if s := replay(t, r, dlq.Filter{}, dlq.WithTarget("other")); s.Replayed != 7 {
		t.Errorf("with --to: %+v", s)
	}
}

func TestReplayRate(t *testing.T) {
	seeds := newFake(t)
	put(t, seeds, "orders.dlq", fill...)
	r := newReader(t, seeds)
	ctx, cancel := context.WithCancel(context.Background())
	n := 0
	// One record a minute: the second waits on the limiter, and cancelling
	// there stops the replay with nothing in flight.
	s, err := r.Replay(ctx, dlq.Filter{}, dlq.WithTarget("other"), dlq.WithRate(1.0/60),
		dlq.WithOnRecord(func(dlq.ReplayEvent) {
			n++
			go cancel()
		}))
	if !errors.Is(err, context.Canceled) || s.Replayed != 1 || n != 1 {
		t.Errorf("rate-limited replay cancelled while waiting: %+v, %v", s, err)
	}
	if s := replay(t, r, dlq.Filter{}, dlq.WithTarget("other")); s.Replayed != 5 {
		t.Errorf("resumed after the cancel: %+v", s)
	}
}

// A produce the broker refuses stops the replay with an error that names the
// record; the progress of its partition stays before it, so the next run
// replays it (and what was acknowledged behind it), and loses nothing.
func TestReplayRefusedProduce(t *testing.T) {
	fake, seeds := kafkatest.Fake(t, kfake.NumBrokers(1), kfake.SeedTopics(2, "orders.dlq", "orders", "payments", "other"))
	put(t, seeds, "orders.dlq", fill...)
	var mu sync.Mutex
	refusing := true
	fake.ControlKey(int16(kmsg.Produce), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		fake.KeepControl()
		req := kreq.(*kmsg.ProduceRequest)
		mu.Lock()
		defer mu.Unlock()
		for _, rt := range req.Topics {
			for _, rp := range rt.Partitions {
				if refusing && rp.Partition == 1 { // only the replay produces now; to "other" (named by ID)
					return kafkatest.RefuseProduce(req, kerr.InvalidRecord.Code), nil, true
				}
			}
		}
		return nil, nil, false
	})
	r := newReader(t, seeds)
	s, err := r.Replay(context.Background(), dlq.Filter{}, dlq.WithTarget("other"))
	if err == nil || !errors.Is(err, kerr.InvalidRecord) || !strings.Contains(err.Error(), "orders.dlq partition 1 offset 0 to other") {
		t.Fatalf("replay with a refused produce: %+v, %v; want an error naming orders.dlq partition 1 offset 0", s, err)
	}
	// Partition 0 (read first) is done; partition 1 has no progress.
	if s.Progress[0] != 4 || s.Replayed != 4 {
		t.Errorf("after the refusal: %+v, want partition 0's 4 records replayed and committed, nothing of partition 1", s)
	}
	if _, ok := s.Progress[1]; ok {
		t.Errorf("progress of partition 1 passed a refused record: %v", s.Progress)
	}

	mu.Lock()
	refusing = false
	mu.Unlock()
	s = replay(t, r, dlq.Filter{}, dlq.WithTarget("other"))
	if s.Replayed != 2 || s.Progress[1] != 2 || s.Resumed[0] != 4 {
		t.Errorf("the next run: %+v, want partition 1's 2 records", s)
	}
	var vals []string
	for _, rec := range consumeAll(t, seeds, "other") {
		vals = append(vals, string(rec.Value))
	}
	slices.Sort(vals)
	if want := []string{"v2", "v3", "v4", "v5", "v6", `{"id":17}`}; !slices.Equal(vals, want) {
		t.Errorf("other holds %v, want each of %v once", vals, want)
	}
}

// On a new cluster the group coordinator is not there at first (the offsets
// topic is being created), and anywhere it may be loading or moving: a
// replay waits for it rather than fail.
func TestReplayWaitsForTheCoordinator(t *testing.T) {
	fake, seeds := kafkatest.Fake(t, kfake.NumBrokers(1), kfake.SeedTopics(2, "orders.dlq", "orders", "payments", "other"))
	put(t, seeds, "orders.dlq", fill...)
	var refused atomic.Int32
	fake.ControlKey(int16(kmsg.FindCoordinator), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		fake.KeepControl()
		if refused.Load() >= 3 {
			return nil, nil, false
		}
		refused.Add(1)
		req := kreq.(*kmsg.FindCoordinatorRequest)
		resp := req.ResponseKind().(*kmsg.FindCoordinatorResponse)
		resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
		for _, k := range append(req.CoordinatorKeys, req.CoordinatorKey) {
			c := kmsg.NewFindCoordinatorResponseCoordinator()
			c.Key, c.ErrorCode = k, kerr.CoordinatorNotAvailable.Code
			resp.Coordinators = append(resp.Coordinators, c)
		}
		return resp, nil, true
	})
	r := newReader(t, seeds)
	if s := replay(t, r, dlq.Filter{}, dlq.WithTarget("other")); s.Replayed != 6 || s.Progress[0] != 4 || s.Progress[1] != 2 {
		t.Errorf("replay while the coordinator was not available: %+v", s)
	}
	if n := refused.Load(); n != 3 {
		t.Errorf("the coordinator was refused %d times, want 3", n)
	}
}

// A record whose kretry-original-topic names a topic that is not a main
// topic (another service's, or no topic name at all) is skipped and
// reported with its partition/offset; the run goes on, dry or not.
func TestReplayOnlyToMainTopics(t *testing.T) {
	seeds := newFake(t)
	put(t, seeds, "orders.dlq",
		entry{0, 0, "k1", headers.ReasonPermanent, "orders", "e", "v1"},
		entry{0, time.Minute, "k2", headers.ReasonPermanent, "other", "e", "v2"},
		entry{0, 2 * time.Minute, "k3", headers.ReasonPermanent, "../../etc/passwd\x1b[2J", "e", "v3"},
		entry{0, 3 * time.Minute, "k4", headers.ReasonPermanent, "orders", "e", "v4"},
	)
	r := newReader(t, seeds)
	for _, dry := range []bool{true, false} {
		s := replay(t, r, dlq.Filter{}, dlq.WithDryRun(dry))
		if s.Replayed != 2 || s.Skipped(dlq.SkippedNotMainTopic) != 2 || len(s.Skips) != 2 {
			t.Fatalf("dry run %v: %+v", dry, s)
		}
		if sk := s.Skips[1]; sk.Partition != 0 || sk.Offset != 2 || sk.Detail != `../../etc/passwd\x1b[2J` {
			t.Errorf("dry run %v: skip %+v", dry, sk)
		}
	}
	if n := len(consumeAll(t, seeds, "other")); n != 0 {
		t.Errorf("a record naming other, not a main topic, was replayed there (%d records)", n)
	}
	if n := len(consumeAll(t, seeds, "orders")); n != 2 {
		t.Errorf("orders holds %d records, want 2", n)
	}
}
