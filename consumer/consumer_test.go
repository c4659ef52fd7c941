package consumer_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/consumer"
	"github.com/kretry/kretry/headers"
	"github.com/kretry/kretry/internal/metrics"
	"github.com/kretry/kretry/ladder"
	"github.com/kretry/kretry/topics"
)

// checkDLQRecord checks a DLQ record against the record it came from: same
// key, value and user headers, and kretry headers saying reason, attempts,
// tier and errText, failed at failedAt, first delivered as orig.
func checkForwarded(t *testing.T, got, orig *kgo.Record, want headers.Metadata) {
	t.Helper()
	if string(got.Key) != string(orig.Key) || string(got.Value) != string(orig.Value) {
		t.Errorf("forwarded key/value = %q/%q, want %q/%q", got.Key, got.Value, orig.Key, orig.Value)
	}
	if g, w := userHeaders(got.Headers), userHeaders(orig.Headers); g != w {
		t.Errorf("forwarded user headers = %s, want %s", g, w)
	}
	md, ok, err := headers.Decode(got.Headers)
	if err != nil || !ok {
		t.Fatalf("Decode(forwarded headers) = ok %v, err %v", ok, err)
	}
	if v, _ := header(got, headers.HeaderVersion); v != "1" {
		t.Errorf("kretry-version = %q, want 1", v)
	}
	// Compare times at the header's precision.
	norm := func(m headers.Metadata) headers.Metadata {
		for _, tp := range []*time.Time{&m.DueAt, &m.OriginalTimestamp, &m.FirstFailureAt, &m.LastFailureAt} {
			*tp = tp.Truncate(time.Millisecond).UTC()
		}
		return m
	}
	if g, w := norm(md), norm(want); g != w {
		t.Errorf("forwarded metadata\n got %+v\nwant %+v", g, w)
	}
	for _, h := range got.Headers {
		if strings.HasPrefix(h.Key, headers.HeaderPrefix) {
			if _, one := header(got, h.Key); !one {
				t.Errorf("header %s appears more than once", h.Key)
			}
		}
	}
}

func TestPermanentGoesToDLQAfterOneAttempt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCluster(t, 4, 2)
		reg := prometheus.NewRegistry()
		var calls counter
		var failedAt time.Time
		h := consumer.HandlerFunc(func(_ context.Context, r *kgo.Record) error {
			calls.add(r.Key)
			if string(r.Key) == "bad" {
				failedAt = time.Now()
				return consumer.Permanent(fmt.Errorf("order %s: unknown customer", r.Value))
			}
			return nil
		})
		producedAt := time.Now().Add(-time.Second)
		orig := &kgo.Record{Partition: 3, Key: []byte("bad"), Value: []byte("o-1"), Timestamp: producedAt,
			Headers: []kgo.RecordHeader{{Key: "trace", Value: []byte("abc")}, {Key: "kind", Value: nil}}}
		c.produce(orig, &kgo.Record{Partition: 3, Key: []byte("good"), Value: []byte("o-2")})

		r := c.start(h, consumer.WithRelay(false), consumer.WithRegisterer(reg))
		waitFor(t, "the DLQ record", func() bool { return len(c.read(c.ladder.DLQ())) == 1 })
		waitFor(t, "the good record", func() bool { return calls.get("good") == 1 })
		if n := clientMetrics(t, reg); n == 0 {
			t.Error("no kretry_client_* metric{component=consumer,group=orders-service} while Run runs")
		}
		if err := r.stop(); err != nil {
			t.Fatalf("Run: %v", err)
		}

		if n := calls.get("bad"); n != 1 {
			t.Errorf("handler called %d times for the permanent failure, want 1", n)
		}
		dlq := c.read(c.ladder.DLQ())[0]
		if dlq.Partition != 1 {
			t.Errorf("DLQ partition = %d, want 3 mod 2 = 1", dlq.Partition)
		}
		checkForwarded(t, dlq, orig, headers.Metadata{
			Group: testGroup, Attempts: 1, Tier: "dlq", DueAt: failedAt,
			OriginalTopic: testTopic, OriginalPartition: 3, OriginalOffset: 0, OriginalTimestamp: producedAt,
			FirstFailureAt: failedAt, LastFailureAt: failedAt,
			Error: "order o-1: unknown customer", Reason: headers.ReasonPermanent,
		})
		for _, s := range c.ladder.Steps() {
			if n := len(c.read(s.Topic)); n != 0 {
				t.Errorf("%s holds %d records, want 0", s.Topic, n)
			}
		}
		if got := c.committed(testGroup, testTopic); got[3] != 2 {
			t.Errorf("committed offsets = %v, want partition 3 at 2", got)
		}
		m, err := metrics.New(reg)
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			c    prometheus.Collector
			want float64
		}{
			{m.Records.WithLabelValues(testTopic, metrics.OutcomeDeadLettered), 1},
			{m.Records.WithLabelValues(testTopic, metrics.OutcomeOK), 1},
			{m.DeadLettered.WithLabelValues(testTopic, "permanent", "dlq"), 1},
			{m.Forwarded.WithLabelValues(testTopic, metrics.TierDLQ), 1},
		} {
			if got := metricValue(t, tc.c); got != tc.want {
				t.Errorf("%v = %v, want %v", tc.c, got, tc.want)
			}
		}
		if n := seriesCount(m.HandlerDuration); n != 1 {
			t.Errorf("handler duration series = %d, want 1", n)
		}
		// The client metrics of kprom are unregistered when Run returns.
		if n := clientMetrics(t, reg); n != 0 {
			t.Errorf("%d kretry_client_* metrics still registered after Run returned", n)
		}
	})
}

