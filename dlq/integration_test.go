//go:build integration

package dlq_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/config"
	"github.com/kretry/kretry/consumer"
	"github.com/kretry/kretry/dlq"
	"github.com/kretry/kretry/headers"
	"github.com/kretry/kretry/internal/dlqview"
	"github.com/kretry/kretry/internal/kafkatest"
	"github.com/kretry/kretry/relay"
)

// pipeline is a main topic with its ladder and DLQ on the real broker, and
// what the consumer's handler saw.
type pipeline struct {
	t      *testing.T
	seeds  []string
	cfg    *config.Config
	main   string
	dlq    string
	adm    *kadm.Client
	mu     sync.Mutex
	seen   map[string]int // value → times handled successfully
	failOn func(rec *kgo.Record) error
}

func newPipeline(t *testing.T) *pipeline {
	t.Helper()
	seeds := kafkatest.Brokers(t)
	main := kafkatest.Name(t, "orders")
	yaml := fmt.Sprintf(`brokers: [%q]
group: %s
topics:
  - name: %s
    tiers:
      - delay: 1s
`, strings.Join(seeds, ","), main+"-svc", main)
	cfg, err := config.Parse([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	adm := kadm.NewClient(cl)
	p := &pipeline{t: t, seeds: seeds, cfg: cfg, main: main, dlq: cfg.Topics[0].DLQ, adm: adm, seen: map[string]int{}}
	topics := []string{main, main + ".retry-1s", p.dlq}
	resp, err := adm.CreateTopics(context.Background(), 3, 1, nil, topics...)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		t.Fatalf("creating %v: %v", topics, err)
	}
	t.Cleanup(func() { _, _ = adm.DeleteTopics(context.Background(), topics...) })
	kafkatest.WaitTopics(t, adm, topics...) // a consumer started next must find them
	return p
}

// produce writes records to the main topic: key order-i, value "i".
func (p *pipeline) produce(from, to int) {
	p.t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(p.seeds...))
	if err != nil {
		p.t.Fatal(err)
	}
	defer cl.Close()
	var recs []*kgo.Record
	for i := from; i < to; i++ {
		recs = append(recs, &kgo.Record{Topic: p.main, Key: []byte("order-" + strconv.Itoa(i)), Value: []byte(strconv.Itoa(i)),
			Headers: []kgo.RecordHeader{{Key: "trace-id", Value: []byte("trace-" + strconv.Itoa(i))}}})
	}
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		p.t.Fatal(err)
	}
}

// run runs the real consumer until it has committed everything on the main
// topic and until done() holds, then stops it.
func (p *pipeline) run(done func() bool) {
	p.t.Helper()
	ladders, err := p.cfg.Ladders()
	if err != nil {
		p.t.Fatal(err)
	}
	relay, err := relay.New(ladders, relay.WithGroup(p.cfg.Relay.Group),
		relay.WithClientOpts(kgo.SeedBrokers(p.seeds...)))
	if err != nil {
		p.t.Fatal(err)
	}
	c, err := consumer.New(p.cfg, consumer.HandlerFunc(func(ctx context.Context, rec *kgo.Record) error {
		if err := p.failOn(rec); err != nil {
			return err
		}
		p.mu.Lock()
		p.seen[string(rec.Value)]++
		p.mu.Unlock()
		return nil
	}), consumer.WithRelay(false), consumer.WithGracePeriod(time.Second))
	if err != nil {
		p.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 2)
	go func() { errc <- c.Run(ctx) }()
	go func() { errc <- relay.Run(ctx) }()
	deadline := time.Now().Add(2 * time.Minute)
	for !(p.caughtUp() && done()) {
		if time.Now().After(deadline) {
			cancel()
			<-errc
			<-errc
			p.t.Fatalf("the consumer did not catch up with %s within 2 minutes", p.main)
		}
		time.Sleep(100 * time.Millisecond)
	}
	cancel()
	for range 2 {
		if err := <-errc; err != nil && !errors.Is(err, context.Canceled) {
			p.t.Fatalf("consumer or relay Run: %v", err)
		}
	}
}

// caughtUp reports whether the consumer group committed the main topic's end.
func (p *pipeline) caughtUp() bool {
	ends, err := p.adm.ListEndOffsets(context.Background(), p.main)
	if err != nil {
		return false
	}
	committed, err := p.adm.FetchOffsetsForTopics(context.Background(), p.cfg.Group, p.main)
	if err != nil {
		return false
	}
	ok := true
	ends.Each(func(o kadm.ListedOffset) {
		c, found := committed.Lookup(p.main, o.Partition)
		if o.Offset > 0 && (!found || c.At < o.Offset) {
			ok = false
		}
	})
	return ok
}

func (p *pipeline) dlqSize() int64 {
	ends, err := p.adm.ListEndOffsets(context.Background(), p.dlq)
	if err != nil {
		return -1
	}
	var n int64
	ends.Each(func(o kadm.ListedOffset) { n += o.Offset })
	return n
}

