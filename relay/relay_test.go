package relay_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/goleak"

	"github.com/kretry/kretry/headers"
	"github.com/kretry/kretry/internal/kafkatest"
	"github.com/kretry/kretry/internal/metrics"
	"github.com/kretry/kretry/ladder"
	"github.com/kretry/kretry/relay"
)

const (
	relayTopic = "orders"
	relayGroup = "orders-service"
)

// relayEnv is a kfake cluster with the main, tier and DLQ topics of a
// 5s → 1m ladder of relayTopic, and a client to write and read them.
type relayEnv struct {
	t      *testing.T
	fake   *kfake.Cluster
	kopts  []kgo.Opt
	cl     *kgo.Client // manual partitions
	adm    *kadm.Client
	ladder *ladder.Ladder
	next   int64 // the original offset of the next tierRecord, from 7
}

// newVirtualEnv starts kfake on a virtual network, for a synctest bubble.
func newVirtualEnv(t *testing.T, mainParts, sideParts int32, skip ...string) *relayEnv {
	t.Helper()
	l := testLadder(t)
	fake, kopts := kafkatest.VirtualFake(t, seedTopics(l, mainParts, sideParts, skip)...)
	return newEnvOn(t, fake, kopts, l)
}

func testLadder(t *testing.T) *ladder.Ladder {
	l, err := ladder.New(relayTopic, relayGroup, []ladder.Tier{{Delay: 5 * time.Second}, {Delay: time.Minute}})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func seedTopics(l *ladder.Ladder, mainParts, sideParts int32, skip []string) []kfake.Opt {
	opts := []kfake.Opt{kfake.NumBrokers(1)}
	if !slices.Contains(skip, l.Topic()) {
		opts = append(opts, kfake.SeedTopics(mainParts, l.Topic()))
	}
	side := []string{l.DLQ()}
	for _, s := range l.Steps() {
		side = append(side, s.Topic)
	}
	side = slices.DeleteFunc(side, func(s string) bool { return slices.Contains(skip, s) })
	return append(opts, kfake.SeedTopics(sideParts, side...))
}

func newEnvOn(t *testing.T, fake *kfake.Cluster, kopts []kgo.Opt, l *ladder.Ladder) *relayEnv {
	t.Helper()
	cl, err := kgo.NewClient(append(slices.Clone(kopts), kgo.RecordPartitioner(kgo.ManualPartitioner()))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return &relayEnv{t: t, fake: fake, kopts: kopts, cl: cl, adm: kadm.NewClient(cl), ladder: l}
}

func (e *relayEnv) step(i int) ladder.Step { return e.ladder.Steps()[i] }

// tierRecord is a record that failed once at failedAt and waits in tier i
// until due, as the consumer writes it: from original partition p, at an
// original offset no other tierRecord has (the relay skips copies of one
// attempt).
func (e *relayEnv) tierRecord(i int, p int32, key string, due time.Time, user ...kgo.RecordHeader) (*kgo.Record, headers.Metadata) {
	s := e.step(i)
	offset := 7 + e.next
	e.next++
	failedAt := due.Add(-s.Delay)
	md := headers.Metadata{
		Group: relayGroup, Attempts: i + 1, Tier: s.Name, DueAt: ms(due),
		OriginalTopic: relayTopic, OriginalPartition: p, OriginalOffset: offset,
		OriginalTimestamp: ms(failedAt.Add(-time.Second)),
		FirstFailureAt:    ms(failedAt), LastFailureAt: ms(failedAt),
		Error: "payment service: 503",
	}
	return &kgo.Record{
		Topic: s.Topic, Partition: p, Key: []byte(key), Value: []byte("value of " + key),
		Headers: headers.Encode(user, md),
	}, md
}

// ms is t as a kretry header carries it: UTC, milliseconds.
func ms(t time.Time) time.Time { return t.UTC().Truncate(time.Millisecond) }

func (e *relayEnv) produce(recs ...*kgo.Record) {
	e.t.Helper()
	if err := e.cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		e.t.Fatalf("produce: %v", err)
	}
}

// read returns every record of topic, by partition then offset.
func (e *relayEnv) read(topic string) []*kgo.Record {
	e.t.Helper()
	ctx := context.Background()
	ends, err := e.adm.ListEndOffsets(ctx, topic)
	if err != nil {
		e.t.Fatalf("end offsets of %s: %v", topic, err)
	}
	starts, err := e.adm.ListStartOffsets(ctx, topic)
	if err != nil {
		e.t.Fatalf("start offsets of %s: %v", topic, err)
	}
	want := map[int32]int64{}
	start := map[int32]kgo.Offset{}
	unseen := map[int32]bool{} // partitions with records that gave none yet
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err != nil {
			e.t.Fatalf("end offset of %s[%d]: %v", topic, o.Partition, o.Err)
		}
		if s, _ := starts.Lookup(topic, o.Partition); o.Offset > s.Offset {
			want[o.Partition], start[o.Partition] = o.Offset, kgo.NewOffset().AtStart()
			unseen[o.Partition] = true
		}
	})
	if len(want) == 0 {
		return nil
	}
	rd, err := kgo.NewClient(append(slices.Clone(e.kopts), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: start}))...)
	if err != nil {
		e.t.Fatal(err)
	}
	defer rd.Close()
	byPart := map[int32][]*kgo.Record{}
	for quiet := 0; len(want) > 0; {
		// A topic written in transactions ends with a commit marker, which
		// is not a record: three seconds without records end the read, once
		// every partition with records gave some (read_uncommitted, so
		// each has one at least). Quiet seconds alone were not enough in
		// virtual time: a poll could time out while the reader was still
		// setting up (CI runs read 1 of 6 records, and 5 of 6 with a whole
		// partition missing).
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		fs := rd.PollFetches(pctx)
		cancel()
		if pctx.Err() != nil && fs.NumRecords() == 0 {
			if quiet++; quiet >= 3 && len(unseen) == 0 {
				break
			}
			if quiet == 120 {
				e.t.Fatalf("read %s: partitions %v gave no record in %d quiet seconds", topic, slices.Sorted(maps.Keys(unseen)), quiet)
			}
			continue
		}
		quiet = 0
		if err := fs.Err(); err != nil && !errors.Is(err, context.DeadlineExceeded) {
			e.t.Fatalf("read %s: %v", topic, err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			delete(unseen, r.Partition)
			byPart[r.Partition] = append(byPart[r.Partition], r)
			if r.Offset+1 >= want[r.Partition] {
				delete(want, r.Partition)
			}
		})
	}
	var out []*kgo.Record
	for p := int32(0); len(byPart) > 0; p++ {
		out = append(out, byPart[p]...)
		delete(byPart, p)
	}
	return out
}