// clientMetrics counts the kretry_client_* series of the consumer's client
// in reg.
func clientMetrics(t *testing.T, reg *prometheus.Registry) int {
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
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["component"] == "consumer" && labels["group"] == testGroup {
				n++
			}
		}
	}
	return n
}

func TestFirstFailureGoesToFirstTier(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCluster(t, 4, 2)
		var logs logBuffer
		var failedAt time.Time
		h := consumer.HandlerFunc(func(context.Context, *kgo.Record) error {
			failedAt = time.Now()
			return errTransient
		})
		producedAt := time.Now().Add(-time.Second)
		orig := &kgo.Record{Partition: 2, Key: []byte("k"), Value: []byte("v"), Timestamp: producedAt,
			Headers: []kgo.RecordHeader{{Key: "a", Value: []byte("1")}}}
		c.produce(&kgo.Record{Partition: 2, Key: []byte("first"), Value: []byte("x")}, orig)
		first := c.ladder.Steps()[0]

		r := c.start(h, consumer.WithRelay(false), consumer.WithLogger(logs.logger()))
		waitFor(t, "two tier records", func() bool { return len(c.read(first.Topic)) == 2 })
		if err := r.stop(); err != nil {
			t.Fatalf("Run: %v", err)
		}
		got := c.read(first.Topic)[1]
		if got.Partition != 0 {
			t.Errorf("tier partition = %d, want 2 mod 2 = 0", got.Partition)
		}
		checkForwarded(t, got, orig, headers.Metadata{
			Group: testGroup, Attempts: 1, Tier: "retry-5s", DueAt: failedAt.Add(5 * time.Second),
			OriginalTopic: testTopic, OriginalPartition: 2, OriginalOffset: 1, OriginalTimestamp: producedAt,
			FirstFailureAt: failedAt, LastFailureAt: failedAt, Error: errTransient.Error(),
		})
		if got := c.committed(testGroup, testTopic); got[2] != 2 {
			t.Errorf("committed = %v, want partition 2 at 2", got)
		}
		// One info line per forward, with what an operator needs.
		lines := strings.Count(logs.String(), "kretry record forwarded to a retry tier")
		if lines != 2 {
			t.Errorf("forward log lines = %d, want 2; logs:\n%s", lines, logs.String())
		}
		for _, want := range []string{"tier=retry-5s", "attempt=1", "partition=2", "offset=1", `error="transient failure"`} {
			if !strings.Contains(logs.String(), want) {
				t.Errorf("logs lack %s:\n%s", want, logs.String())
			}
		}
	})
}

// A record re-fed by the relay carries its history: the next failure counts
// on from it, keeps the first delivery and first failure, and moves on to the
// next tier; the last tier's failures go to the DLQ as exhausted.
func TestRefedRecordMovesUpTheLadder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCluster(t, 2, 2)
		failedAt := map[string]time.Time{}
		h := consumer.HandlerFunc(func(_ context.Context, r *kgo.Record) error {
			failedAt[string(r.Key)] = time.Now()
			return errTransient
		})
		first := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
		history := func(attempts int, tier string) headers.Metadata {
			return headers.Metadata{
				Group: testGroup, Attempts: attempts, Tier: tier, DueAt: first.Add(time.Minute),
				OriginalTopic: testTopic, OriginalPartition: 1, OriginalOffset: 42, OriginalTimestamp: first.Add(-time.Second),
				FirstFailureAt: first, LastFailureAt: first.Add(30 * time.Second), Error: "earlier", Replays: 2,
			}
		}
		user := []kgo.RecordHeader{{Key: "u", Value: []byte("1")}}
		second := &kgo.Record{Partition: 1, Key: []byte("second"), Headers: headers.Encode(user, history(1, "retry-5s"))}
		last := &kgo.Record{Partition: 1, Key: []byte("last"), Headers: headers.Encode(user, history(4, "retry-10m"))}
		c.produce(second, last)

		r := c.start(h, consumer.WithRelay(false))
		steps := c.ladder.Steps()
		waitFor(t, "the tier and DLQ records", func() bool {
			return len(c.read(steps[1].Topic)) == 1 && len(c.read(c.ladder.DLQ())) == 1
		})
		if err := r.stop(); err != nil {
			t.Fatalf("Run: %v", err)
		}
		want := history(2, "retry-1m")
		want.DueAt, want.LastFailureAt, want.Error = failedAt["second"].Add(time.Minute), failedAt["second"], errTransient.Error()
		checkForwarded(t, c.read(steps[1].Topic)[0], second, want)
		want = history(5, "retry-10m")
		want.DueAt, want.LastFailureAt, want.Error = failedAt["last"], failedAt["last"], errTransient.Error()
		want.Reason = headers.ReasonExhausted
		checkForwarded(t, c.read(c.ladder.DLQ())[0], last, want)
	})
}