// mainRecords returns the main topic's records from offset `after` of each
// partition on (nil: from the start).
func (p *pipeline) mainRecords(after map[int32]int64) []*kgo.Record {
	p.t.Helper()
	r := newReaderOf(p.t, p.seeds, p.main)
	var out []*kgo.Record
	if err := r.Read(context.Background(), dlq.Filter{}, func(rec *dlq.Record) error {
		if rec.Offset >= after[rec.Partition] {
			out = append(out, rec.Record)
		}
		return nil
	}); err != nil {
		p.t.Fatal(err)
	}
	return out
}

func (p *pipeline) mainEnds() map[int32]int64 {
	ends, err := p.adm.ListEndOffsets(context.Background(), p.main)
	if err != nil {
		p.t.Fatal(err)
	}
	out := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) { out[o.Partition] = o.Offset })
	return out
}

func newReaderOf(t *testing.T, seeds []string, topic string) *dlq.Reader {
	t.Helper()
	r, err := dlq.NewReader(topic, dlq.WithClientOpts(kgo.SeedBrokers(seeds...)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r
}

// TestIntegrationReplay fills a DLQ through the real consumer and relay (a
// handler that fails some records permanently, panics on others and fails
// others on every attempt of the 1s tier), then checks
// filters, stats, a dry run, an interrupted and resumed replay, that an
// identical replay delivers nothing, that the consumer handles every replayed
// record once, and the max-replays guard on a record that failed again.
func TestIntegrationReplay(t *testing.T) {
	p := newPipeline(t)
	const n = 40
	// 0-9 not found (permanent), 10-14 panic, 15-19 fail until the ladder
	// is used up, the rest succeed.
	p.failOn = func(rec *kgo.Record) error {
		i, _ := strconv.Atoi(string(rec.Value))
		switch {
		case i < 10:
			return consumer.Permanent(fmt.Errorf("order %d not found in %s", i, "db-"+strconv.Itoa(i%3)))
		case i < 15:
			var m map[string]int
			//lint:ignore SA5000 the handler panics on purpose, as a buggy one would
			m["x"] = i // panics: assignment to entry in nil map
		case i < 20:
			return fmt.Errorf("payments API: 503 Service Unavailable (request %08x-0000-4000-8000-%012d)", i*7919, i)
		}
		return nil
	}
	p.produce(0, n)
	p.run(func() bool { return p.dlqSize() == 20 })
	if got := len(p.seen); got != 20 {
		t.Fatalf("handled %d records, want 20", got)
	}
	ctx := context.Background()
	r := newReaderOf(t, p.seeds, p.dlq)

	// Filters select the right records.
	count := func(f dlq.Filter) (keys []string) {
		t.Helper()
		if err := r.Read(ctx, f, func(rec *dlq.Record) error {
			keys = append(keys, string(rec.Key))
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		slices.Sort(keys)
		return keys
	}
	if got := count(dlq.Filter{Reasons: []headers.Reason{"permanent"}}); len(got) != 10 {
		t.Errorf("reason permanent: %v", got)
	}
	if got := count(dlq.Filter{Reasons: []headers.Reason{"panic"}}); !slices.Equal(got, []string{"order-10", "order-11", "order-12", "order-13", "order-14"}) {
		t.Errorf("reason panic: %v", got)
	}
	if got := count(dlq.Filter{ErrorContains: "IN DB-1"}); !slices.Equal(got, []string{"order-1", "order-4", "order-7"}) {
		t.Errorf("error contains: %v", got)
	}
	if got := count(dlq.Filter{Key: "order-3"}); len(got) != 1 {
		t.Errorf("key: %v", got)
	}
	if got := count(dlq.Filter{Reasons: []headers.Reason{"exhausted"}}); !slices.Equal(got, []string{"order-15", "order-16", "order-17", "order-18", "order-19"}) {
		t.Errorf("reason exhausted: %v", got)
	}
	if got := count(dlq.Filter{OriginalTopic: p.main}); len(got) != 20 {
		t.Errorf("original topic: %v", got)
	}
	if got := count(dlq.Filter{OriginalTopic: "elsewhere"}); len(got) != 0 {
		t.Errorf("original topic elsewhere: %v", got)
	}
	since, _ := dlq.ParseTimeBound("10m")
	until, _ := dlq.ParseTimeBound("1h")
	if got := count(dlq.Filter{Since: since}); len(got) != 20 {
		t.Errorf("since 10m: %v", got)
	}
	if got := count(dlq.Filter{Until: until}); len(got) != 0 {
		t.Errorf("until 1h ago: %v", got)
	}
	perPartition := 0
	for part := int32(0); part < 3; part++ {
		perPartition += len(count(dlq.Filter{Partitions: []int32{part}}))
	}
	if perPartition != 20 {
		t.Errorf("partitions add up to %d", perPartition)
	}
	if got := count(dlq.Filter{Offsets: dlq.OffsetRange{From: 0, To: 0, HasTo: true}}); len(got) != 3 {
		t.Errorf("offset 0 of each partition: %v", got)
	}

	// Stats add up.
	st, err := r.Stats(ctx, dlq.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	sum := func(cs []dlq.Count) (n int) {
		for _, c := range cs {
			n += c.Count
		}
		return n
	}
	if st.Total != 20 || sum(st.Reasons()) != 20 || sum(st.OriginalTopics()) != 20 || sum(st.Errors()) != 20 || sum(statsHours(st)) != 20 {
		t.Errorf("stats do not add up: %+v", st)
	}
	if st.ByReason["permanent"] != 10 || st.ByReason["panic"] != 5 || st.ByError["order <n> not found in db-<n>"] != 10 ||
		st.ByError["panic: assignment to entry in nil map"] != 5 || st.ByReason["exhausted"] != 5 ||
		st.ByError["payments API: <n> Service Unavailable (request <uuid>)"] != 5 {
		t.Errorf("stats: %+v", st)
	}

	// A dry run produces nothing.
	before := p.mainEnds()
	mains := dlq.WithMainTopics(p.main)
	s, err := r.Replay(ctx, dlq.Filter{}, mains, dlq.WithDryRun(true))
	if err != nil || s.Replayed != 20 {
		t.Fatalf("dry run: %+v %v", s, err)
	}
	if after := p.mainEnds(); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("a dry run wrote to %s: end offsets %v, then %v", p.main, before, after)
	}

	// An interrupted replay: cancelled after 4 acknowledged records. The
	// records in flight then are seen through, reported and committed.
	cctx, cancel := context.WithCancel(ctx)
	acked := 0
	s, err = r.Replay(cctx, dlq.Filter{}, mains, dlq.WithOnRecord(func(e dlq.ReplayEvent) {
		if acked++; acked == 4 {
			cancel()
		}
	}))
	if !errors.Is(err, context.Canceled) || s.Replayed < 4 || s.Replayed != acked || !s.Interrupted {
		t.Fatalf("interrupted replay: %+v %v (%d reported)", s, err, acked)
	}
	first := s.Replayed
	// Then with a limit, then the rest.
	s, err = r.Replay(ctx, dlq.Filter{Limit: 5}, mains)
	if err != nil || s.Replayed != 5 || !s.LimitReached {
		t.Fatalf("replay with a limit: %+v %v", s, err)
	}
	s, err = r.Replay(ctx, dlq.Filter{}, mains)
	if err != nil || s.Replayed != 20-first-5 {
		t.Fatalf("resumed replay: %+v %v", s, err)
	}
	// An identical second replay delivers nothing.
	s, err = r.Replay(ctx, dlq.Filter{}, mains)
	if err != nil || s.Replayed != 0 || len(s.Resumed) != 3 {
		t.Fatalf("identical second replay: %+v %v", s, err)
	}

	// Every DLQ record reached the main topic exactly once, as it was,
	// addressed to the group that failed it, with its first delivery and
	// kretry-replays 1.
	replayed := p.mainRecords(before)
	var vals []string
	for _, rec := range replayed {
		vals = append(vals, string(rec.Value))
		i, _ := strconv.Atoi(string(rec.Value))
		md, ok, err := headers.Decode(rec.Headers)
		if err != nil || !ok || md.Group != p.cfg.Group || md.Replays != 1 || md.Attempts != 0 || md.OriginalTopic != p.main || md.OriginalOffset >= before[md.OriginalPartition] {
			t.Errorf("replayed record %s: kretry headers %+v %v %v", rec.Value, md, ok, err)
		}
		if users := headers.UserHeaders(rec.Headers); string(rec.Key) != "order-"+strconv.Itoa(i) || len(users) != 1 || string(users[0].Value) != "trace-"+strconv.Itoa(i) {
			t.Errorf("replayed record %s: key %s headers %v", rec.Value, rec.Key, rec.Headers)
		}
	}
	slices.SortFunc(vals, func(a, b string) int { x, _ := strconv.Atoi(a); y, _ := strconv.Atoi(b); return x - y })
	want := make([]string, 20)
	for i := range want {
		want[i] = strconv.Itoa(i)
	}
	if !slices.Equal(vals, want) {
		t.Fatalf("replayed to %s: %v, want each of %v once", p.main, vals, want)
	}

	// The consumer now succeeds, except on order-3, which fails again.
	p.failOn = func(rec *kgo.Record) error {
		if string(rec.Key) == "order-3" {
			return consumer.Permanent(errors.New("order 3 still not found"))
		}
		return nil
	}
	p.run(func() bool { return p.dlqSize() == 21 })
	for i := range 20 {
		want := 1
		if i == 3 {
			want = 0
		}
		if got := p.seen[strconv.Itoa(i)]; got != want {
			t.Errorf("record %d handled %d times after the replay, want %d", i, got, want)
		}
	}

	// The record that failed again shows its first delivery as ORIGINAL,
	// not the replayed copy.
	o3, err := r.List(ctx, dlq.Filter{Key: "order-3"})
	if err != nil || len(o3) != 2 || !o3[0].HasMeta || !o3[1].HasMeta || o3[1].Meta.OriginalOffset != o3[0].Meta.OriginalOffset ||
		o3[1].Meta.OriginalPartition != o3[0].Meta.OriginalPartition || !o3[1].Meta.OriginalTimestamp.Equal(o3[0].Meta.OriginalTimestamp) ||
		o3[1].Meta.Attempts != 1 || o3[1].Meta.Replays != 1 {
		t.Errorf("order-3 dead-lettered again: %v %+v, want its first delivery kept, attempts 1, replays 1", err, o3)
	}

	// The record that failed again carries kretry-replays 1: with
	// --max-replays 1 it is skipped, with --force it goes.
	s, err = r.Replay(ctx, dlq.Filter{}, mains, dlq.WithMaxReplays(1))
	if err != nil || s.Replayed != 0 || s.Skipped(dlq.SkippedMaxReplays) != 1 {
		t.Fatalf("max-replays 1: %+v %v", s, err)
	}
	mid := p.mainEnds()
	s, err = r.Replay(ctx, dlq.Filter{Key: "order-3"}, mains, dlq.WithMaxReplays(1), dlq.WithForce(true), dlq.WithGroup(p.dlq+"-forced"))
	if err != nil || s.Replayed != 2 {
		// Both DLQ records of order-3 (replays 0 and 1): a new group starts from the oldest.
		t.Fatalf("forced: %+v %v", s, err)
	}
	var reps []string
	for _, rec := range p.mainRecords(mid) {
		v, _ := header(rec, headers.HeaderReplays)
		reps = append(reps, v)
	}
	slices.Sort(reps)
	if !slices.Equal(reps, []string{"1", "2"}) {
		t.Errorf("forced replays carry kretry-replays %v, want [1 2]", reps)
	}

	// --from-start deletes the group's progress: the panics go again, once.
	mid = p.mainEnds()
	s, err = r.Replay(ctx, dlq.Filter{Reasons: []headers.Reason{"panic"}}, mains, dlq.WithFromStart(true))
	if err != nil || s.Replayed != 5 {
		t.Fatalf("from start: %+v %v", s, err)
	}
	if got := len(p.mainRecords(mid)); got != 5 {
		t.Errorf("from start wrote %d records, want 5", got)
	}
	s, err = r.Replay(ctx, dlq.Filter{Reasons: []headers.Reason{"panic"}}, mains)
	if err != nil || s.Replayed != 0 {
		t.Fatalf("identical replay after from start: %+v %v", s, err)
	}
	// The replay of every record kept its progress.
	if s, err := r.Replay(ctx, dlq.Filter{}, mains); err != nil || s.Replayed != 0 || len(s.Resumed) != 3 {
		t.Errorf("the replay of every record after a from-start of another selection: %+v %v", s, err)
	}
}

func statsHours(s *dlq.Stats) []dlq.Count {
	var out []dlq.Count
	for _, h := range s.Hours() {
		out = append(out, dlq.Count{Value: h.Hour.String(), Count: h.Count})
	}
	return out
}

// TestIntegrationReplayPipelined replays more records than a replay keeps
// in flight, on the real broker: interrupted half way, then resumed. Every
// record reaches its original partition once, each partition in DLQ order,
// the outcomes are reported in DLQ order, and the committed progress is what
// the summaries say.
func TestIntegrationReplayPipelined(t *testing.T) {
	seeds := kafkatest.Brokers(t)
	main := kafkatest.Name(t, "orders")
	dq := main + ".dlq"
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	adm := kadm.NewClient(cl)
	ctx := context.Background()
	if resp, err := adm.CreateTopics(ctx, 3, 1, nil, main, dq); err != nil || resp.Error() != nil {
		t.Fatalf("creating %s, %s: %v %v", main, dq, err, resp.Error())
	}
	t.Cleanup(func() { _, _ = adm.DeleteTopics(context.Background(), main, dq) })

	const n = 6000 // two partitions of 2,000 each are more than the 1,000 in flight
	var recs []*kgo.Record
	at := time.Now().Add(-time.Hour)
	for i := range n {
		p := int32(i % 3)
		md := headers.Metadata{Group: "svc", Attempts: 3, Tier: "retry-1s", DueAt: at, OriginalTopic: main, OriginalPartition: p,
			OriginalOffset: int64(i / 3), OriginalTimestamp: at, FirstFailureAt: at, LastFailureAt: at, Error: "boom", Reason: headers.ReasonExhausted}
		recs = append(recs, &kgo.Record{Topic: dq, Partition: p, Key: []byte("order-" + strconv.Itoa(i)), Value: []byte(strconv.Itoa(i)),
			Headers: headers.Encode([]kgo.RecordHeader{{Key: "trace-id", Value: []byte("t" + strconv.Itoa(i))}}, md)})
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	r := newReaderOf(t, seeds, dq)

	// Reported outcomes come in DLQ order, each partition's offsets rising.
	last := map[int32]int64{}
	inOrder := func(e dlq.ReplayEvent) {
		if prev, ok := last[e.Record.Partition]; ok && e.Record.Offset != prev+1 {
			t.Errorf("reported %s partition %d offset %d after offset %d", dq, e.Record.Partition, e.Record.Offset, prev)
		}
		last[e.Record.Partition] = e.Record.Offset
		if e.Outcome != dlq.Replayed || e.Partition != e.Record.Partition || e.Offset < 0 {
			t.Errorf("record %d/%d: %v to partition %d offset %d, want replayed to its original partition", e.Record.Partition, e.Record.Offset, e.Outcome, e.Partition, e.Offset)
		}
	}
	cctx, cancel := context.WithCancel(ctx)
	reported := 0
	s1, err := r.Replay(cctx, dlq.Filter{}, dlq.WithMainTopics(main), dlq.WithOnRecord(func(e dlq.ReplayEvent) {
		inOrder(e)
		if reported++; reported == 2500 {
			cancel()
		}
	}))
	if !errors.Is(err, context.Canceled) || !s1.Interrupted || s1.Replayed < 2500 || s1.Replayed != reported {
		t.Fatalf("interrupted replay: %+v, %v, %d reported", s1, err, reported)
	}
	checkProgress := func(s *dlq.ReplaySummary) {
		t.Helper()
		committed, err := adm.FetchOffsetsForTopics(ctx, dq+"-replay", dq)
		if err != nil {
			t.Fatal(err)
		}
		total := int64(0)
		for p := range int32(3) {
			o, _ := committed.Lookup(dq, p)
			if want, ok := s.Progress[p]; ok && o.At != want {
				t.Errorf("partition %d: committed %d, the summary says %d", p, o.At, want)
			}
			total += max(o.At, 0)
		}
		if total != int64(reported) {
			t.Errorf("committed progress covers %d records, %d were reported replayed", total, reported)
		}
	}
	checkProgress(s1)

	s2, err := r.Replay(ctx, dlq.Filter{}, dlq.WithMainTopics(main), dlq.WithOnRecord(func(e dlq.ReplayEvent) { inOrder(e); reported++ }))
	if err != nil || s2.Replayed != n-s1.Replayed || len(s2.Resumed) == 0 {
		t.Fatalf("resumed replay: %+v, %v; want the %d left", s2, err, n-s1.Replayed)
	}
	checkProgress(s2)

	// Each record once, on its original partition, in DLQ order there.
	seen := map[int]bool{}
	prev := map[int32]int{0: -1, 1: -1, 2: -1}
	for _, rec := range consumeAll(t, seeds, main) {
		i, err := strconv.Atoi(string(rec.Value))
		if err != nil || seen[i] || int32(i%3) != rec.Partition || i <= prev[rec.Partition] {
			t.Fatalf("%s partition %d offset %d holds %q (after %d; seen before: %v)", main, rec.Partition, rec.Offset, rec.Value, prev[rec.Partition], seen[i])
		}
		seen[i], prev[rec.Partition] = true, i
		if md, ok, err := headers.Decode(rec.Headers); err != nil || !ok || md.Replays != 1 || md.Group != "svc" || md.OriginalOffset != int64(i/3) || string(rec.Key) != "order-"+strconv.Itoa(i) {
			t.Errorf("record %d: key %s, kretry headers %+v %v %v", i, rec.Key, md, ok, err)
		}
	}
	if len(seen) != n {
		t.Fatalf("%s holds %d distinct records, want %d", main, len(seen), n)
	}
}

// TestIntegrationReplayGoesBackToTheFailingGroup: two kretry groups read one
// main topic and share its DLQ. A record group A failed is replayed: group A
// handles it again, group B, which handled it fine, commits past it without
// running its handler. Replay selects the failing group's records only.
func TestIntegrationReplayGoesBackToTheFailingGroup(t *testing.T) {
	p := newPipeline(t) // group A: p.cfg.Group
	cfgB := *p.cfg
	cfgB.Group = p.cfg.Group + "-b"
	var mu sync.Mutex
	seenB := map[string]int{}
	failB := true
	b, err := consumer.New(&cfgB, consumer.HandlerFunc(func(ctx context.Context, rec *kgo.Record) error {
		mu.Lock()
		defer mu.Unlock()
		if failB && string(rec.Value) == "1" {
			return consumer.Permanent(errors.New("B refuses 1"))
		}
		seenB[string(rec.Value)]++
		return nil
	}), consumer.WithRelay(false), consumer.WithGracePeriod(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errB := make(chan error, 1)
	go func() { errB <- b.Run(ctx) }()
	stopB := func() {
		cancel()
		if err := <-errB; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("group B Run: %v", err)
		}
	}
	defer func() {
		if ctx.Err() == nil {
			stopB()
		}
	}()

	// A fails 0 permanently; B fails 1. The DLQ gets one record of each group.
	p.failOn = func(rec *kgo.Record) error {
		if string(rec.Value) == "0" {
			return consumer.Permanent(errors.New("A refuses 0"))
		}
		return nil
	}
	p.produce(0, 3)
	p.run(func() bool { return p.dlqSize() == 2 })
	mu.Lock()
	failB = false
	mu.Unlock()
	r := newReaderOf(t, p.seeds, p.dlq)
	for _, g := range []string{p.cfg.Group, cfgB.Group} {
		if recs, err := r.List(ctx, dlq.Filter{FailedGroup: g}); err != nil || len(recs) != 1 {
			t.Fatalf("--failed-group %s: %d records, %v; want 1", g, len(recs), err)
		}
	}

	// A replay of group A's records replays 0 only.
	before := p.mainEnds()
	s, err := r.Replay(ctx, dlq.Filter{FailedGroup: p.cfg.Group}, dlq.WithMainTopics(p.main))
	if err != nil || s.Replayed != 1 || s.PassedOver != 1 {
		t.Fatalf("replay of group A's records: %+v %v", s, err)
	}
	// Wait until B has gone past the replayed record, then run A.
	kafkatest.WaitFor(t, "group B to commit past the replayed record", 100*time.Millisecond, time.Minute, func() bool {
		committed, err := p.adm.FetchOffsetsForTopics(ctx, cfgB.Group, p.main)
		if err != nil {
			return false
		}
		ends := p.mainEnds()
		for part, end := range ends {
			if end > before[part] {
				if o, ok := committed.Lookup(p.main, part); !ok || o.At < end {
					return false
				}
			}
		}
		return true
	})
	p.failOn = func(*kgo.Record) error { return nil }
	p.run(func() bool { return p.seen["0"] == 1 })
	stopB()
	mu.Lock()
	defer mu.Unlock()
	if seenB["0"] != 1 || seenB["2"] != 1 || seenB["1"] != 0 {
		t.Errorf("group B handled %v: want 0 and 2 once (the replay of 0 is group A's), 1 never", seenB)
	}
	if p.seen["0"] != 1 || p.seen["1"] != 1 || p.seen["2"] != 1 {
		t.Errorf("group A handled %v: want each once", p.seen)
	}
}

// TestIntegrationReplayTooLarge: a DLQ record dead-lettered as too-large
// holds no value; replay reads it from the main topic at its original
// partition/offset (2 MiB, more than franz-go's default batch limit) and
// replays it; one whose original is gone is skipped and reported, and the
// run goes on.
func TestIntegrationReplayTooLarge(t *testing.T) {
	seeds := kafkatest.Brokers(t)
	main := kafkatest.Name(t, "orders")
	dq := main + ".dlq"
	const limit = 3 << 20
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerBatchMaxBytes(limit))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	adm := kadm.NewClient(cl)
	ctx := context.Background()
	big := fmt.Sprint(limit)
	if resp, err := adm.CreateTopics(ctx, 2, 1, map[string]*string{"max.message.bytes": &big}, main); err != nil || resp.Error() != nil {
		t.Fatalf("creating %s: %v %v", main, err, resp.Error())
	}
	if resp, err := adm.CreateTopics(ctx, 2, 1, nil, dq); err != nil || resp.Error() != nil {
		t.Fatalf("creating %s: %v %v", dq, err, resp.Error())
	}
	t.Cleanup(func() { _, _ = adm.DeleteTopics(context.Background(), main, dq) })

	value := []byte(strings.Repeat("x", 2<<20))
	orig := &kgo.Record{Topic: main, Partition: 1, Key: []byte("big"), Value: value}
	if err := cl.ProduceSync(ctx, orig).FirstErr(); err != nil {
		t.Fatal(err)
	}
	at := time.Now().Add(-time.Minute).Truncate(time.Millisecond)
	md := func(offset int64) headers.Metadata {
		return headers.Metadata{Group: "svc", Attempts: 1, Tier: "dlq", DueAt: at, OriginalTopic: main, OriginalPartition: 1,
			OriginalOffset: offset, OriginalTimestamp: at, FirstFailureAt: at, LastFailureAt: at,
			Error: "MESSAGE_TOO_LARGE", Reason: headers.ReasonTooLarge}
	}
	for _, rec := range []*kgo.Record{
		{Topic: dq, Partition: 0, Key: []byte("big"), Headers: headers.Encode(nil, md(orig.Offset))},
		{Topic: dq, Partition: 0, Key: []byte("gone"), Headers: headers.Encode(nil, md(orig.Offset+100))},
	} {
		if err := cl.ProduceSync(ctx, rec).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	r := newReaderOf(t, seeds, dq)

	rec, err := r.Record(ctx, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var show strings.Builder
	_ = dlqview.WriteRecord(&show, rec)
	if want := fmt.Sprintf("value in             %s partition 1 offset %d", main, orig.Offset); rec.Reason != headers.ReasonTooLarge || !strings.Contains(show.String(), want) {
		t.Errorf("show of a too-large record lacks %q:\n%s", want, show.String())
	}

	s, err := r.Replay(ctx, dlq.Filter{}, dlq.WithMainTopics(main), dlq.WithDryRun(true))
	if err != nil || s.Replayed != 1 || s.Skipped(dlq.SkippedValueGone) != 1 {
		t.Fatalf("dry run: %+v %v", s, err)
	}
	s, err = r.Replay(ctx, dlq.Filter{}, dlq.WithMainTopics(main))
	if err != nil || s.Replayed != 1 || s.Skipped(dlq.SkippedValueGone) != 1 || s.Progress[0] != 2 {
		t.Fatalf("replay: %+v %v", s, err)
	}
	if sk := s.Skips[0]; sk.Offset != 1 || !strings.Contains(sk.Detail, "no such offset") {
		t.Errorf("skip of the record whose value is gone: %+v", sk)
	}
	var got []*kgo.Record
	for _, rec := range consumeAll(t, seeds, main) {
		if rec.Offset > orig.Offset || rec.Partition != orig.Partition {
			got = append(got, rec)
		}
	}
	if len(got) != 1 || !bytes.Equal(got[0].Value, value) || string(got[0].Key) != "big" || got[0].Partition != 1 {
		t.Fatalf("%s after the replay: %d new records, want the 2 MiB value once on partition 1", main, len(got))
	}
	if md, ok, err := headers.Decode(got[0].Headers); err != nil || !ok || md.Group != "svc" || md.OriginalOffset != orig.Offset || md.Replays != 1 {
		t.Errorf("replayed too-large record: %+v %v %v", md, ok, err)
	}
}

// readCommitted returns what a read_committed consumer sees of topic once
// no transaction on it is open (the markers of one that ended are written
// after EndTxn returns): every record up to each partition's end.
func readCommitted(t *testing.T, seeds []string, adm *kadm.Client, topic string) []*kgo.Record {
	t.Helper()
	ctx := context.Background()
	var lso kadm.ListedOffsets
	kafkatest.WaitFor(t, "the transactions on "+topic+" to end", 100*time.Millisecond, time.Minute, func() bool {
		var err error
		if lso, err = adm.ListCommittedOffsets(ctx, topic); err != nil {
			return false
		}
		ends := kafkatest.EndOffsets(t, ctx, adm, topic)
		stable := true
		lso.Each(func(o kadm.ListedOffset) { stable = stable && o.Err == nil && o.Offset == ends[o.Partition] })
		return stable
	})
	want := map[int32]int64{}
	lso.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			want[o.Partition] = o.Offset
		}
	})
	if len(want) == 0 {
		return nil
	}
	parts := map[int32]kgo.Offset{}
	for p := range want {
		parts[p] = kgo.NewOffset().AtStart()
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: parts}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.KeepControlRecords())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var out []*kgo.Record
	deadline := time.Now().Add(time.Minute)
	for len(want) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("read_committed of %s did not reach %v within a minute", topic, want)
		}
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		fs := cl.PollFetches(pctx)
		cancel()
		fs.EachRecord(func(r *kgo.Record) {
			if !r.Attrs.IsControl() {
				out = append(out, r)
			}
			if end, ok := want[r.Partition]; ok && r.Offset+1 >= end {
				delete(want, r.Partition)
			}
		})
	}
	return out
}

// TestIntegrationReplayExactlyOnce: with WithExactlyOnce, a replay whose
// produce the broker refuses aborts its transaction: a read_committed
// consumer sees none of the records it produced, and no progress is
// committed. Run again once the target takes the record, every record is
// visible once, with its progress.
func TestIntegrationReplayExactlyOnce(t *testing.T) {
	seeds := kafkatest.Brokers(t)
	main := kafkatest.Name(t, "orders")
	dq := main + ".dlq"
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	adm := kadm.NewClient(cl)
	ctx := context.Background()
	small := "2000"
	if resp, err := adm.CreateTopics(ctx, 1, 1, map[string]*string{"max.message.bytes": &small}, main); err != nil || resp.Error() != nil {
		t.Fatalf("creating %s: %v %v", main, err, resp.Error())
	}
	if resp, err := adm.CreateTopics(ctx, 1, 1, nil, dq); err != nil || resp.Error() != nil {
		t.Fatalf("creating %s: %v %v", dq, err, resp.Error())
	}
	t.Cleanup(func() { _, _ = adm.DeleteTopics(context.Background(), main, dq) })
	at := time.Now().Add(-time.Minute).Truncate(time.Millisecond)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 5 {
		v := strconv.Itoa(i)
		if i == 2 {
			// More than main takes, compressed or not.
			b := make([]byte, 5000)
			for j := range b {
				b[j] = byte(rng.Uint32())
			}
			v = string(b)
		}
		md := headers.Metadata{Group: "svc", Attempts: 1, Tier: "dlq", DueAt: at, OriginalTopic: main, OriginalOffset: int64(i),
			OriginalTimestamp: at, FirstFailureAt: at, LastFailureAt: at, Error: "boom", Reason: headers.ReasonPermanent}
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: dq, Key: []byte("k" + strconv.Itoa(i)), Value: []byte(v),
			Headers: headers.Encode(nil, md)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	r := newReaderOf(t, seeds, dq)
	opts := []dlq.ReplayOpt{dlq.WithMainTopics(main), dlq.WithExactlyOnce(true)}

	// 20 a second: each record is produced, and acknowledged, on its own.
	s, err := r.Replay(ctx, dlq.Filter{}, append(opts, dlq.WithRate(20))...)
	if err == nil || s.Replayed != 0 || len(s.Progress) != 0 {
		t.Fatalf("replay with a refused produce: %+v, %v; want an error, nothing replayed or committed", s, err)
	}
	if got := readCommitted(t, seeds, adm, main); len(got) != 0 {
		t.Fatalf("read_committed sees %d records of an aborted replay transaction", len(got))
	}
	if ends := kafkatest.EndOffsets(t, ctx, adm, main); ends[0] < 3 {
		t.Errorf("%s ends at %d: want the two records before the refused one and the abort marker", main, ends[0])
	}
	if off, err := adm.FetchOffsetsForTopics(ctx, s.Group, dq); err == nil {
		if o, ok := off.Lookup(dq, 0); ok && o.At >= 0 {
			t.Errorf("progress committed at %d after an aborted transaction", o.At)
		}
	}

	big := "1048588"
	if _, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Name: "max.message.bytes", Value: &big}}, main); err != nil {
		t.Fatal(err)
	}
	kafkatest.WaitFor(t, main+" to take the large record", 200*time.Millisecond, 30*time.Second, func() bool {
		rcs, err := adm.DescribeTopicConfigs(ctx, main)
		if err != nil || len(rcs) == 0 {
			return false
		}
		for _, c := range rcs[0].Configs {
			if c.Key == "max.message.bytes" && c.Value != nil {
				return *c.Value == big
			}
		}
		return false
	})
	s, err = r.Replay(ctx, dlq.Filter{}, opts...)
	if err != nil || s.Replayed != 5 || s.Progress[0] != 5 {
		t.Fatalf("replay: %+v, %v", s, err)
	}
	got := readCommitted(t, seeds, adm, main)
	var keys []string
	for _, rec := range got {
		keys = append(keys, string(rec.Key))
	}
	if !slices.Equal(keys, []string{"k0", "k1", "k2", "k3", "k4"}) {
		t.Errorf("read_committed sees %v, want each record once", keys)
	}
	off, err := adm.FetchOffsetsForTopics(ctx, s.Group, dq)
	if o, ok := off.Lookup(dq, 0); err != nil || !ok || o.At != 5 || !strings.HasPrefix(o.Metadata, "kretry-replay/1 ") {
		t.Errorf("progress of %s: %+v %v, want 5 committed in the transaction", s.Group, o, err)
	}
	if s, err := r.Replay(ctx, dlq.Filter{}, opts...); err != nil || s.Replayed != 0 {
		t.Errorf("identical replay: %+v %v", s, err)
	}

	// Over several transactions (8 records a second: more than a second),
	// each committing its records with their progress.
	for i := 5; i < 15; i++ {
		md := headers.Metadata{Group: "svc", Attempts: 1, Tier: "dlq", DueAt: at, OriginalTopic: main, OriginalOffset: int64(i),
			OriginalTimestamp: at, FirstFailureAt: at, LastFailureAt: at, Error: "boom", Reason: headers.ReasonPermanent}
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: dq, Key: []byte("k" + strconv.Itoa(i)), Value: []byte("v"),
			Headers: headers.Encode(nil, md)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	var reported []int64
	s, err = r.Replay(ctx, dlq.Filter{}, append(opts, dlq.WithRate(8), dlq.WithOnRecord(func(e dlq.ReplayEvent) {
		reported = append(reported, e.Record.Offset)
	}))...)
	if err != nil || s.Replayed != 10 || s.Progress[0] != 15 || len(reported) != 10 {
		t.Fatalf("replay over several transactions: %+v, %v, %v reported", s, err, reported)
	}
	keys = nil
	for _, rec := range readCommitted(t, seeds, adm, main) {
		keys = append(keys, string(rec.Key))
	}
	if len(keys) != 15 || keys[14] != "k14" {
		t.Errorf("read_committed sees %v, want k0 to k14 once each", keys)
	}
	seen := map[string]bool{}
	for _, k := range keys {
		if seen[k] {
			t.Errorf("read_committed sees %s twice", k)
		}
		seen[k] = true
	}
}