// committed returns group's committed offset of each partition of topic.
func (e *relayEnv) committed(group, topic string) map[int32]int64 {
	e.t.Helper()
	os, err := e.adm.FetchOffsets(context.Background(), group)
	if err != nil {
		e.t.Fatalf("fetch offsets of %s: %v", group, err)
	}
	out := map[int32]int64{}
	os.Each(func(o kadm.OffsetResponse) {
		if o.Topic == topic && o.Err == nil && o.At >= 0 {
			out[o.Partition] = o.At
		}
	})
	return out
}

// runningRelay is a Relay's Run in a goroutine.
type runningRelay struct {
	relay  *relay.Relay
	cancel context.CancelFunc
	errc   chan error
	once   sync.Once
	err    error
}

func (e *relayEnv) start(opts ...relay.Opt) *runningRelay {
	e.t.Helper()
	r, err := relay.New([]*ladder.Ladder{e.ladder},
		append([]relay.Opt{relay.WithClientOpts(e.kopts...)}, opts...)...)
	if err != nil {
		e.t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	rr := &runningRelay{relay: r, cancel: cancel, errc: make(chan error, 1)}
	go func() { rr.errc <- r.Run(ctx) }()
	e.t.Cleanup(func() { rr.stop() })
	return rr
}

func (rr *runningRelay) stop() error {
	rr.once.Do(func() {
		rr.cancel()
		rr.err = <-rr.errc
	})
	return rr.err
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	kafkatest.WaitFor(t, what, 50*time.Millisecond, 2*time.Hour, cond)
}

// checkRefed checks that got is want re-fed: on the main topic at want's
// original partition (mod mainParts), key, value and user headers
// byte-identical, the same kretry metadata, and produced no earlier than due.
func checkRefed(t *testing.T, got, want *kgo.Record, md headers.Metadata, mainParts int32) {
	t.Helper()
	if got.Topic != relayTopic || got.Partition != md.OriginalPartition%mainParts {
		t.Errorf("re-fed to %s[%d], want %s[%d]", got.Topic, got.Partition, relayTopic, md.OriginalPartition%mainParts)
	}
	if !bytes.Equal(got.Key, want.Key) || !bytes.Equal(got.Value, want.Value) {
		t.Errorf("re-fed key/value %q/%q, want %q/%q", got.Key, got.Value, want.Key, want.Value)
	}
	if gu, wu := headers.UserHeaders(got.Headers), headers.UserHeaders(want.Headers); !reflect.DeepEqual(normalize(gu), normalize(wu)) {
		t.Errorf("re-fed user headers %s, want %s", show(gu), show(wu))
	}
	gmd, ok, err := headers.Decode(got.Headers)
	if err != nil || !ok || gmd != md {
		t.Errorf("re-fed metadata = %+v, %v, %v\nwant %+v", gmd, ok, err, md)
	}
	if got.Timestamp.Before(md.DueAt) {
		t.Errorf("re-fed at %s, before it was due at %s", headers.FormatTime(got.Timestamp), headers.FormatTime(md.DueAt))
	}
}

// normalize makes nil and empty header values compare equal: Kafka has no
// null header value distinct from an empty one on every path.
func normalize(hs []kgo.RecordHeader) []kgo.RecordHeader {
	out := slices.Clone(hs)
	for i := range out {
		if len(out[i].Value) == 0 {
			out[i].Value = nil
		}
	}
	return out
}

func gauge(t *testing.T, m *metrics.Metrics, tier string) float64 {
	t.Helper()
	return metricValue(t, m.PausedPartitions.WithLabelValues(tier))
}

// metricValue reads the one counter or gauge series of c.
func metricValue(t *testing.T, c prometheus.Collector) float64 {
	t.Helper()
	var vals []float64
	for _, pb := range collect(t, c) {
		switch {
		case pb.Counter != nil:
			vals = append(vals, pb.Counter.GetValue())
		case pb.Gauge != nil:
			vals = append(vals, pb.Gauge.GetValue())
		}
	}
	if len(vals) != 1 {
		t.Fatalf("collector has %d counter or gauge series, want 1", len(vals))
	}
	return vals[0]
}

// histogramCount sums the observations of every series of c.
func histogramCount(t *testing.T, c prometheus.Collector) uint64 {
	t.Helper()
	var n uint64
	for _, pb := range collect(t, c) {
		n += pb.GetHistogram().GetSampleCount()
	}
	return n
}

func collect(t *testing.T, c prometheus.Collector) []*dto.Metric {
	t.Helper()
	ch := make(chan prometheus.Metric, 64)
	go func() { c.Collect(ch); close(ch) }()
	var out []*dto.Metric
	for m := range ch {
		pb := &dto.Metric{}
		if err := m.Write(pb); err != nil {
			t.Fatal(err)
		}
		out = append(out, pb)
	}
	return out
}

func newMetrics(t *testing.T, reg prometheus.Registerer) *metrics.Metrics {
	t.Helper()
	m, err := metrics.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// clientSeries counts the kretry_client_* series of franz-go's kprom plugin
// that carry component on reg.
func clientSeries(t *testing.T, reg *prometheus.Registry, component string) int {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, mf := range mfs {
		if !strings.HasPrefix(mf.GetName(), "kretry_client_") {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "component" && l.GetValue() == component {
					n++
				}
			}
		}
	}
	return n
}

// holdModes are the relay's two ways to wait for a record: held in memory
// (the default), and with no hold budget paused, rewound and fetched again;
// each at least once and exactly once.
var holdModes = []struct {
	name string
	opts []relay.Opt
}{
	{"held", nil},
	{"hold nothing", []relay.Opt{relay.WithHoldBytes(0)}},
	{"exactly once", []relay.Opt{relay.WithExactlyOnce(true)}},
	{"exactly once, hold nothing", []relay.Opt{relay.WithExactlyOnce(true), relay.WithHoldBytes(0)}},
}

func TestRelayRefeedsWhenDue(t *testing.T) {
	for _, mode := range holdModes {
		t.Run(mode.name, func(t *testing.T) { testRelayRefeedsWhenDue(t, mode.opts) })
	}
}

func testRelayRefeedsWhenDue(t *testing.T, opts []relay.Opt) {
	synctest.Test(t, func(t *testing.T) {
		e := newVirtualEnv(t, 4, 4)
		reg := prometheus.NewRegistry()
		m := newMetrics(t, reg)
		due := time.Now().Add(5 * time.Second)
		user := hdr("trace-id", "abc", "empty", "", "dup", "1", "dup", "2")
		rec, md := e.tierRecord(0, 3, "k1", due, user...)
		e.produce(rec)

		r := e.start(slices.Concat(opts, []relay.Opt{relay.WithRegisterer(reg)})...)
		waitFor(t, "the partition to be paused", func() bool { return gauge(t, m, "retry-5s") == 1 })
		time.Sleep(time.Until(md.DueAt.Add(-time.Millisecond)))
		if got := e.read(relayTopic); len(got) != 0 {
			t.Fatalf("%d records on the main topic 1ms before they are due", len(got))
		}
		waitFor(t, "the re-feed", func() bool { return len(e.read(relayTopic)) == 1 })
		for _, component := range []string{"relay-consumer", "relay-producer"} {
			if n := clientSeries(t, reg, component); n == 0 {
				t.Errorf("no kretry_client_* series with component=%s while the relay runs", component)
			}
		}
		if err := r.stop(); err != nil {
			t.Fatalf("Run: %v", err)
		}
		if n := clientSeries(t, reg, "relay-consumer") + clientSeries(t, reg, "relay-producer"); n != 0 {
			t.Errorf("%d kretry_client_* series left on the registry after Run returned", n)
		}

		checkRefed(t, e.read(relayTopic)[0], rec, md, 4)
		if got := e.committed(relayGroup+"-relay", e.step(0).Topic); got[3] != 1 {
			t.Errorf("relay committed %v, want partition 3 at 1", got)
		}
		if got := metricValue(t, m.Refed.WithLabelValues(relayTopic, "retry-5s")); got != 1 {
			t.Errorf("refed = %v, want 1", got)
		}
		if got := histogramCount(t, m.RefeedLateness); got != 1 {
			t.Errorf("lateness series = %d, want 1", got)
		}
		if got := gauge(t, m, "retry-5s"); got != 0 {
			t.Errorf("paused partitions = %v after Run, want 0", got)
		}
	})
}

func TestRelayKeepsPartitionOrder(t *testing.T) {
	for _, mode := range holdModes {
		t.Run(mode.name, func(t *testing.T) { testRelayKeepsPartitionOrder(t, mode.opts) })
	}
}

func testRelayKeepsPartitionOrder(t *testing.T, opts []relay.Opt) {
	synctest.Test(t, func(t *testing.T) {
		e := newVirtualEnv(t, 2, 2)
		now := time.Now()
		// One tier partition; due times out of order. The head holds the
		// rest: order on the retry path is order in the tier.
		var recs []*kgo.Record
		var mds []headers.Metadata
		for i, d := range []time.Duration{5 * time.Second, 2 * time.Second, 8 * time.Second, -time.Second, 8 * time.Second} {
			rec, md := e.tierRecord(0, 1, string(rune('a'+i)), now.Add(d))
			recs, mds = append(recs, rec), append(mds, md)
		}
		e.produce(recs...)
		// A record on the other partition is due now and is not held by
		// partition 1.
		other, otherMD := e.tierRecord(0, 0, "other", now)
		e.produce(other)

		r := e.start(opts...)
		waitFor(t, "the re-feed of the other partition", func() bool { return len(e.read(relayTopic)) == 1 })
		if time.Now().After(mds[0].DueAt) {
			t.Fatalf("partition 0 was re-fed only at %v, after partition 1's head was due", time.Since(now))
		}
		waitFor(t, "all re-feeds", func() bool { return len(e.read(relayTopic)) == 6 })
		if err := r.stop(); err != nil {
			t.Fatalf("Run: %v", err)
		}

		got := e.read(relayTopic)
		checkRefed(t, got[0], other, otherMD, 2)
		var keys []string
		for i, g := range got[1:] {
			keys = append(keys, string(g.Key))
			if i < len(recs) {
				checkRefed(t, g, recs[i], mds[i], 2)
			}
		}
		if want := []string{"a", "b", "c", "d", "e"}; !slices.Equal(keys, want) {
			t.Errorf("main partition 1 holds %v, want %v", keys, want)
		}
		// b was due at +2s but waits behind a (due +5s).
		if ts := got[2].Timestamp; ts.Before(mds[0].DueAt) {
			t.Errorf("b re-fed at %v, before its head a was due", ts.Sub(now))
		}
	})
}

func TestRelayPausesAndGaugeReturnsToZero(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newVirtualEnv(t, 3, 3)
		reg := prometheus.NewRegistry()
		m := newMetrics(t, reg)
		now := time.Now()
		var recs []*kgo.Record
		for p := range int32(3) {
			rec, _ := e.tierRecord(1, p, "k", now.Add(time.Duration(p+1)*time.Minute))
			recs = append(recs, rec)
		}
		e.produce(recs...)

		r := e.start(relay.WithRegisterer(reg))
		waitFor(t, "three paused partitions", func() bool { return gauge(t, m, "retry-1m") == 3 })
		// While paused, the relay neither re-feeds nor spins: the virtual
		// clock reaches the first due time with the main topic empty.
		time.Sleep(time.Until(now.Add(time.Minute - time.Millisecond)))
		if n := len(e.read(relayTopic)); n != 0 {
			t.Fatalf("%d records re-fed before the first was due", n)
		}
		waitFor(t, "one re-feed", func() bool { return len(e.read(relayTopic)) == 1 })
		waitFor(t, "two paused partitions", func() bool { return gauge(t, m, "retry-1m") == 2 })
		waitFor(t, "all re-feeds", func() bool { return len(e.read(relayTopic)) == 3 })
		waitFor(t, "no paused partition", func() bool { return gauge(t, m, "retry-1m") == 0 })

		// Pause again, then stop while paused: the gauge goes back to 0.
		rec, _ := e.tierRecord(1, 0, "later", time.Now().Add(time.Hour))
		e.produce(rec)
		waitFor(t, "the new pause", func() bool { return gauge(t, m, "retry-1m") == 1 })
		if err := r.stop(); err != nil {
			t.Fatalf("Run: %v", err)
		}
		if got := gauge(t, m, "retry-1m"); got != 0 {
			t.Errorf("paused partitions = %v after Run, want 0", got)
		}
		if got := e.committed(relayGroup+"-relay", e.step(1).Topic); got[0] != 1 || got[1] != 1 || got[2] != 1 {
			t.Errorf("relay committed %v, want every partition at 1 (the held record not committed)", got)
		}
	})
}