func TestPanicGoesToDLQ(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCluster(t, 1, 1)
		var calls counter
		h := consumer.HandlerFunc(func(_ context.Context, r *kgo.Record) error {
			calls.add(r.Key)
			if string(r.Key) == "boom" {
				var m map[string]int
				//lint:ignore SA5000 the nil-map write is the point: a real runtime panic
				m["nil map"]++
			}
			return nil
		})
		c.produce(&kgo.Record{Key: []byte("boom")}, &kgo.Record{Key: []byte("after")})
		r := c.start(h, consumer.WithRelay(false))
		waitFor(t, "the record after the panic", func() bool { return calls.get("after") == 1 })
		if err := r.stop(); err != nil {
			t.Fatalf("Run: %v", err)
		}
		dlq := c.read(c.ladder.DLQ())
		if len(dlq) != 1 {
			t.Fatalf("DLQ holds %d records, want 1", len(dlq))
		}
		if v, _ := header(dlq[0], headers.HeaderReason); v != "panic" {
			t.Errorf("kretry-reason = %q, want panic", v)
		}
		if v, _ := header(dlq[0], headers.HeaderErrorText); !strings.HasPrefix(v, "panic: assignment to entry in nil map") {
			t.Errorf("kretry-error = %q, want the panic's text", v)
		}
		if n := calls.get("boom"); n != 1 {
			t.Errorf("handler called %d times for the panicking record, want 1", n)
		}
		if got := c.committed(testGroup, testTopic); got[0] != 2 {
			t.Errorf("committed = %v, want 2", got)
		}
	})
}

func TestMaxAgeSendsOldRecordsToDLQ(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCluster(t, 1, 1)
		c.cfg.Topics[0].MaxAge = time.Hour
		var calls counter
		h := consumer.HandlerFunc(func(_ context.Context, r *kgo.Record) error {
			calls.add(r.Key)
			return nil
		})
		now := time.Now()
		// A re-fed record is as old as its first delivery, not its re-feed.
		refed := headers.Metadata{
			Group: testGroup, Attempts: 1, Tier: "retry-5s", DueAt: now,
			OriginalTopic: testTopic, OriginalTimestamp: now.Add(-61 * time.Minute),
			FirstFailureAt: now.Add(-time.Minute), LastFailureAt: now.Add(-time.Minute),
		}
		c.produce(
			&kgo.Record{Key: []byte("old"), Timestamp: now.Add(-2 * time.Hour)},
			&kgo.Record{Key: []byte("old-refed"), Headers: headers.Encode(nil, refed)},
			&kgo.Record{Key: []byte("young"), Timestamp: now.Add(-59 * time.Minute)},
		)
		r := c.start(h, consumer.WithRelay(false))
		waitFor(t, "the young record", func() bool { return calls.get("young") == 1 })
		waitFor(t, "two DLQ records", func() bool { return len(c.read(c.ladder.DLQ())) == 2 })
		if err := r.stop(); err != nil {
			t.Fatalf("Run: %v", err)
		}
		if calls.get("old")+calls.get("old-refed") != 0 {
			t.Errorf("the handler ran for an expired record")
		}
		for i, d := range c.read(c.ladder.DLQ()) {
			md, _, err := headers.Decode(d.Headers)
			if err != nil {
				t.Fatal(err)
			}
			if md.Reason != headers.ReasonExpired || !strings.Contains(md.Error, "max_age 1h0m0s") {
				t.Errorf("DLQ record %d: reason %q, error %q; want expired naming max_age", i, md.Reason, md.Error)
			}
		}
	})
}

