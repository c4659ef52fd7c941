package relay_test

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/headers"
	"github.com/kretry/kretry/relay"
)

// retryAfter is a record of tier i that failed at failedAt and asked to wait
// d (consumer.RetryAfter), as the consumer writes it, with user headers.
func (e *relayEnv) retryAfter(i int, p int32, key string, failedAt time.Time, d time.Duration, hs ...kgo.RecordHeader) (*kgo.Record, headers.Metadata) {
	rec, md := e.tierRecord(i, p, key, failedAt.Add(e.step(i).Delay), hs...)
	md.DueAt = ms(failedAt.Add(d))
	rec.Headers = headers.Encode(hs, md)
	return rec, md
}

// parked returns the kretry-parked-at of r, zero when it has none.
func parked(t *testing.T, r *kgo.Record) time.Time {
	t.Helper()
	at, ok := headers.ParkedAt(r.Headers)
	if !ok {
		return time.Time{}
	}
	return at
}

// A RetryAfter of 3× the last tier's delay: the relay holds the record its
// tier's delay, re-parks it (written again to its tier with
// kretry-parked-at), twice, and re-feeds it no earlier than its due time
// (checkRefed: the re-feed's timestamp, taken when the relay produced it),
// with its metadata as the consumer wrote it; a record behind it in the
// partition is re-fed on time, not held behind it; nothing is lost and every
// tier offset is committed.
func TestRelayReparksALongRetryAfter(t *testing.T) {
	for _, mode := range holdModes {
		t.Run(mode.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				e := newVirtualEnv(t, 4, 4)
				reg := prometheus.NewRegistry()
				m := newMetrics(t, reg)
				last := e.step(1) // 1m
				start := time.Now()
				long, lmd := e.retryAfter(1, 2, "long", start, 3*last.Delay, hdr("trace-id", "abc")...)
				behind, bmd := e.tierRecord(1, 2, "behind", start.Add(10*time.Second).Add(last.Delay))
				e.produce(long, behind)

				r := e.start(slices.Concat(mode.opts, []relay.Opt{relay.WithRegisterer(reg)})...)
				waitFor(t, "behind to be re-fed", func() bool { return len(e.read(relayTopic)) == 1 })
				if now := time.Now(); now.After(bmd.DueAt.Add(5 * time.Second)) {
					t.Errorf("behind re-fed at %v, due at %v: held behind the long Retry-After", now.Sub(start), bmd.DueAt.Sub(start))
				}
				waitFor(t, "long to be re-fed", func() bool { return len(e.read(relayTopic)) == 2 })
				if err := r.stop(); err != nil {
					t.Fatalf("Run: %v", err)
				}

				main := e.read(relayTopic)
				checkRefed(t, main[0], behind, bmd, 4)
				checkRefed(t, main[1], long, lmd, 4)
				if !parked(t, main[1]).IsZero() {
					t.Errorf("the re-fed record carries kretry-parked-at: %s", show(main[1].Headers))
				}
				tier := e.read(last.Topic)
				if len(tier) != 4 {
					t.Fatalf("%d records in %s, want long, behind and long re-parked twice", len(tier), last.Topic)
				}
				var prev time.Time = lmd.LastFailureAt
				for i, rp := range tier[2:] {
					at := parked(t, rp)
					if string(rp.Key) != "long" || rp.Partition != 2 || at.Before(prev.Add(last.Delay)) || !at.Before(lmd.DueAt) {
						t.Errorf("re-park %d: key %s partition %d parked at %v, want long in partition 2 parked at %v or later, before %v",
							i+1, rp.Key, rp.Partition, at.Sub(start), prev.Add(last.Delay).Sub(start), lmd.DueAt.Sub(start))
					}
					if md, _, err := headers.Decode(rp.Headers); err != nil || md != lmd {
						t.Errorf("re-park %d: metadata %+v, %v, want %+v", i+1, md, err, lmd)
					}
					prev = at
				}
				if got := metricValue(t, m.Reparked.WithLabelValues(relayTopic, last.Name)); got != 2 {
					t.Errorf("kretry_reparked_total = %v, want 2", got)
				}
				if got := metricValue(t, m.Refed.WithLabelValues(relayTopic, last.Name)); got != 2 {
					t.Errorf("kretry_refed_total = %v, want 2", got)
				}
				if got, want := e.committed(relayGroup+"-relay", last.Topic), tier[3].Offset+1; got[2] != want {
					t.Errorf("relay committed %v, want partition 2 at %d (past the last re-park)", got, want)
				}
			})
		})
	}
}