// Records held behind a waiting head have their headers read when first
// polled; one that cannot be read, or that is another group's, is still
// dead-lettered or skipped in its turn, once the head is due.
func TestRelayHeldRecordsBehindAHead(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newVirtualEnv(t, 2, 2)
		now := time.Now()
		head, headMD := e.tierRecord(0, 1, "head", now.Add(5*time.Second))
		bad, _ := e.tierRecord(0, 1, "bad", now)
		bad.Headers = slices.Clone(bad.Headers)
		for i, h := range bad.Headers {
			if h.Key == headers.HeaderAttempts {
				bad.Headers[i].Value = []byte("x")
			}
		}
		otherGroup, _ := e.tierRecord(0, 1, "other-group", now)
		otherGroup.Headers = slices.Clone(otherGroup.Headers)
		for i, h := range otherGroup.Headers {
			if h.Key == headers.HeaderGroup {
				otherGroup.Headers[i].Value = []byte("billing")
			}
		}
		good, goodMD := e.tierRecord(0, 1, "good", now)
		e.produce(head, bad, otherGroup, good)

		r := e.start()
		time.Sleep(time.Until(headMD.DueAt.Add(-time.Millisecond)))
		if n := len(e.read(relayTopic)) + len(e.read(e.ladder.DLQ())); n != 0 {
			t.Fatalf("%d records re-fed or dead-lettered before the head was due", n)
		}
		waitFor(t, "the re-feeds", func() bool { return len(e.read(relayTopic)) == 2 })
		if err := r.stop(); err != nil {
			t.Fatalf("Run: %v", err)
		}
		got := e.read(relayTopic)
		checkRefed(t, got[0], head, headMD, 2)
		checkRefed(t, got[1], good, goodMD, 2)
		dlq := e.read(e.ladder.DLQ())
		if len(dlq) != 1 || !bytes.Equal(dlq[0].Key, bad.Key) {
			t.Fatalf("DLQ holds %d records, want the bad one", len(dlq))
		}
		if md, _, err := headers.Decode(dlq[0].Headers); err != nil || md.Reason != headers.ReasonInvalidMetadata {
			t.Errorf("DLQ record: reason %q, %v; want invalid-metadata", md.Reason, err)
		}
		if c := e.committed(relayGroup+"-relay", e.step(0).Topic); c[1] != 4 {
			t.Errorf("relay committed %v, want partition 1 at 4", c)
		}
	})
}