func TestInvalidMetadataGoesToDLQWithoutHandler(t *testing.T) {
	valid := headers.Encode(nil, headers.Metadata{
		Group: testGroup, Attempts: 1, Tier: "retry-5s", OriginalTopic: testTopic,
	})
	with := func(key, value string) []kgo.RecordHeader {
		hs := []kgo.RecordHeader{{Key: "user", Value: []byte("kept")}}
		for _, h := range valid {
			if h.Key == key {
				h.Value = []byte(value)
			}
			hs = append(hs, h)
		}
		return hs
	}
	cases := map[string]struct {
		headers []kgo.RecordHeader
		names   string // the header the error names
	}{
		"attempts not a number": {with(headers.HeaderAttempts, "x"), headers.HeaderAttempts},
		"attempts zero":         {with(headers.HeaderAttempts, "0"), headers.HeaderAttempts},
		"unknown version":       {with(headers.HeaderVersion, "2"), headers.HeaderVersion},
		"bad time":              {with(headers.HeaderDueAt, "yesterday"), headers.HeaderDueAt},
		"repeated":              {append(with("", ""), kgo.RecordHeader{Key: headers.HeaderTier, Value: []byte("retry-1m")}), headers.HeaderTier},
		"tier without group":    {[]kgo.RecordHeader{{Key: headers.HeaderTier, Value: []byte("retry-5s")}}, headers.HeaderGroup},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				c := newCluster(t, 1, 1)
				var calls atomic.Int32
				h := consumer.HandlerFunc(func(context.Context, *kgo.Record) error {
					calls.Add(1)
					return nil
				})
				orig := &kgo.Record{Key: []byte("k"), Value: []byte("v"), Headers: tc.headers}
				c.produce(orig)
				r := c.start(h, consumer.WithRelay(false))
				waitFor(t, "the DLQ record", func() bool { return len(c.read(c.ladder.DLQ())) == 1 })
				if err := r.stop(); err != nil {
					t.Fatalf("Run: %v", err)
				}
				if n := calls.Load(); n != 0 {
					t.Errorf("handler called %d times, want 0", n)
				}
				d := c.read(c.ladder.DLQ())[0]
				md, ok, err := headers.Decode(d.Headers)
				if err != nil || !ok {
					t.Fatalf("the DLQ record's headers do not decode: %v", err)
				}
				if md.Reason != headers.ReasonInvalidMetadata || md.Attempts != 1 || md.OriginalOffset != 0 ||
					!strings.Contains(md.Error, tc.names) {
					t.Errorf("DLQ metadata %+v: want reason invalid-metadata, attempts 1, error naming %s", md, tc.names)
				}
				if g := userHeaders(d.Headers); g != `"user"="kept";` && tc.names != headers.HeaderGroup {
					t.Errorf("user headers = %s, want the user header kept", g)
				}
				if got := c.committed(testGroup, testTopic); got[0] != 1 {
					t.Errorf("committed = %v, want 1", got)
				}
			})
		})
	}
}

func TestOtherGroupsRetryIsSkipped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCluster(t, 1, 1)
		reg := prometheus.NewRegistry()
		var calls counter
		h := consumer.HandlerFunc(func(_ context.Context, r *kgo.Record) error {
			calls.add(r.Key)
			return nil
		})
		now := time.Now()
		other := headers.Metadata{
			Group: "billing", Attempts: 1, Tier: "retry-5s", DueAt: now,
			OriginalTopic: testTopic, OriginalTimestamp: now, FirstFailureAt: now, LastFailureAt: now,
		}
		ours := other
		ours.Group = testGroup
		c.produce(
			&kgo.Record{Key: []byte("billing's"), Headers: headers.Encode(nil, other)},
			&kgo.Record{Key: []byte("ours"), Headers: headers.Encode(nil, ours)},
		)
		r := c.start(h, consumer.WithRelay(false), consumer.WithRegisterer(reg))
		waitFor(t, "our re-fed record", func() bool { return calls.get("ours") == 1 })
		if err := r.stop(); err != nil {
			t.Fatalf("Run: %v", err)
		}
		if n := calls.get("billing's"); n != 0 {
			t.Errorf("handler ran %d times for another group's retry, want 0", n)
		}
		if got := c.committed(testGroup, testTopic); got[0] != 2 {
			t.Errorf("committed = %v, want 2 (past the skipped record)", got)
		}
		m, _ := metrics.New(reg)
		if got := metricValue(t, m.Records.WithLabelValues(testTopic, metrics.OutcomeSkipped)); got != 1 {
			t.Errorf("skipped = %v, want 1", got)
		}
	})
}

func TestClassifierDiscard(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCluster(t, 1, 1)
		errGone := errors.New("customer deleted")
		classify := func(err error) consumer.Decision {
			if errors.Is(err, errGone) {
				return consumer.Discard
			}
			return consumer.DefaultClassifier(err)
		}
		var calls counter
		h := consumer.HandlerFunc(func(_ context.Context, r *kgo.Record) error {
			calls.add(r.Key)
			switch string(r.Key) {
			case "gone":
				return fmt.Errorf("order 7: %w", errGone)
			case "perm":
				return consumer.Permanent(errors.New("bad"))
			}
			return errTransient
		})
		c.produce(&kgo.Record{Key: []byte("gone")}, &kgo.Record{Key: []byte("perm")}, &kgo.Record{Key: []byte("retry")})
		r := c.start(h, consumer.WithRelay(false), consumer.WithClassifier(classify))
		waitFor(t, "all three", func() bool { return calls.total() == 3 })
		waitFor(t, "commit", func() bool { return c.committed(testGroup, testTopic)[0] == 3 })
		if err := r.stop(); err != nil {
			t.Fatalf("Run: %v", err)
		}
		if n := len(c.read(c.ladder.DLQ())); n != 1 {
			t.Errorf("DLQ holds %d, want 1 (the permanent one)", n)
		}
		if n := len(c.read(c.ladder.Steps()[0].Topic)); n != 1 {
			t.Errorf("first tier holds %d, want 1 (the transient one)", n)
		}
	})
}