// Hostile due times: a kretry-due-at past the last failure plus
// retry_after_max is not trusted (re-fed at the last failure plus the
// tier's delay, never re-parked); a kretry-parked-at in the future does not
// hold the record past its tier's delay from its last failure.
func TestRelayReparkBounds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newVirtualEnv(t, 1, 1)
		reg := prometheus.NewRegistry()
		m := newMetrics(t, reg)
		first := e.step(0) // 5s
		start := time.Now()
		forged, fmd := e.retryAfter(0, 0, "forged", start, e.ladder.RetryAfterMax()+time.Second)
		fwant := fmd
		fwant.DueAt = fmd.LastFailureAt.Add(first.Delay)
		future, umd := e.retryAfter(0, 0, "future-park", start, 7*time.Second)
		future.Headers = append(future.Headers, kgo.RecordHeader{Key: headers.HeaderParkedAt, Value: []byte("2099-01-01T00:00:00.000Z")})
		e.produce(forged, future)

		r := e.start(relay.WithRegisterer(reg))
		waitFor(t, "both re-fed", func() bool { return len(e.read(relayTopic)) == 2 })
		if err := r.stop(); err != nil {
			t.Fatalf("Run: %v", err)
		}
		main := e.read(relayTopic)
		checkRefed(t, main[0], forged, fwant, 1)
		if late := main[0].Timestamp.Sub(fwant.DueAt); late > 2*time.Second {
			t.Errorf("the forged record was re-fed %v after its bound", late)
		}
		checkRefed(t, main[1], future, umd, 1)
		tier := e.read(first.Topic)
		if len(tier) != 3 || string(tier[2].Key) != "future-park" {
			t.Fatalf("%d records in %s, want forged, future-park and future-park re-parked once", len(tier), first.Topic)
		}
		if at := parked(t, tier[2]); at.Before(umd.LastFailureAt.Add(first.Delay)) || at.After(umd.LastFailureAt.Add(first.Delay+2*time.Second)) {
			t.Errorf("future-park re-parked at %v, want at its tier's delay after its last failure, %v", at.Sub(start), first.Delay)
		}
		if got := metricValue(t, m.UntrustedDueAt.WithLabelValues(relayTopic, first.Name)); got != 1 {
			t.Errorf("kretry_untrusted_due_at_total = %v, want 1", got)
		}
		if got := metricValue(t, m.Reparked.WithLabelValues(relayTopic, first.Name)); got != 1 {
			t.Errorf("kretry_reparked_total = %v, want 1", got)
		}
	})
}

// A re-park written twice (a relay that crashed after the re-park and
// before it committed the record it came from) is caught when the first is
// re-fed: one re-feed, the other copy skipped; the re-park itself is never
// skipped as a copy of the record it came from.
func TestRelayDuplicateReparkIsSkipped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newVirtualEnv(t, 1, 1)
		reg := prometheus.NewRegistry()
		m := newMetrics(t, reg)
		last := e.step(1) // 1m
		start := time.Now()
		orig, md := e.retryAfter(1, 0, "k", start.Add(-last.Delay), 2*last.Delay)
		// What the crashed relay wrote, and the record it did not commit.
		parkedAt := []byte(headers.FormatTime(md.LastFailureAt.Add(last.Delay)))
		copy1 := &kgo.Record{Topic: orig.Topic, Key: orig.Key, Value: orig.Value,
			Headers: append(slices.Clone(orig.Headers), kgo.RecordHeader{Key: headers.HeaderParkedAt, Value: parkedAt})}
		e.produce(orig, copy1)

		r := e.start(relay.WithRegisterer(reg))
		waitFor(t, "the re-feed", func() bool { return len(e.read(relayTopic)) == 1 })
		time.Sleep(10 * time.Second)
		if err := r.stop(); err != nil {
			t.Fatalf("Run: %v", err)
		}
		main := e.read(relayTopic)
		if len(main) != 1 {
			t.Fatalf("%d re-feeds of one record, want 1", len(main))
		}
		checkRefed(t, main[0], orig, md, 1)
		if got := metricValue(t, m.DuplicateCopiesSkipped.WithLabelValues(relayTopic, last.Name)); got != 1 {
			t.Errorf("kretry_duplicate_copies_skipped_total = %v, want 1", got)
		}
		tier := e.read(last.Topic)
		if got := e.committed(relayGroup+"-relay", last.Topic); got[0] != tier[len(tier)-1].Offset+1 {
			t.Errorf("relay committed %v of %d records", got, len(tier))
		}
	})
}

// A record whose re-park does not fit its tier (kretry-parked-at takes it
// past the tier's max.message.bytes) goes to the DLQ as too-large, without
// its value (which is in the main topic), rather than being re-fed early or
// holding its partition: nothing is lost, nothing re-fed before its time.
func TestRelayReparkTooLarge(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newVirtualEnv(t, 1, 1)
		last := e.step(1)
		start := time.Now()
		rec, _ := e.retryAfter(1, 0, "big", start, 3*last.Delay)
		size := 61 + 32 + len(rec.Key)
		for _, h := range rec.Headers {
			size += 10 + len(h.Key) + len(h.Value)
		}
		limit := 4096
		rec.Value = make([]byte, limit-size-10) // fits, but not with kretry-parked-at
		ctx := context.Background()
		if _, err := e.adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Name: "max.message.bytes", Value: kadm.StringPtr(strconv.Itoa(limit))}}, last.Topic); err != nil {
			t.Fatal(err)
		}
		e.produce(rec)

		r := e.start()
		waitFor(t, "the dead letter", func() bool { return len(e.read(e.ladder.DLQ())) == 1 })
		if err := r.stop(); err != nil {
			t.Fatalf("Run: %v", err)
		}
		if n := len(e.read(relayTopic)); n != 0 {
			t.Errorf("%d records re-fed, want none: the record is not due", n)
		}
		d := e.read(e.ladder.DLQ())[0]
		md, _, err := headers.Decode(d.Headers)
		if err != nil || md.Reason != headers.ReasonTooLarge || len(d.Value) != 0 || !strings.Contains(md.Error, "too large to re-park in "+last.Topic) {
			t.Errorf("DLQ record: %d bytes of value, metadata %+v, %v; want too-large without its value, too large to re-park", len(d.Value), md, err)
		}
		if at := time.Since(start); at < last.Delay {
			t.Errorf("dead-lettered %v after the failure, before the tier's delay", at)
		}
		if got := e.committed(relayGroup+"-relay", last.Topic); got[0] != 1 {
			t.Errorf("relay committed %v, want partition 0 at 1", got)
		}
	})
}