func TestRelayDeadLettersInvalidMetadata(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newVirtualEnv(t, 2, 2)
		reg := prometheus.NewRegistry()
		m := newMetrics(t, reg)
		now := time.Now()
		bad, _ := e.tierRecord(0, 1, "bad", now)
		for i, h := range bad.Headers {
			if h.Key == headers.HeaderAttempts {
				bad.Headers[i].Value = []byte("x")
			}
		}
		bad.Headers = append(hdr("trace-id", "t1"), bad.Headers...)
		none := &kgo.Record{Topic: e.step(0).Topic, Partition: 1, Key: []byte("none"), Value: []byte("v"),
			Headers: hdr("trace-id", "t2")}
		good, goodMD := e.tierRecord(0, 1, "good", now)
		otherGroup, _ := e.tierRecord(0, 1, "other-group", now)
		otherGroup.Headers = slices.Clone(otherGroup.Headers)
		for i, h := range otherGroup.Headers {
			if h.Key == headers.HeaderGroup {
				otherGroup.Headers[i].Value = []byte("billing")
			}
		}
		e.produce(bad, none, otherGroup, good)

		r := e.start(relay.WithRegisterer(reg))
		waitFor(t, "the re-feed of the good record", func() bool { return len(e.read(relayTopic)) == 1 })
		if err := r.stop(); err != nil {
			t.Fatalf("Run: %v", err)
		}
		// A second run finds nothing left to do: no loop.
		r = e.start(relay.WithRegisterer(reg))
		time.Sleep(time.Minute)
		if err := r.stop(); err != nil {
			t.Fatalf("Run: %v", err)
		}

		checkRefed(t, e.read(relayTopic)[0], good, goodMD, 2)
		if n := len(e.read(relayTopic)); n != 1 {
			t.Errorf("main topic holds %d records, want 1 (another group's record is not re-fed)", n)
		}
		dlq := e.read(e.ladder.DLQ())
		if len(dlq) != 2 {
			t.Fatalf("DLQ holds %d records, want 2", len(dlq))
		}
		for i, tc := range []struct {
			in    *kgo.Record
			offs  int64
			error string
		}{
			{bad, 0, `kretry header kretry-attempts: invalid value "x"`},
			{none, 1, "kretry header kretry-group: missing"},
		} {
			d := dlq[i]
			if d.Partition != 1 || !bytes.Equal(d.Key, tc.in.Key) || !bytes.Equal(d.Value, tc.in.Value) {
				t.Errorf("DLQ record %d: partition %d key %q value %q", i, d.Partition, d.Key, d.Value)
			}
			if gu, wu := headers.UserHeaders(d.Headers), headers.UserHeaders(tc.in.Headers); !reflect.DeepEqual(gu, wu) {
				t.Errorf("DLQ record %d user headers %s, want %s", i, show(gu), show(wu))
			}
			md, ok, err := headers.Decode(d.Headers)
			if err != nil || !ok {
				t.Fatalf("DLQ record %d: Decode: %v, %v", i, ok, err)
			}
			if md.Reason != headers.ReasonInvalidMetadata || md.Group != relayGroup || md.Tier != "retry-5s" ||
				md.OriginalTopic != e.step(0).Topic || md.OriginalPartition != 1 || md.OriginalOffset != tc.offs ||
				!strings.Contains(md.Error, tc.error) {
				t.Errorf("DLQ record %d metadata %+v: want reason invalid-metadata from %s[1]@%d with error %q",
					i, md, e.step(0).Topic, tc.offs, tc.error)
			}
		}
		if got := e.committed(relayGroup+"-relay", e.step(0).Topic); got[1] != 4 {
			t.Errorf("relay committed %v, want partition 1 at 4", got)
		}
		if got := metricValue(t, m.DeadLettered.WithLabelValues(relayTopic, "invalid-metadata", "dlq")); got != 2 {
			t.Errorf("dead-lettered = %v, want 2", got)
		}
		if got := metricValue(t, m.Forwarded.WithLabelValues(relayTopic, metrics.TierDLQ)); got != 2 {
			t.Errorf("forwarded to the DLQ = %v, want 2", got)
		}
	})
}

