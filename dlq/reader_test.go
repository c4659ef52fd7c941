package dlq_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/dlq"
	"github.com/kretry/kretry/headers"
	"github.com/kretry/kretry/internal/kafkatest"
)

// base is the time the test DLQ's records are dead-lettered around.
var base = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)

// entry is one record to put in a test DLQ.
type entry struct {
	p      int32
	at     time.Duration // after base
	key    string
	reason headers.Reason // "": no kretry headers
	orig   string
	err    string
	value  string
}

// fill is a test DLQ of 2 partitions:
//
//	p0: 0 permanent orders  k1  "order 17 not found"      10:00
//	    1 exhausted orders  k2  "timeout after 30s"       10:20
//	    2 unknown   -       k3  (no kretry headers)       11:05
//	    3 permanent payments k1 "order 99 not found"      11:30
//	p1: 0 panic     orders  k4  "nil map"                 10:10
//	    1 exhausted payments k5 "timeout after 45s"       12:00
var fill = []entry{
	{0, 0, "k1", headers.ReasonPermanent, "orders", "order 17 not found", `{"id":17}`},
	{0, 20 * time.Minute, "k2", headers.ReasonExhausted, "orders", "timeout after 30s", "v2"},
	{0, 65 * time.Minute, "k3", "", "", "", "v3"},
	{0, 90 * time.Minute, "k1", headers.ReasonPermanent, "payments", "order 99 not found", "v4"},
	{1, 10 * time.Minute, "k4", headers.ReasonPanic, "orders", "nil map", "v5"},
	{1, 120 * time.Minute, "k5", headers.ReasonExhausted, "payments", "timeout after 45s", "v6"},
}

// newFake starts kfake with the DLQ and the main topics.
func newFake(t *testing.T) []string {
	t.Helper()
	_, seeds := kafkatest.Fake(t, kfake.NumBrokers(1), kfake.SeedTopics(2, "orders.dlq", "orders", "payments", "other"))
	return seeds
}