// A forward the broker refuses leaves the record uncommitted, and nothing
// after it on the partition is committed until it is forwarded: the records
// after it may be handled (forwards are pipelined) and are handled again.
func TestFailedForwardLeavesOffsetUncommitted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCluster(t, 1, 1)
		var logs logBuffer
		var calls counter
		h := consumer.HandlerFunc(func(_ context.Context, r *kgo.Record) error {
			calls.add(r.Key)
			if string(r.Key) == "perm" {
				return consumer.Permanent(errors.New("bad"))
			}
			return nil
		})
		r := c.start(h, consumer.WithRelay(false), consumer.WithLogger(logs.logger()))
		c.produce(&kgo.Record{Key: []byte("ok-1")})
		waitFor(t, "ok-1", func() bool { return calls.get("ok-1") == 1 })
		if _, err := c.adm.DeleteTopics(context.Background(), c.ladder.DLQ()); err != nil {
			t.Fatal(err)
		}
		c.produce(&kgo.Record{Key: []byte("perm")}, &kgo.Record{Key: []byte("ok-2")})
		waitFor(t, "the failed forward", func() bool {
			return strings.Count(logs.String(), "kretry forward failed") >= 3
		})
		time.Sleep(time.Minute)
		if err := r.stop(); err != nil {
			t.Fatalf("Run: %v", err)
		}
		if got := c.committed(testGroup, testTopic); got[0] != 1 {
			t.Errorf("committed = %v, want 1: the failed record and the one after it stay uncommitted", got)
		}
		if !strings.Contains(logs.String(), "offset=1") || !strings.Contains(logs.String(), "to=orders.dlq") {
			t.Errorf("the error log does not name the record and the target:\n%s", logs.String())
		}

		// Once the DLQ is back, a new run forwards it and moves on.
		if _, err := c.adm.CreateTopic(context.Background(), 1, 1, nil, c.ladder.DLQ()); err != nil {
			t.Fatal(err)
		}
		r = c.start(h, consumer.WithRelay(false))
		waitFor(t, "the DLQ record", func() bool { return len(c.read(c.ladder.DLQ())) == 1 })
		waitFor(t, "ok-2 handled again", func() bool { return calls.get("ok-2") == 2 })
		if err := r.stop(); err != nil {
			t.Fatalf("Run: %v", err)
		}
		if got := c.committed(testGroup, testTopic); got[0] != 3 {
			t.Errorf("committed = %v, want 3", got)
		}
		if n := calls.get("perm"); n != 2 {
			t.Errorf("perm handled %d times, want 2 (once per run)", n)
		}
	})
}

func TestMissingTopicsFailRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCluster(t, 1, 1)
		c.cfg.Source = "kretry.yaml"
		if _, err := c.adm.DeleteTopics(context.Background(), c.ladder.DLQ(), c.ladder.Steps()[1].Topic); err != nil {
			t.Fatal(err)
		}
		h := consumer.HandlerFunc(func(context.Context, *kgo.Record) error { return nil })
		cons, err := consumer.New(c.cfg, h, consumer.WithRelay(false), consumer.WithClientOpts(c.kopts...))
		if err != nil {
			t.Fatal(err)
		}
		err = cons.Run(context.Background())
		want := `topics orders.retry-1m, orders.dlq do not exist: create the retry and DLQ topics`
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Run = %v, want an error containing %s", err, want)
		}
		var missing *topics.MissingTopicsError
		if !errors.As(err, &missing) || strings.Join(missing.Ladder, ",") != "orders.retry-1m,orders.dlq" || len(missing.Main) != 0 {
			t.Errorf("Run = %v, want a *topics.MissingTopicsError naming orders.retry-1m and orders.dlq", err)
		}
		if strings.Contains(err.Error(), "kretry topics apply") {
			t.Errorf("Run = %v: a library error tells its user to run the CLI", err)
		}

		c.cfg.Topics = append(c.cfg.Topics, c.cfg.Topics[0])
		c.cfg.Topics[1].Name = "payments"
		cons, err = consumer.New(c.cfg, h, consumer.WithRelay(false), consumer.WithClientOpts(c.kopts...))
		if err != nil {
			t.Fatal(err)
		}
		err = cons.Run(context.Background())
		if err == nil || !strings.Contains(err.Error(), "main topic payments does not exist") {
			t.Errorf("Run = %v, want it to name the missing main topic", err)
		}
	})
}