func TestRelayRebalanceDuringPause(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newVirtualEnv(t, 4, 4)
		regA, regB := prometheus.NewRegistry(), prometheus.NewRegistry()
		mA, mB := newMetrics(t, regA), newMetrics(t, regB)
		due := time.Now().Add(time.Hour)
		var recs []*kgo.Record
		var mds []headers.Metadata
		for p := range int32(4) {
			rec, md := e.tierRecord(1, p, "k", due)
			recs, mds = append(recs, rec), append(mds, md)
		}
		e.produce(recs...)

		a := e.start(relay.WithRegisterer(regA))
		waitFor(t, "relay A to pause all four partitions", func() bool { return gauge(t, mA, "retry-1m") == 4 })
		b := e.start(relay.WithRegisterer(regB))
		waitFor(t, "relay B to take some partitions", func() bool {
			ga, gb := gauge(t, mA, "retry-1m"), gauge(t, mB, "retry-1m")
			return gb > 0 && ga+gb == 4
		})
		if err := b.stop(); err != nil {
			t.Fatalf("relay B: %v", err)
		}
		if got := gauge(t, mB, "retry-1m"); got != 0 {
			t.Errorf("relay B paused partitions = %v after its Run, want 0", got)
		}
		waitFor(t, "relay A to hold all four partitions again", func() bool { return gauge(t, mA, "retry-1m") == 4 })
		if n := len(e.read(relayTopic)); n != 0 {
			t.Fatalf("%d records re-fed before due", n)
		}
		waitFor(t, "all four re-feeds", func() bool { return len(e.read(relayTopic)) == 4 })
		waitFor(t, "no paused partition", func() bool { return gauge(t, mA, "retry-1m") == 0 })
		if err := a.stop(); err != nil {
			t.Fatalf("relay A: %v", err)
		}
		got := e.read(relayTopic)
		if len(got) != 4 {
			t.Fatalf("main topic holds %d records, want 4", len(got))
		}
		for i, g := range got {
			checkRefed(t, g, recs[i], mds[i], 4)
		}
	})
}

