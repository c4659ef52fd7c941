package relay_test

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/headers"
	"github.com/kretry/kretry/relay"
)

// A consumer killed after its forward of a failed attempt was acknowledged,
// but before the record's offset was committed, handles the record again and
// forwards the same attempt again: its tier partition holds two copies. The
// relay re-feeds one; the copy is committed past, counted, never re-fed. A
// record of the same original with another attempt count, or replayed from
// the DLQ (kretry-replays), is not a copy and is re-fed.
func TestRelaySkipsCopiesOfAnAttempt(t *testing.T) {
	for _, mode := range holdModes {
		t.Run(mode.name, func(t *testing.T) { testRelaySkipsCopiesOfAnAttempt(t, mode.opts) })
	}
}

func testRelaySkipsCopiesOfAnAttempt(t *testing.T, opts []relay.Opt) {
	synctest.Test(t, func(t *testing.T) {
		e := newVirtualEnv(t, 2, 2)
		reg := prometheus.NewRegistry()
		m := newMetrics(t, reg)
		due := time.Now().Add(5 * time.Second)
		first, md := e.tierRecord(0, 1, "k", due)
		record := func(md headers.Metadata) *kgo.Record {
			return &kgo.Record{Topic: first.Topic, Partition: 1, Key: first.Key, Value: first.Value, Headers: headers.Encode(nil, md)}
		}
		// The copy failed again 300ms later, with another error: only the
		// identity of the attempt makes it a copy.
		copyMD := md
		copyMD.LastFailureAt, copyMD.FirstFailureAt = md.LastFailureAt.Add(300*time.Millisecond), md.FirstFailureAt.Add(300*time.Millisecond)
		copyMD.DueAt, copyMD.Error = md.DueAt.Add(300*time.Millisecond), "payment service: 504"
		second := md
		second.Attempts = 2
		replayed := md
		replayed.Replays = 1
		// Another group's record with the same original: committed past, as before.
		foreign := md
		foreign.Group = "another-service"
		e.produce(first, record(second), record(copyMD), record(replayed), record(foreign), record(copyMD))

		r := e.start(append(opts[:len(opts):len(opts)], relay.WithRegisterer(reg))...)
		waitFor(t, "the re-feeds", func() bool { return len(e.read(relayTopic)) >= 3 })
		waitFor(t, "every tier record committed", func() bool {
			return e.committed(relayGroup+"-relay", e.step(0).Topic)[1] == 6
		})
		if err := r.stop(); err != nil {
			t.Fatalf("Run: %v", err)
		}

		got := e.read(relayTopic)
		want := []headers.Metadata{md, second, replayed}
		if len(got) != len(want) {
			for _, g := range got {
				gmd, _, _ := headers.Decode(g.Headers)
				t.Logf("re-fed: attempts %d replays %d due %s", gmd.Attempts, gmd.Replays, headers.FormatTime(gmd.DueAt))
			}
			t.Fatalf("%d records re-fed, want %d: the first copy, the second attempt, the replayed record", len(got), len(want))
		}
		for i := range want {
			checkRefed(t, got[i], record(want[i]), want[i], 2)
		}
		if got := metricValue(t, m.DuplicateCopiesSkipped.WithLabelValues(relayTopic, "retry-5s")); got != 2 {
			t.Errorf("kretry_duplicate_copies_skipped_total = %v, want 2", got)
		}
		if got := metricValue(t, m.Refed.WithLabelValues(relayTopic, "retry-5s")); got != 3 {
			t.Errorf("kretry_refed_total = %v, want 3", got)
		}
	})
}