func producer(t *testing.T, seeds []string) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func put(t *testing.T, seeds []string, topic string, es ...entry) {
	t.Helper()
	cl := producer(t, seeds)
	for i, e := range es {
		rec := &kgo.Record{
			Topic: topic, Partition: e.p, Key: []byte(e.key), Value: []byte(e.value),
			Timestamp: base.Add(e.at),
			Headers:   []kgo.RecordHeader{{Key: "trace", Value: fmt.Appendf(nil, "t%d", i)}},
		}
		if e.reason != "" {
			md := testMeta(e.orig, e.p, int64(100+i), e.reason, e.err)
			rec.Headers = headers.Encode(rec.Headers, md)
		}
		if err := cl.ProduceSync(context.Background(), rec).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
}

func newReader(t *testing.T, seeds []string, opts ...dlq.Opt) *dlq.Reader {
	t.Helper()
	r, err := dlq.NewReader("orders.dlq", append([]dlq.Opt{dlq.WithClientOpts(kgo.SeedBrokers(seeds...))}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r
}

// positions reads f and returns "p/offset" of every record.
func positions(t *testing.T, r *dlq.Reader, f dlq.Filter) []string {
	t.Helper()
	var got []string
	err := r.Read(context.Background(), f, func(rec *dlq.Record) error {
		got = append(got, fmt.Sprintf("%d/%d", rec.Partition, rec.Offset))
		return nil
	})
	if err != nil {
		t.Fatalf("Read(%+v): %v", f, err)
	}
	return got
}

func TestReadFilters(t *testing.T) {
	seeds := newFake(t)
	put(t, seeds, "orders.dlq", fill...)
	now := base.Add(3 * time.Hour) // 13:00
	r := newReader(t, seeds, dlq.WithClock(func() time.Time { return now }))
	mustTime := func(s string) dlq.TimeBound {
		b, err := dlq.ParseTimeBound(s)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	mustOffsets := func(s string) dlq.OffsetRange {
		o, err := dlq.ParseOffsets(s)
		if err != nil {
			t.Fatal(err)
		}
		return o
	}
	for _, tc := range []struct {
		name string
		f    dlq.Filter
		want []string
	}{
		{"all", dlq.Filter{}, []string{"0/0", "0/1", "0/2", "0/3", "1/0", "1/1"}},
		{"since time", dlq.Filter{Since: mustTime("2026-11-25T10:20")}, []string{"0/1", "0/2", "0/3", "1/1"}},
		{"until time excluded", dlq.Filter{Until: mustTime("2026-11-25T10:20:00Z")}, []string{"0/0", "1/0"}},
		{"since ago", dlq.Filter{Since: mustTime("2h")}, []string{"0/2", "0/3", "1/1"}},
		{"since and until", dlq.Filter{Since: mustTime("3h"), Until: mustTime("2h")}, []string{"0/0", "0/1", "1/0"}},
		{"reason", dlq.Filter{Reasons: []headers.Reason{"permanent"}}, []string{"0/0", "0/3"}},
		{"reasons", dlq.Filter{Reasons: []headers.Reason{"panic", "unknown"}}, []string{"0/2", "1/0"}},
		{"error contains, any case", dlq.Filter{ErrorContains: "TIMEOUT"}, []string{"0/1", "1/1"}},
		{"key", dlq.Filter{Key: "k1"}, []string{"0/0", "0/3"}},
		{"original topic", dlq.Filter{OriginalTopic: "payments"}, []string{"0/3", "1/1"}},
		{"partition", dlq.Filter{Partitions: []int32{1}}, []string{"1/0", "1/1"}},
		{"offsets", dlq.Filter{Offsets: mustOffsets("1-2")}, []string{"0/1", "0/2", "1/1"}},
		{"offsets open", dlq.Filter{Offsets: mustOffsets("3-")}, []string{"0/3"}},
		{"partition and offsets", dlq.Filter{Partitions: []int32{0}, Offsets: mustOffsets("1")}, []string{"0/1"}},
		{"limit", dlq.Filter{Limit: 3}, []string{"0/0", "0/1", "0/2"}},
		{"limit after filter", dlq.Filter{Reasons: []headers.Reason{"exhausted", "panic"}, Limit: 2}, []string{"0/1", "1/0"}},
		{"and", dlq.Filter{OriginalTopic: "orders", ErrorContains: "not found"}, []string{"0/0"}},
		{"nothing", dlq.Filter{Key: "nope"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := positions(t, r, tc.f); !slices.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestReadErrors(t *testing.T) {
	seeds := newFake(t)
	put(t, seeds, "orders.dlq", fill...)
	r := newReader(t, seeds)
	ctx := context.Background()
	noop := func(*dlq.Record) error { return nil }
	if err := r.Read(ctx, dlq.Filter{Partitions: []int32{5}}, noop); err == nil || !strings.Contains(err.Error(), "partitions 0-1") {
		t.Errorf("a partition that does not exist: %v", err)
	}
	if err := r.Read(ctx, dlq.Filter{Reasons: []headers.Reason{"nope"}}, noop); err == nil {
		t.Errorf("an unknown reason reads")
	}
	missing, err := dlq.NewReader("nope.dlq", dlq.WithClientOpts(kgo.SeedBrokers(seeds...)))
	if err != nil {
		t.Fatal(err)
	}
	defer missing.Close()
	if err := missing.Read(ctx, dlq.Filter{}, noop); !errors.Is(err, dlq.ErrUnknownTopic) ||
		!strings.Contains(err.Error(), "topic nope.dlq does not exist: check the name, or create it with `kretry topics apply`") {
		t.Errorf("a DLQ that does not exist: %v, want ErrUnknownTopic naming it and the fix", err)
	}
}

func TestReadEndsAtHighWatermark(t *testing.T) {
	seeds := newFake(t)
	put(t, seeds, "orders.dlq", fill...)
	r := newReader(t, seeds)
	n := 0
	err := r.Read(context.Background(), dlq.Filter{}, func(rec *dlq.Record) error {
		if n == 0 { // records dead-lettered during the read are not part of it
			put(t, seeds, "orders.dlq", entry{0, time.Hour, "late", headers.ReasonPanic, "orders", "x", "v"},
				entry{1, time.Hour, "late", headers.ReasonPanic, "orders", "x", "v"})
		}
		n++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n != len(fill) {
		t.Errorf("read %d records, want the %d there at the start", n, len(fill))
	}
	if got := positions(t, r, dlq.Filter{Key: "late"}); len(got) != 2 {
		t.Errorf("the next read sees %v, want the 2 late records", got)
	}
}

func TestRecord(t *testing.T) {
	seeds := newFake(t)
	put(t, seeds, "orders.dlq", fill...)
	r := newReader(t, seeds)
	ctx := context.Background()
	rec, err := r.Record(ctx, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Reason != "permanent" || string(rec.Key) != "k1" || rec.Meta.OriginalOffset != 100 || rec.Meta.Error != "order 17 not found" {
		t.Errorf("record 0/0: %+v", rec)
	}
	if _, err := r.Record(ctx, 1, 2); err == nil || !strings.Contains(err.Error(), "offsets 0-1") {
		t.Errorf("an offset past the end: %v", err)
	}
	if _, err := r.Record(ctx, 2, 0); err == nil || !strings.Contains(err.Error(), "no partition 2") {
		t.Errorf("a partition that does not exist: %v", err)
	}
}

func TestStats(t *testing.T) {
	seeds := newFake(t)
	put(t, seeds, "orders.dlq", fill...)
	r := newReader(t, seeds)
	s, err := r.Stats(context.Background(), dlq.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if s.Total != len(fill) {
		t.Errorf("total %d, want %d", s.Total, len(fill))
	}
	check := func(name string, got []dlq.Count, want []dlq.Count) {
		t.Helper()
		if !slices.Equal(got, want) {
			t.Errorf("%s: %v, want %v", name, got, want)
		}
		sum := 0
		for _, c := range got {
			sum += c.Count
		}
		if sum != s.Total {
			t.Errorf("%s adds up to %d, want %d", name, sum, s.Total)
		}
	}
	check("by reason", s.Reasons(), []dlq.Count{{"exhausted", 2}, {"permanent", 2}, {"panic", 1}, {"unknown", 1}})
	check("by original topic", s.OriginalTopics(), []dlq.Count{{"orders", 3}, {"payments", 2}, {"", 1}})
	check("by error", s.Errors(), []dlq.Count{{"order <n> not found", 2}, {"timeout after <n>s", 2}, {"", 1}, {"nil map", 1}})
	hours := s.Hours()
	want := []dlq.HourCount{{base, 3}, {base.Add(time.Hour), 2}, {base.Add(2 * time.Hour), 1}}
	if !slices.Equal(hours, want) {
		t.Errorf("by hour: %v, want %v", hours, want)
	}
	if !s.First.Equal(base) || !s.Last.Equal(base.Add(2*time.Hour)) {
		t.Errorf("first %v last %v", s.First, s.Last)
	}
	f, err := r.Stats(context.Background(), dlq.Filter{OriginalTopic: "orders"})
	if err != nil {
		t.Fatal(err)
	}
	if f.Total != 3 || f.ByReason["permanent"] != 1 || f.ByReason["exhausted"] != 1 || f.ByReason["panic"] != 1 {
		t.Errorf("filtered stats: %+v", f)
	}
}

func TestReadEndsWhenRetentionRemovesTheSpan(t *testing.T) {
	seeds := newFake(t)
	put(t, seeds, "orders.dlq", fill...)
	r := newReader(t, seeds, dlq.WithIdleCheck(50*time.Millisecond))
	adm := kadm.NewClient(producer(t, seeds))
	var got []string
	err := r.Read(context.Background(), dlq.Filter{}, func(rec *dlq.Record) error {
		if rec.Partition == 0 && rec.Offset == 0 {
			// Partition 1 loses all its records after the read listed them.
			os := kadm.Offsets{}
			os.Add(kadm.Offset{Topic: "orders.dlq", Partition: 1, At: 2})
			resp, err := adm.DeleteRecords(context.Background(), os)
			if err == nil {
				err = resp.Error()
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		got = append(got, fmt.Sprintf("%d/%d", rec.Partition, rec.Offset))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"0/0", "0/1", "0/2", "0/3"}; !slices.Equal(got, want) {
		t.Errorf("read %v, want %v", got, want)
	}
}