func TestRelayRetriesFailedRefeed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newVirtualEnv(t, 2, 2)
		// Five due records of one tier partition for one main partition:
		// all in flight together when the broker refuses them.
		var recs []*kgo.Record
		var mds []headers.Metadata
		for i := range 5 {
			rec, md := e.tierRecord(0, 1, fmt.Sprint("k", i), time.Now())
			recs, mds = append(recs, rec), append(mds, md)
		}
		e.produce(recs...)
		failUntil := time.Now().Add(20 * time.Second)
		var mu sync.Mutex
		refused := 0
		e.fake.ControlKey(int16(kmsg.Produce), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
			e.fake.KeepControl()
			req := kreq.(*kmsg.ProduceRequest)
			if !time.Now().Before(failUntil) { // only the relay produces from here on
				return nil, nil, false
			}
			mu.Lock()
			refused++
			mu.Unlock()
			return kafkatest.RefuseProduce(req, kerr.NotEnoughReplicas.Code), nil, true
		})

		var logs bytes.Buffer
		var logMu sync.Mutex
		logger := slog.New(slog.NewTextHandler(&lockedWriter{w: &logs, mu: &logMu}, &slog.HandlerOptions{Level: slog.LevelError}))
		r := e.start(relay.WithDeliveryTimeout(3*time.Second), relay.WithLogger(logger))
		time.Sleep(15 * time.Second)
		if n := len(e.read(relayTopic)); n != 0 {
			t.Fatalf("%d records on the main topic while the broker refuses them", n)
		}
		if got := e.committed(relayGroup+"-relay", e.step(0).Topic); got[1] != 0 {
			t.Errorf("relay committed %v while its re-feed failed, want nothing past 0", got)
		}
		waitFor(t, "all re-feeds", func() bool { return len(e.read(relayTopic)) == 5 })
		if err := r.stop(); err != nil {
			t.Fatalf("Run: %v", err)
		}
		got := e.read(relayTopic)
		if len(got) != 5 {
			t.Fatalf("main topic holds %d records, want 5 (no duplicate, no loss)", len(got))
		}
		for i := range got {
			checkRefed(t, got[i], recs[i], mds[i], 2)
		}
		if c := e.committed(relayGroup+"-relay", e.step(0).Topic); c[1] != 5 {
			t.Errorf("relay committed %v, want partition 1 at 5", c)
		}
		mu.Lock()
		if refused == 0 {
			t.Error("the broker refused no produce: the test did not test a failure")
		}
		mu.Unlock()
		logMu.Lock()
		defer logMu.Unlock()
		if !strings.Contains(logs.String(), "level=ERROR") || !strings.Contains(logs.String(), "could not re-feed") {
			t.Errorf("no error line for the failed re-feed in:\n%s", logs.String())
		}
	})
}

type lockedWriter struct {
	w  *bytes.Buffer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func TestRelayFailsOnMissingTopic(t *testing.T) {
	for _, tc := range []struct{ skip, want string }{
		{"orders.retry-5s", `relay: topic orders.retry-5s does not exist: create the retry and DLQ topics (EnsureTopics creates them)`},
		{"orders.dlq", `relay: topic orders.dlq does not exist: create the retry and DLQ topics (EnsureTopics creates them)`},
		{"orders", `relay: main topic orders does not exist: create it, then its retry and DLQ topics`},
	} {
		t.Run(tc.skip, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				e := newVirtualEnv(t, 2, 2, tc.skip)
				r, err := relay.New([]*ladder.Ladder{e.ladder}, relay.WithClientOpts(e.kopts...))
				if err != nil {
					t.Fatal(err)
				}
				if err := r.Run(context.Background()); err == nil || err.Error() != tc.want {
					t.Fatalf("Run = %v, want %q", err, tc.want)
				}
				groups, err := e.adm.ListGroups(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				if len(groups) != 0 {
					t.Errorf("groups %v exist: Run joined before checking its topics", groups.Groups())
				}
			})
		})
	}
}