func TestNewChecksItsArguments(t *testing.T) {
	ok := consumer.HandlerFunc(func(context.Context, *kgo.Record) error { return nil })
	c := func() *cluster {
		// New connects to nothing, so a config without a cluster will do.
		cl := &cluster{}
		cl.cfg = newConfig()
		return cl
	}
	cases := []struct {
		name string
		edit func(*cluster) (consumer.Handler, []consumer.Opt)
		want string
	}{
		{"nil handler", func(*cluster) (consumer.Handler, []consumer.Opt) { return nil, nil }, "nil handler"},
		{"no group", func(c *cluster) (consumer.Handler, []consumer.Opt) { c.cfg.Group = ""; return ok, nil }, "group: required"},
		{"no topics", func(c *cluster) (consumer.Handler, []consumer.Opt) { c.cfg.Topics = nil; return ok, nil }, "topics: required"},
		{"no brokers", func(c *cluster) (consumer.Handler, []consumer.Opt) { c.cfg.Brokers = nil; return ok, nil }, "brokers"},
		{"bad ladder", func(c *cluster) (consumer.Handler, []consumer.Opt) {
			c.cfg.Topics[0].Tiers = []ladder.Tier{{Delay: time.Minute}, {Delay: time.Second}}
			return ok, nil
		}, "topics[0].tiers[1].delay: must be longer"},
		{"bad broker", func(c *cluster) (consumer.Handler, []consumer.Opt) {
			c.cfg.Brokers = []string{"tcp://kafka:9092"}
			return ok, nil
		}, "brokers[0]: must be a broker address"},
		{"session timeout under the broker's minimum", func(c *cluster) (consumer.Handler, []consumer.Opt) {
			c.cfg.SessionTimeout = time.Second
			return ok, nil
		}, "session_timeout: must be between 6s and 30m"},
		{"negative grace", func(*cluster) (consumer.Handler, []consumer.Opt) {
			return ok, []consumer.Opt{consumer.WithGracePeriod(-time.Second)}
		}, "grace period"},
		{"negative max_age", func(c *cluster) (consumer.Handler, []consumer.Opt) {
			c.cfg.Topics[0].MaxAge = -time.Second
			return ok, nil
		}, "max_age"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cl := c()
			h, opts := tc.edit(cl)
			_, err := consumer.New(cl.cfg, h, append(opts, consumer.WithRelay(false))...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New = %v, want an error mentioning %q", err, tc.want)
			}
		})
	}
	if _, err := consumer.New(nil, ok); err == nil {
		t.Error("New(nil config) succeeded")
	}
	if _, err := consumer.New(newConfig(), ok, consumer.WithRelay(false)); err != nil {
		t.Errorf("New with a good config = %v", err)
	}

	// cfg.Relay reaches the relay, which New builds and relay.New
	// checks: nil HoldBytes is the relay's default, 0 holds nothing.
	for name, hold := range map[string]*int{"nil": nil, "0": new(0), "64 MiB": new(64 << 20)} {
		cfg := newConfig()
		cfg.Relay.HoldBytes = hold
		if _, err := consumer.New(cfg, ok); err != nil {
			t.Errorf("New with relay hold bytes %s = %v", name, err)
		}
	}
	cfg := newConfig()
	cfg.Relay.HoldBytes = new(-1)
	if _, err := consumer.New(cfg, ok); err == nil || !strings.Contains(err.Error(), "relay.hold_bytes: must be ≥ 0") {
		t.Errorf("New with relay hold bytes -1 = %v, want the error of relay.hold_bytes", err)
	}
}

// Shutdown in mid-flight loses nothing: every record ends handled or
// forwarded, each of those is committed or handled again by the next run, and
// the handlers in flight finish within the grace period.
func TestShutdownMidFlightLosesNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCluster(t, 4, 4)
		const n = 200
		var recs []*kgo.Record
		for i := range n {
			recs = append(recs, &kgo.Record{Partition: int32(i % 4), Key: []byte(strconv.Itoa(i))})
		}
		c.produce(recs...)

		var mu sync.Mutex
		done := map[string]int{} // handled with nil, by key
		var calls counter
		var inFlightCancelled atomic.Int32
		h := consumer.HandlerFunc(func(ctx context.Context, r *kgo.Record) error {
			calls.add(r.Key)
			time.Sleep(time.Second) // work
			if ctx.Err() != nil {
				inFlightCancelled.Add(1)
			}
			i, _ := strconv.Atoi(string(r.Key))
			if i%5 == 0 {
				return errTransient
			}
			mu.Lock()
			done[string(r.Key)]++
			mu.Unlock()
			return nil
		})
		r := c.start(h, consumer.WithRelay(false), consumer.WithGracePeriod(5*time.Second))
		waitFor(t, "some records", func() bool { return calls.total() >= 40 })
		if err := r.stop(); err != nil {
			t.Fatalf("Run: %v", err)
		}
		if n := inFlightCancelled.Load(); n != 0 {
			t.Errorf("%d handlers saw their context cancelled within the grace period", n)
		}
		committed := c.committed(testGroup, testTopic)
		tier := map[string]bool{}
		for _, tr := range c.read(c.ladder.Steps()[0].Topic) {
			tier[string(tr.Key)] = true
		}
		// Everything below the committed offsets is durable.
		for _, rec := range recs {
			if rec.Offset >= committed[rec.Partition] {
				continue
			}
			k := string(rec.Key)
			mu.Lock()
			handled := done[k] > 0
			mu.Unlock()
			if !handled && !tier[k] {
				t.Errorf("record %s (p%d o%d) is below the committed offset but neither handled nor forwarded", k, rec.Partition, rec.Offset)
			}
		}
		if total := committed[0] + committed[1] + committed[2] + committed[3]; total == 0 || total == n {
			t.Errorf("committed %d records of %d: the stop did not happen in mid-flight", total, n)
		}

		// A second run finishes the rest from the committed offsets.
		r = c.start(h, consumer.WithRelay(false))
		waitFor(t, "everything committed", func() bool {
			got := c.committed(testGroup, testTopic)
			return got[0]+got[1]+got[2]+got[3] == n
		})
		if err := r.stop(); err != nil {
			t.Fatalf("Run: %v", err)
		}
		tier = map[string]bool{}
		for _, tr := range c.read(c.ladder.Steps()[0].Topic) {
			tier[string(tr.Key)] = true
		}
		for _, rec := range recs {
			k := string(rec.Key)
			i, _ := strconv.Atoi(k)
			if i%5 == 0 && !tier[k] {
				t.Errorf("failing record %s was never forwarded", k)
			}
			if i%5 != 0 && done[k] == 0 {
				t.Errorf("record %s was never handled", k)
			}
		}
	})
}

