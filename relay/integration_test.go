//go:build integration

package relay_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/headers"
	"github.com/kretry/kretry/internal/kafkatest"
	"github.com/kretry/kretry/internal/metrics"
	"github.com/kretry/kretry/ladder"
	"github.com/kretry/kretry/relay"
)

// TestRelayLatenessRealBroker writes a few hundred records into a tier over
// a few seconds, as a consumer would, and measures how late the relay
// re-feeds them: never early is asserted, the figures are logged. In a 1s
// tier every record is within the relay's one-second hold horizon when it is
// polled; in a 3s tier the relay pauses for the head of a partition first.
// TestRelayLatenessRealBroker runs in both of the relay's ways to wait: held
// in memory, and paused, rewound and fetched again (hold bytes 0).
func TestRelayLatenessRealBroker(t *testing.T) {
	for _, mode := range holdModes {
		for _, delay := range []time.Duration{time.Second, 3 * time.Second} {
			t.Run(mode.name+"/"+ladder.FormatDelay(delay), func(t *testing.T) { testRelayLateness(t, delay, mode.opts) })
		}
	}
}

func testRelayLateness(t *testing.T, delay time.Duration, opts []relay.Opt) {
	brokers := kafkatest.Brokers(t)
	const (
		parts   = 4
		records = 400
		batch   = 20
	)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	rl := newRealLadder(t, ctx, brokers, delay, parts, parts)
	l, tier, cl, adm, main, group := rl.l, rl.tier, rl.cl, rl.adm, rl.l.Topic(), rl.l.Group()

	reg := prometheus.NewRegistry()
	m := newMetrics(t, reg)
	r, err := relay.New([]*ladder.Ladder{l}, slices.Concat([]relay.Opt{
		relay.WithClientOpts(kgo.SeedBrokers(brokers...)), relay.WithRegisterer(reg),
		relay.WithLogger(testLogger(t, slog.LevelInfo)), relay.WithFetchMaxWait(fetchMaxWait())}, opts)...)
	if err != nil {
		t.Fatal(err)
	}
	stopRelay := runRelay(t, ctx, r)
	defer stopRelay()

	// Warm up: one record per partition due now, so that the figures below
	// measure pacing, not the group's first join.
	now := time.Now()
	var warm []*kgo.Record
	for p := range int32(parts) {
		md := headers.Metadata{
			Group: group, Attempts: 1, Tier: tier.Name, DueAt: now,
			OriginalTopic: main, OriginalPartition: p, OriginalOffset: 1 << 40, // not one of the records below: a copy is skipped
			OriginalTimestamp: now, FirstFailureAt: now, LastFailureAt: now,
		}
		warm = append(warm, &kgo.Record{Topic: tier.Topic, Partition: p, Key: []byte("warm-up"), Headers: headers.Encode(nil, md)})
	}
	if err := cl.ProduceSync(ctx, warm...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	for {
		ends, err := adm.ListEndOffsets(ctx, main)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		ends.Each(func(o kadm.ListedOffset) { n += int(o.Offset) })
		if n >= parts { // more with the commit markers of the exactly-once mode
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	warmedUp := time.Since(now)

	// Read the main topic as a consumer would, noting when each record
	// became visible.
	rd, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(main),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()

	// The reader runs while records are written; it reports through these
	// once done is closed.
	var lateness, visible []time.Duration
	var problems []string
	errorf := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	seen := map[string]int{}
	sentc := make(chan *kgo.Record, records)
	done := make(chan struct{})
	go func() {
		defer close(done)
		sent := map[string]*kgo.Record{}
		for len(seen) < records && ctx.Err() == nil {
			fs := rd.PollFetches(ctx)
			if fs.IsClientClosed() {
				return
			}
			at := time.Now()
			fs.EachRecord(func(got *kgo.Record) {
				if string(got.Key) == "warm-up" {
					return
				}
				seen[string(got.Key)]++
				for len(sentc) > 0 {
					r := <-sentc
					sent[string(r.Key)] = r
				}
				want := sent[string(got.Key)]
				if want == nil {
					errorf("unexpected record %q on the main topic", got.Key)
					return
				}
				md, _, err := headers.Decode(got.Headers)
				if err != nil {
					errorf("re-fed %q: %v", got.Key, err)
					return
				}
				if got.Partition != md.OriginalPartition || !bytes.Equal(got.Value, want.Value) ||
					!reflect.DeepEqual(headers.UserHeaders(got.Headers), headers.UserHeaders(want.Headers)) {
					errorf("re-fed %q differs: partition %d value %q headers %s", got.Key, got.Partition, got.Value, show(got.Headers))
				}
				if got.Timestamp.Before(md.DueAt) {
					errorf("re-fed %q at %s, before it was due at %s", got.Key,
						headers.FormatTime(got.Timestamp), headers.FormatTime(md.DueAt))
				}
				lateness = append(lateness, got.Timestamp.Sub(md.DueAt))
				visible = append(visible, at.Sub(md.DueAt))
			})
		}
	}()

	for i := 0; i < records; i += batch {
		var recs []*kgo.Record
		for j := i; j < i+batch; j++ {
			now := time.Now()
			md := headers.Metadata{
				Group: group, Attempts: 1, Tier: tier.Name, DueAt: now.Add(tier.Delay),
				OriginalTopic: main, OriginalPartition: int32(j % parts), OriginalOffset: int64(j),
				OriginalTimestamp: now, FirstFailureAt: now, LastFailureAt: now, Error: "boom",
			}
			rec := &kgo.Record{Topic: tier.Topic, Partition: int32(j % parts),
				Key: fmt.Appendf(nil, "key-%d", j), Value: fmt.Appendf(nil, "value-%d", j),
				Headers: headers.Encode(hdr("trace", fmt.Sprint(j)), md)}
			recs = append(recs, rec)
		}
		for _, rec := range recs {
			sentc <- rec
		}
		if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}

	<-done
	for _, p := range problems {
		t.Error(p)
	}
	if len(seen) < records {
		t.Fatalf("%d of %d records re-fed before the deadline", len(seen), records)
	}
	// Give a duplicate a chance to show up before counting.
	dctx, dcancel := context.WithTimeout(ctx, 2*time.Second)
	fs := rd.PollFetches(dctx)
	dcancel()
	fs.EachRecord(func(got *kgo.Record) {
		if string(got.Key) != "warm-up" {
			seen[string(got.Key)]++
		}
	})
	for k, n := range seen {
		if n != 1 {
			t.Errorf("%s re-fed %d times", k, n)
		}
	}

	p50, p99, pmax := percentiles(lateness)
	v50, v99, vmax := percentiles(visible)
	t.Logf("relay lateness over %d records (%s tier, %d partitions, fetch max wait %v): p50 %v, p99 %v, max %v (re-fed record timestamp − due)",
		len(lateness), ladder.FormatDelay(delay), parts, fetchMaxWait(), p50, p99, pmax)
	t.Logf("seen by a consumer of the main topic: p50 %v, p99 %v, max %v (poll return − due)", v50, v99, vmax)
	t.Logf("the relay joined and re-fed the warm-up records in %v", warmedUp)
	if n := histogramCount(t, m.RefeedLateness); n != records+parts {
		t.Errorf("lateness histogram holds %d observations, want %d", n, records+parts)
	}

	// The relay commits what it re-fed: the group ends at the tier's ends.
	stopRelay()
	offs, err := adm.FetchOffsets(context.Background(), r.Group())
	if err != nil {
		t.Fatal(err)
	}
	ends, err := adm.ListEndOffsets(context.Background(), tier.Topic)
	if err != nil {
		t.Fatal(err)
	}
	ends.Each(func(o kadm.ListedOffset) {
		if c, ok := offs.Lookup(tier.Topic, o.Partition); !ok || c.At != o.Offset {
			t.Errorf("relay committed %v on %s[%d], want the end %d", c.At, tier.Topic, o.Partition, o.Offset)
		}
	})
	if got := gauge(t, m, tier.Name); got != 0 {
		t.Errorf("paused partitions = %v after Run, want 0", got)
	}
}

func percentiles(ds []time.Duration) (p50, p99, pmax time.Duration) {
	if len(ds) == 0 {
		return 0, 0, 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	at := func(q float64) time.Duration { return s[min(len(s)-1, int(q*float64(len(s))))] }
	return at(0.50), at(0.99), s[len(s)-1]
}

// TestRelayRebalanceRealBroker starts a second relay in the group while the
// first holds every partition paused, then stops it: no partition may stay
// paused, and every record is re-fed once, no earlier than due.
func TestRelayRebalanceRealBroker(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	const parts = 4
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	rl := newRealLadder(t, ctx, brokers, 20*time.Second, parts, parts)
	l, tier, cl, adm, main, group := rl.l, rl.tier, rl.cl, rl.adm, rl.l.Topic(), rl.l.Group()

	now := time.Now()
	due := now.Add(tier.Delay)
	var recs []*kgo.Record
	for p := range int32(parts) {
		md := headers.Metadata{
			Group: group, Attempts: 1, Tier: tier.Name, DueAt: due,
			OriginalTopic: main, OriginalPartition: p, OriginalOffset: 0,
			OriginalTimestamp: now, FirstFailureAt: now, LastFailureAt: now, Error: "boom",
		}
		recs = append(recs, &kgo.Record{Topic: tier.Topic, Partition: p, Key: fmt.Appendf(nil, "key-%d", p),
			Value: []byte("v"), Headers: headers.Encode(nil, md)})
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}

	type running struct {
		m    *metricsOf
		stop func() error
	}
	start := func() running {
		reg := prometheus.NewRegistry()
		m := &metricsOf{newMetrics(t, reg)}
		r, err := relay.New([]*ladder.Ladder{l},
			relay.WithClientOpts(kgo.SeedBrokers(brokers...)), relay.WithRegisterer(reg),
			relay.WithLogger(testLogger(t, slog.LevelDebug)))
		if err != nil {
			t.Fatal(err)
		}
		rctx, stop := context.WithCancel(ctx)
		errc := make(chan error, 1)
		go func() { errc <- r.Run(rctx) }()
		return running{m, func() error { stop(); return <-errc }}
	}
	poll := func(what string, cond func() bool) {
		t.Helper()
		t.Logf("waiting for %s", what)
		for !cond() {
			if ctx.Err() != nil {
				t.Fatalf("still waiting for %s", what)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	a := start()
	poll("relay A to pause all partitions", func() bool { return gauge(t, a.m.Metrics, tier.Name) == parts })
	b := start()
	poll("relay B to take partitions", func() bool {
		ga, gb := gauge(t, a.m.Metrics, tier.Name), gauge(t, b.m.Metrics, tier.Name)
		return gb > 0 && ga+gb == parts
	})
	if err := b.stop(); err != nil {
		t.Fatalf("relay B: %v", err)
	}
	poll("relay A to hold all partitions again", func() bool { return gauge(t, a.m.Metrics, tier.Name) == parts })
	if time.Now().After(due) {
		t.Fatalf("the rebalances took longer than the tier's delay (%v): raise it", tier.Delay)
	}
	rd, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(main),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	seen := map[string]int{}
	for len(seen) < parts && ctx.Err() == nil {
		rd.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			seen[string(r.Key)]++
			md, _, err := headers.Decode(r.Headers)
			if err != nil || r.Timestamp.Before(md.DueAt) {
				t.Errorf("re-fed %q at %s, due %s (%v)", r.Key, headers.FormatTime(r.Timestamp), headers.FormatTime(md.DueAt), err)
			}
		})
	}
	poll("no paused partition", func() bool { return gauge(t, a.m.Metrics, tier.Name) == 0 })
	if err := a.stop(); err != nil {
		t.Fatalf("relay A: %v", err)
	}
	ends, err := adm.ListEndOffsets(ctx, main)
	if err != nil {
		t.Fatal(err)
	}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset != 1 {
			t.Errorf("%s[%d] holds %d records, want 1", main, o.Partition, o.Offset)
		}
	})
	if len(seen) != parts {
		t.Errorf("re-fed %d of %d records", len(seen), parts)
	}
}

type metricsOf struct{ *metrics.Metrics }

// testLogger logs the relay's own lines, down to debug, through t.Logf; kgo's
// lines only from warn up.
func testLogger(t *testing.T, level slog.Level) *slog.Logger {
	return slog.New(&tlogHandler{t: t, h: slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: level})})
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Logf("%s", bytes.TrimRight(p, "\n"))
	return len(p), nil
}

type tlogHandler struct {
	t   *testing.T
	h   slog.Handler
	kgo bool
}

func (h *tlogHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelWarn || !h.kgo && h.h.Enabled(ctx, l)
}
func (h *tlogHandler) Handle(ctx context.Context, r slog.Record) error { return h.h.Handle(ctx, r) }
func (h *tlogHandler) WithAttrs(as []slog.Attr) slog.Handler {
	kgo := h.kgo
	for _, a := range as {
		kgo = kgo || a.Key == "component" && a.Value.String() == "kgo"
	}
	return &tlogHandler{t: h.t, h: h.h.WithAttrs(as), kgo: kgo}
}
func (h *tlogHandler) WithGroup(name string) slog.Handler {
	return &tlogHandler{t: h.t, h: h.h.WithGroup(name), kgo: h.kgo}
}

// fetchMaxWait is the relay's fetch max wait in the lateness test:
// KRETRY_TEST_FETCH_MAX_WAIT if set, else the default.
func fetchMaxWait() time.Duration {
	if d, err := time.ParseDuration(os.Getenv("KRETRY_TEST_FETCH_MAX_WAIT")); err == nil {
		return d
	}
	return relay.DefaultFetchMaxWait
}

// runRelay runs r in the background; the returned func (idempotent) stops
// it and fails the test if Run returned an error.
func runRelay(t *testing.T, ctx context.Context, r *relay.Relay) (stop func()) {
	rctx, cancel := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() { errc <- r.Run(rctx) }()
	return sync.OnceFunc(func() {
		cancel()
		if err := <-errc; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

// realLadder is a ladder of one tier on the real broker, its topics created
// for the test and deleted after it; cl writes records at the partition
// they name.
type realLadder struct {
	l    *ladder.Ladder
	tier ladder.Step
	cl   *kgo.Client
	adm  *kadm.Client
}

// newRealLadder creates a ladder's topics: the main topic and the DLQ with
// mainParts partitions, the tier of delay with tierParts; it returns once
// they have leaders, as the relay checks them at once.
func newRealLadder(t *testing.T, ctx context.Context, brokers []string, delay time.Duration, mainParts, tierParts int32) *realLadder {
	t.Helper()
	l, err := ladder.New(kafkatest.Name(t, "orders"), kafkatest.Name(t, "svc"), []ladder.Tier{{Delay: delay}})
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	rl := &realLadder{l: l, tier: l.Steps()[0], cl: cl, adm: kadm.NewClient(cl)}
	topics := []string{l.Topic(), rl.tier.Topic, l.DLQ()}
	t.Cleanup(func() { _, _ = rl.adm.DeleteTopics(context.Background(), topics...) })
	for _, c := range []struct {
		parts  int32
		topics []string
	}{{mainParts, []string{l.Topic(), l.DLQ()}}, {tierParts, []string{rl.tier.Topic}}} {
		if _, err := rl.adm.CreateTopics(ctx, c.parts, 1, nil, c.topics...); err != nil {
			t.Fatal(err)
		}
	}
	kafkatest.WaitTopics(t, rl.adm, topics...)
	return rl
}

// TestRelayBacklogRealBroker parks a backlog that is already due in a tier
// and lets one relay drain it: every record re-fed exactly once, the tier
// committed to its end. The drain rate is logged.
func TestRelayBacklogRealBroker(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	const (
		parts   = 4
		records = 100000
	)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	rl := newRealLadder(t, ctx, brokers, time.Second, parts, parts)
	l, tier, cl, adm, main, group := rl.l, rl.tier, rl.cl, rl.adm, rl.l.Topic(), rl.l.Group()

	now := time.Now()
	recs := make([]*kgo.Record, 0, records)
	for i := range records {
		p := int32(i % parts)
		md := headers.Metadata{
			Group: group, Attempts: 1, Tier: tier.Name, DueAt: now,
			OriginalTopic: main, OriginalPartition: p, OriginalOffset: int64(i),
			OriginalTimestamp: now, FirstFailureAt: now, LastFailureAt: now, Error: "boom",
		}
		recs = append(recs, &kgo.Record{Topic: tier.Topic, Partition: p, Key: fmt.Appendf(nil, "key-%d", i),
			Value: bytes.Repeat([]byte{'v'}, 100), Headers: headers.Encode(hdr("trace", "t"), md)})
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}

	r, err := relay.New([]*ladder.Ladder{l}, relay.WithClientOpts(kgo.SeedBrokers(brokers...)),
		relay.WithLogger(testLogger(t, slog.LevelInfo)))
	if err != nil {
		t.Fatal(err)
	}
	rctx, stop := context.WithCancel(ctx)
	errc := make(chan error, 1)
	start := time.Now()
	go func() { errc <- r.Run(rctx) }()
	total := func(topic string) int64 {
		ends, err := adm.ListEndOffsets(ctx, topic)
		if err != nil {
			t.Fatal(err)
		}
		var n int64
		ends.Each(func(o kadm.ListedOffset) { n += o.Offset })
		return n
	}
	var first time.Duration
	for n := int64(0); n < records; n = total(main) {
		if ctx.Err() != nil {
			t.Fatalf("%d of %d records re-fed before the deadline", n, records)
		}
		if n > 0 && first == 0 {
			first = time.Since(start)
		}
		time.Sleep(20 * time.Millisecond)
	}
	took := time.Since(start)
	stop()
	if err := <-errc; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if n := total(main); n != records {
		t.Errorf("main topic holds %d records, want %d", n, records)
	}
	offs, err := adm.FetchOffsets(context.Background(), r.Group())
	if err != nil {
		t.Fatal(err)
	}
	var committed int64
	offs.Each(func(o kadm.OffsetResponse) {
		if o.Topic == tier.Topic {
			committed += o.At
		}
	})
	if committed != records {
		t.Errorf("relay committed %d records of the tier, want %d", committed, records)
	}
	t.Logf("relay drained a due backlog of %d records (%d partitions, 100 B values) in %v: %.0f records/s (first re-feed after %v, incl. the group join)",
		records, parts, took.Round(time.Millisecond), float64(records)/(took-first).Seconds(), first.Round(time.Millisecond))
}