func TestNew(t *testing.T) {
	tiers := []ladder.Tier{{Delay: time.Second}}
	newLadder := func(topic, group string, opts ...ladder.Opt) *ladder.Ladder {
		l, err := ladder.New(topic, group, tiers, opts...)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	r, err := relay.New([]*ladder.Ladder{newLadder("orders", "svc"), newLadder("payments", "svc")})
	if err != nil || r.Group() != "svc-relay" {
		t.Fatalf("New = %v, %v; want group svc-relay", r, err)
	}
	r, err = relay.New([]*ladder.Ladder{newLadder("orders", "a"), newLadder("payments", "b")}, relay.WithGroup("both"))
	if err != nil || r.Group() != "both" {
		t.Fatalf("New with WithGroup = %v, %v", r, err)
	}
	// The shortest commit interval franz-go takes: a shorter one failed only in Run.
	if _, err := relay.New([]*ladder.Ladder{newLadder("orders", "a")}, relay.WithCommitInterval(100*time.Millisecond)); err != nil {
		t.Fatalf("New with WithCommitInterval(100ms) = %v", err)
	}
	for _, tc := range []struct {
		name    string
		ladders []*ladder.Ladder
		opts    []relay.Opt
		want    string
	}{
		{"none", nil, nil, "no ladders"},
		{"nil ladder", []*ladder.Ladder{nil}, nil, "ladder 0 is nil"},
		{"groups differ", []*ladder.Ladder{newLadder("orders", "a"), newLadder("payments", "b")}, nil, "WithGroup"},
		{"shared tier topic", []*ladder.Ladder{
			newLadder("orders", "a", ladder.WithNaming("retry-{delay}")),
			newLadder("payments", "a", ladder.WithNaming("retry-{delay}")),
		}, nil, "topic retry-1s is a tier of both orders and payments"},
		{"fetch max wait", []*ladder.Ladder{newLadder("orders", "a")}, []relay.Opt{relay.WithFetchMaxWait(0)}, "fetch max wait"},
		{"delivery timeout", []*ladder.Ladder{newLadder("orders", "a")}, []relay.Opt{relay.WithDeliveryTimeout(0)}, "delivery timeout"},
		{"hold bytes", []*ladder.Ladder{newLadder("orders", "a")}, []relay.Opt{relay.WithHoldBytes(-1)}, "relay: hold bytes -1: want 0 (hold nothing) or more"},
		{"commit interval 0", []*ladder.Ladder{newLadder("orders", "a")}, []relay.Opt{relay.WithCommitInterval(0)},
			"relay: commit interval 0s (WithCommitInterval, commit_interval in a config) is under 100ms, the shortest franz-go commits at: give 100ms or more (default 1s)"},
		{"commit interval under 100ms", []*ladder.Ladder{newLadder("orders", "a")}, []relay.Opt{relay.WithCommitInterval(99 * time.Millisecond)},
			"relay: commit interval 99ms (WithCommitInterval, commit_interval in a config) is under 100ms, the shortest franz-go commits at: give 100ms or more (default 1s)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := relay.New(tc.ladders, tc.opts...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New error = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// TestRelayRunLeavesNoGoroutine runs on real loopback TCP, outside a bubble,
// so that goleak sees every goroutine Run started.
func TestRelayRunLeavesNoGoroutine(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	l := testLadder(t)
	fake, err := kfake.NewCluster(seedTopics(l, 2, 2, nil)...)
	if err != nil {
		t.Fatal(err)
	}
	defer fake.Close()
	kopts := []kgo.Opt{kgo.SeedBrokers(fake.ListenAddrs()...)}
	e := &relayEnv{t: t, fake: fake, kopts: kopts, ladder: l}
	e.cl, err = kgo.NewClient(kgo.SeedBrokers(fake.ListenAddrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer e.cl.Close()
	e.adm = kadm.NewClient(e.cl)

	rec, _ := e.tierRecord(0, 0, "due", time.Now())
	held, _ := e.tierRecord(1, 1, "held", time.Now().Add(time.Hour))
	e.produce(rec, held)
	r, err := relay.New([]*ladder.Ladder{l}, relay.WithClientOpts(kopts...))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- r.Run(ctx) }()
	deadline := time.Now().Add(30 * time.Second)
	for len(e.read(relayTopic)) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no re-feed within 30s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return within 30s of its context being cancelled")
	}
}

// TestRelayFailureMidPipeline: one tier partition holds records for two main
// partitions on two brokers, and the broker of main partition 0 refuses
// produces for a while. The re-feeds to partition 1 succeed meanwhile; the
// tier partition is rewound to the first failed record, so those are re-fed
// again: duplicates on partition 1, nothing lost, each main partition in tier
// order, and the tier committed only once everything landed.
func TestRelayFailureMidPipeline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := testLadder(t)
		fake, kopts := kafkatest.VirtualFake(t, kfake.NumBrokers(2), kfake.SeedTopics(2, l.Topic()),
			kfake.SeedTopics(1, l.DLQ(), l.Steps()[0].Topic, l.Steps()[1].Topic))
		e := newEnvOn(t, fake, kopts, l)
		// Main partitions 0 and 1 on different brokers, so that one broker
		// can refuse partition 0 alone.
		if l0, l1 := fake.LeaderFor(relayTopic, 0), fake.LeaderFor(relayTopic, 1); l0 == l1 {
			if err := fake.MoveTopicPartition(relayTopic, 1, 1-l0); err != nil {
				t.Fatal(err)
			}
		}
		var recs []*kgo.Record
		var mds []headers.Metadata
		for i := range 4 {
			rec, md := e.tierRecord(0, 0, fmt.Sprint("k", i), time.Now())
			rec.Partition = 0 // one tier partition; original partitions 0, 1, 0, 1
			md.OriginalPartition = int32(i % 2)
			rec.Headers = headers.Encode(nil, md)
			recs, mds = append(recs, rec), append(mds, md)
		}
		e.produce(recs...)

		failUntil := time.Now().Add(10 * time.Second)
		var mu sync.Mutex
		refused, mixed := 0, 0
		fake.ControlKey(int16(kmsg.Produce), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
			fake.KeepControl()
			req := kreq.(*kmsg.ProduceRequest)
			has0, has1 := false, false
			for _, rt := range req.Topics {
				for _, rp := range rt.Partitions {
					has0, has1 = has0 || rp.Partition == 0, has1 || rp.Partition == 1
				}
			}
			if !time.Now().Before(failUntil) || !has0 {
				return nil, nil, false
			}
			mu.Lock()
			refused++
			if has1 {
				mixed++
			}
			mu.Unlock()
			return kafkatest.RefuseProduce(req, kerr.NotEnoughReplicas.Code), nil, true
		})

		r := e.start(relay.WithDeliveryTimeout(3 * time.Second))
		time.Sleep(time.Until(failUntil))
		if c := e.committed(relayGroup+"-relay", e.step(0).Topic); c[0] != 0 {
			t.Errorf("relay committed %v while a re-feed failed, want nothing past 0", c)
		}
		waitFor(t, "main partition 0", func() bool {
			n := 0
			for _, g := range e.read(relayTopic) {
				if g.Partition == 0 {
					n++
				}
			}
			return n == 2
		})
		waitFor(t, "the commit", func() bool { return e.committed(relayGroup+"-relay", e.step(0).Topic)[0] == 4 })
		if err := r.stop(); err != nil {
			t.Fatalf("Run: %v", err)
		}
		mu.Lock()
		if refused == 0 || mixed > 0 {
			t.Fatalf("refused %d produce requests, %d of them also for partition 1: the brokers do not split the partitions", refused, mixed)
		}
		mu.Unlock()

		var p0, p1 []string
		for _, g := range e.read(relayTopic) {
			i := int(g.Key[1] - '0')
			checkRefed(t, g, recs[i], mds[i], 2)
			if g.Partition == 0 {
				p0 = append(p0, string(g.Key))
			} else {
				p1 = append(p1, string(g.Key))
			}
		}
		if want := []string{"k0", "k2"}; !slices.Equal(p0, want) {
			t.Errorf("main partition 0 holds %v, want %v", p0, want)
		}
		// Partition 1 got k1, k3 once per attempt of the tier partition.
		if len(p1) < 4 || len(p1)%2 != 0 {
			t.Fatalf("main partition 1 holds %v, want k1, k3 repeated, at least twice", p1)
		}
		for i := 0; i < len(p1); i += 2 {
			if p1[i] != "k1" || p1[i+1] != "k3" {
				t.Errorf("main partition 1 holds %v, want k1, k3 repeated", p1)
				break
			}
		}
		t.Logf("main partition 1 after the outage: %v", p1)
	})
}