// A handler that outlives the grace period has its context cancelled; its
// record is not committed and is handled again by the next run.
func TestGracePeriodCancelsSlowHandler(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCluster(t, 1, 1)
		var calls counter
		started := make(chan struct{}, 1)
		h := consumer.HandlerFunc(func(ctx context.Context, r *kgo.Record) error {
			if calls.add(r.Key) == 1 {
				started <- struct{}{}
				<-ctx.Done()
				return ctx.Err()
			}
			return nil
		})
		c.produce(&kgo.Record{Key: []byte("slow")})
		r := c.start(h, consumer.WithRelay(false), consumer.WithGracePeriod(3*time.Second))
		<-started
		stopAt := time.Now()
		if err := r.stop(); err != nil {
			t.Fatalf("Run: %v", err)
		}
		if waited := time.Since(stopAt); waited < 3*time.Second {
			t.Errorf("Run returned %v after cancel, before the grace period", waited)
		}
		if got := c.committed(testGroup, testTopic); got[0] != 0 {
			t.Errorf("committed = %v: the cancelled record must not be", got)
		}
		if n := len(c.read(c.ladder.Steps()[0].Topic)) + len(c.read(c.ladder.DLQ())); n != 0 {
			t.Errorf("a cancelled handler's record was forwarded (%d)", n)
		}
		r = c.start(h, consumer.WithRelay(false))
		waitFor(t, "the second delivery", func() bool { return calls.get("slow") == 2 })
		if err := r.stop(); err != nil {
			t.Fatalf("Run: %v", err)
		}
	})
}

// A partition paused because its worker is behind must not stay paused when a
// second consumer joins (the partition is revoked) and leaves again (it comes
// back): franz-go keeps pauses across rebalances.
func TestRebalanceDuringPauseLeavesNothingPaused(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCluster(t, 2, 2)
		const n = 60
		var recs []*kgo.Record
		for i := range n {
			recs = append(recs, &kgo.Record{Partition: int32(i % 2), Key: []byte(strconv.Itoa(i))})
		}
		c.produce(recs...)
		var byA, byB counter
		slow := func(cnt *counter) consumer.Handler {
			return consumer.HandlerFunc(func(_ context.Context, r *kgo.Record) error {
				cnt.add(r.Key)
				time.Sleep(time.Second)
				return nil
			})
		}
		// Every fetch pauses its partition: the worker is always behind.
		// franz-go's autocommit waits on a sync.RWMutex while a join is in
		// progress, which synctest does not count as durably blocked: a tick
		// during a join would stop the virtual clock. Commits still happen on
		// revoke and at shutdown.
		opts := []consumer.Opt{consumer.WithRelay(false), consumer.WithPauseAt(2, 0),
			consumer.WithClientOpts(kgo.AutoCommitInterval(24 * time.Hour))}
		a := c.start(slow(&byA), opts...)
		waitFor(t, "A under way", func() bool { return byA.total() >= 4 })
		b := c.start(slow(&byB), opts...)
		waitFor(t, "B under way", func() bool { return byB.total() >= 4 })
		if err := b.stop(); err != nil {
			t.Fatalf("B: %v", err)
		}
		waitFor(t, "every record handled", func() bool {
			for _, r := range recs {
				if byA.get(string(r.Key))+byB.get(string(r.Key)) == 0 {
					return false
				}
			}
			return true
		})
		if err := a.stop(); err != nil {
			t.Fatalf("A: %v", err)
		}
		if got := c.committed(testGroup, testTopic); got[0] != n/2 || got[1] != n/2 {
			t.Errorf("committed = %v, want both partitions at %d", got, n/2)
		}
	})
}

func TestProvisioningCreatesMissingTopics(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCluster(t, 3, 3)
		side := []string{c.ladder.DLQ()}
		for _, s := range c.ladder.Steps() {
			side = append(side, s.Topic)
		}
		if _, err := c.adm.DeleteTopics(context.Background(), side...); err != nil {
			t.Fatal(err)
		}
		var calls counter
		h := consumer.HandlerFunc(func(_ context.Context, r *kgo.Record) error {
			calls.add(r.Key)
			return consumer.Permanent(errors.New("bad"))
		})
		c.produce(&kgo.Record{Partition: 2, Key: []byte("k")})
		r := c.start(h, consumer.WithProvisioning(true))
		waitFor(t, "the DLQ record", func() bool {
			d, err := c.adm.ListTopics(context.Background(), c.ladder.DLQ())
			return err == nil && d[c.ladder.DLQ()].Err == nil && len(c.read(c.ladder.DLQ())) == 1
		})
		if err := r.stop(); err != nil {
			t.Fatalf("Run: %v", err)
		}
		details, err := c.adm.ListTopics(context.Background(), side...)
		if err != nil {
			t.Fatal(err)
		}
		for _, topic := range side {
			if d := details[topic]; d.Err != nil || len(d.Partitions) != 3 {
				t.Errorf("topic %s: err %v, %d partitions; want it created with the main topic's 3", topic, d.Err, len(d.Partitions))
			}
		}
		if p := c.read(c.ladder.DLQ())[0].Partition; p != 2 {
			t.Errorf("DLQ record on partition %d, want 2", p)
		}

		// The main topic is never created.
		c.cfg.Topics[0].Name = "payments"
		cons, err := consumer.New(c.cfg, h, consumer.WithProvisioning(true), consumer.WithClientOpts(c.kopts...))
		if err != nil {
			t.Fatal(err)
		}
		var missing *topics.MissingTopicError
		if err := cons.Run(context.Background()); !errors.As(err, &missing) || missing.Topic != "payments" {
			t.Errorf("Run = %v, want a *topics.MissingTopicError for payments", err)
		}
	})
}