// TestRelayHoldsNearDueRecords: a record due within a second is held in
// memory and re-fed by the poll loop at its due time, without a pause (whose
// resume would wait for the fetch in flight); a record due later is paused for.
func TestRelayHoldsNearDueRecords(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newVirtualEnv(t, 1, 1)
		reg := prometheus.NewRegistry()
		m := newMetrics(t, reg)
		warm, _ := e.tierRecord(0, 0, "warm-up", time.Now())
		e.produce(warm)
		r := e.start(relay.WithRegisterer(reg))
		waitFor(t, "the warm-up re-feed", func() bool { return len(e.read(relayTopic)) == 1 })

		now := time.Now()
		var recs []*kgo.Record
		var mds []headers.Metadata
		for i, d := range []time.Duration{300 * time.Millisecond, 600 * time.Millisecond, 5 * time.Second} {
			rec, md := e.tierRecord(0, 0, fmt.Sprint("k", i), now.Add(d))
			recs, mds = append(recs, rec), append(mds, md)
		}
		e.produce(recs...)
		time.Sleep(200 * time.Millisecond)
		if n := len(e.read(relayTopic)); n != 1 {
			t.Fatalf("%d records on the main topic before the first was due, want the warm-up only", n)
		}
		// All three are held; the partition is paused (without a rewind)
		// because the last of them is seconds away.
		if g := gauge(t, m, "retry-5s"); g != 1 {
			t.Errorf("paused partitions = %v while the partition holds a record due in 5s, want 1", g)
		}
		var size int
		for _, r := range recs {
			size += len(r.Key) + len(r.Value)
			for _, h := range r.Headers {
				size += len(h.Key) + len(h.Value)
			}
		}
		if hb := metricValue(t, m.HeldBytes.WithLabelValues("retry-5s")); hb != float64(size) {
			t.Errorf("kretry_held_bytes = %v while the three records are held, want their %d bytes", hb, size)
		}
		waitFor(t, "two re-feeds", func() bool { return len(e.read(relayTopic)) == 3 })
		waitFor(t, "the pause for the third", func() bool { return gauge(t, m, "retry-5s") == 1 })
		waitFor(t, "the third re-feed", func() bool { return len(e.read(relayTopic)) == 4 })
		if err := r.stop(); err != nil {
			t.Fatalf("Run: %v", err)
		}
		if hb := metricValue(t, m.HeldBytes.WithLabelValues("retry-5s")); hb != 0 {
			t.Errorf("kretry_held_bytes = %v after Run, want 0", hb)
		}
		got := e.read(relayTopic)[1:]
		for i := range got {
			checkRefed(t, got[i], recs[i], mds[i], 1)
		}
		// Held records go out at their due time (virtual time: exactly); so
		// does the paused one, resumed early enough to be held too.
		for i := range 3 {
			if late := got[i].Timestamp.Sub(mds[i].DueAt); late > 10*time.Millisecond {
				t.Errorf("%s re-fed %v late, want it re-fed at its due time from memory", got[i].Key, late)
			}
		}
		if c := e.committed(relayGroup+"-relay", e.step(0).Topic); c[0] != 4 {
			t.Errorf("relay committed %v, want partition 0 at 4", c)
		}
		if g := gauge(t, m, "retry-5s"); g != 0 {
			t.Errorf("paused partitions = %v after Run, want 0", g)
		}
	})
}

// TestRelayRebalanceWhileHolding: a second relay joins and leaves while the
// first holds near-due records in memory. Revoked partitions drop what they
// held (unmarked), their new owner fetches it again: every record is re-fed,
// none early, none twice, nothing left paused.
func TestRelayRebalanceWhileHolding(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newVirtualEnv(t, 4, 4)
		regA, regB := prometheus.NewRegistry(), prometheus.NewRegistry()
		mA, mB := newMetrics(t, regA), newMetrics(t, regB)
		a := e.start(relay.WithRegisterer(regA))
		var b *runningRelay
		var recs []*kgo.Record
		var mds []headers.Metadata
		// A record every 100ms on every partition, each due 900ms after it
		// was written: partitions always hold something.
		for round := range 30 {
			if round == 5 {
				b = e.start(relay.WithRegisterer(regB))
			}
			if round == 20 {
				if err := b.stop(); err != nil {
					t.Fatalf("relay B: %v", err)
				}
			}
			for p := range int32(4) {
				rec, md := e.tierRecord(0, p, fmt.Sprintf("r%02d-p%d", round, p), time.Now().Add(900*time.Millisecond))
				recs, mds = append(recs, rec), append(mds, md)
			}
			e.produce(recs[len(recs)-4:]...)
			time.Sleep(100 * time.Millisecond)
		}
		waitFor(t, "every re-feed", func() bool { return len(e.read(relayTopic)) >= len(recs) })
		time.Sleep(5 * time.Second) // room for a duplicate to show
		if err := a.stop(); err != nil {
			t.Fatalf("relay A: %v", err)
		}
		byKey := map[string]int{}
		for i, r := range recs {
			byKey[string(r.Key)] = i
		}
		seen := map[string]int{}
		for _, g := range e.read(relayTopic) {
			i, ok := byKey[string(g.Key)]
			if !ok {
				t.Fatalf("unexpected record %q", g.Key)
			}
			seen[string(g.Key)]++
			checkRefed(t, g, recs[i], mds[i], 4)
		}
		for k, n := range seen {
			if n != 1 {
				t.Errorf("%s re-fed %d times", k, n)
			}
		}
		if len(seen) != len(recs) {
			t.Errorf("%d of %d records re-fed", len(seen), len(recs))
		}
		if ga, gb := gauge(t, mA, "retry-5s"), gauge(t, mB, "retry-5s"); ga != 0 || gb != 0 {
			t.Errorf("paused partitions A=%v B=%v after Run, want 0", ga, gb)
		}
	})
}

func hdr(kv ...string) []kgo.RecordHeader {
	var hs []kgo.RecordHeader
	for i := 0; i < len(kv); i += 2 {
		hs = append(hs, kgo.RecordHeader{Key: kv[i], Value: []byte(kv[i+1])})
	}
	return hs
}

func show(hs []kgo.RecordHeader) string {
	var b strings.Builder
	for _, h := range hs {
		b.WriteString("  " + h.Key + "=" + string(h.Value) + "\n")
	}
	return b.String()
}