// Two consumers of one group on one registry do not panic on kprom's
// duplicate registration: the second one's client metrics are left out, and
// each consumer unregisters only what it registered.
func TestTwoConsumersShareARegistry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCluster(t, 2, 2)
		reg := prometheus.NewRegistry()
		var logs logBuffer
		var calls counter
		h := consumer.HandlerFunc(func(_ context.Context, r *kgo.Record) error {
			calls.add(r.Key)
			return nil
		})
		a := c.start(h, consumer.WithRelay(false), consumer.WithRegisterer(reg))
		waitFor(t, "A's client metrics", func() bool { return clientMetrics(t, reg) > 0 })
		b := c.start(h, consumer.WithRelay(false), consumer.WithRegisterer(reg), consumer.WithLogger(logs.logger()))
		c.produce(&kgo.Record{Partition: 0, Key: []byte("x")}, &kgo.Record{Partition: 1, Key: []byte("y")})
		waitFor(t, "both records", func() bool { return calls.total() == 2 })
		if n := clientMetrics(t, reg); n == 0 {
			t.Error("no client metrics while both run")
		}
		if !strings.Contains(logs.String(), "franz-go client metric is not exported") {
			t.Errorf("the second consumer did not say its client metrics are left out:\n%s", logs.String())
		}
		if err := b.stop(); err != nil {
			t.Fatalf("B: %v", err)
		}
		if n := clientMetrics(t, reg); n == 0 {
			t.Error("B's stop unregistered A's client metrics")
		}
		if err := a.stop(); err != nil {
			t.Fatalf("A: %v", err)
		}
		if n := clientMetrics(t, reg); n != 0 {
			t.Errorf("%d client metrics left after both stopped", n)
		}
	})
}

// TestHandlerChangesToTheRecordAreIgnored: what the handler sets in the
// record it is given changes neither what is marked nor what is forwarded.
func TestHandlerChangesToTheRecordAreIgnored(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCluster(t, 4, 2)
		h := consumer.HandlerFunc(func(_ context.Context, r *kgo.Record) error {
			bad := string(r.Key) == "bad"
			r.Topic, r.Partition, r.Offset, r.LeaderEpoch = "elsewhere", 7, 1e6, 99
			r.Key, r.Value, r.Headers = []byte("k"), []byte("v"), []kgo.RecordHeader{{Key: "h"}}
			r.Timestamp = time.Unix(0, 0)
			if bad {
				return consumer.Permanent(errors.New("bad record"))
			}
			return nil
		})
		orig := &kgo.Record{Partition: 2, Key: []byte("bad"), Value: []byte("o-2"),
			Headers: []kgo.RecordHeader{{Key: "trace", Value: []byte("abc")}}}
		c.produce(&kgo.Record{Partition: 2, Key: []byte("good"), Value: []byte("o-1")}, orig,
			&kgo.Record{Partition: 2, Key: []byte("good"), Value: []byte("o-3")})

		r := c.start(h, consumer.WithRelay(false))
		waitFor(t, "the DLQ record", func() bool { return len(c.read(c.ladder.DLQ())) == 1 })
		if err := r.stop(); err != nil {
			t.Fatalf("Run: %v", err)
		}
		dlq := c.read(c.ladder.DLQ())[0]
		if string(dlq.Key) != "bad" || string(dlq.Value) != "o-2" || userHeaders(dlq.Headers) != userHeaders(orig.Headers) {
			t.Errorf("DLQ record %q/%q %s, want bad/o-2 %s", dlq.Key, dlq.Value, userHeaders(dlq.Headers), userHeaders(orig.Headers))
		}
		if dlq.Partition != 0 {
			t.Errorf("DLQ partition = %d, want 2 mod 2 = 0", dlq.Partition)
		}
		if md, _, _ := headers.Decode(dlq.Headers); md.OriginalTopic != testTopic || md.OriginalPartition != 2 || md.OriginalOffset != 1 {
			t.Errorf("DLQ record first delivered as %s/%d@%d, want %s/2@1", md.OriginalTopic, md.OriginalPartition, md.OriginalOffset, testTopic)
		}
		if got := c.committed(testGroup, testTopic); got[2] != 3 {
			t.Errorf("committed offsets = %v, want partition 2 at 3", got)
		}
	})
}
