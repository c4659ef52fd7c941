package relay_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kretry/kretry/internal/kafkatest"
	"github.com/kretry/kretry/relay"
)

// Exactly once: the relay's group session is lost while its transaction
// waits for its re-feeds' acknowledgements (the broker unreachable for
// produces; the coordinator forgets the member at a heartbeat), as in a
// broker restart. Once the re-feeds are acknowledged the transaction
// aborts and is re-fed again. Before, kgo's End waited the delivery timeout
// (30s) for a heartbeat its stopped heartbeat loop never sent, and the open
// transaction held back every read_committed reader of the main partitions
// it re-fed to (internal/txnend).
func TestRelayExactlyOnceLostGroupSessionAbortsTheOpenTransaction(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newVirtualEnv(t, 1, 1)
		const n = 200
		start := time.Now()
		var recs []*kgo.Record
		for i := range n {
			rec, _ := e.tierRecord(0, 0, fmt.Sprintf("k%03d", i), start.Add(time.Second+time.Duration(i)*100*time.Millisecond))
			recs = append(recs, rec)
		}
		e.produce(recs...)
		var logs kafkatest.Buffer
		r := e.start(relay.WithExactlyOnce(true), relay.WithLogger(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))))
		waitFor(t, "a first re-feed", func() bool { return len(e.read(relayTopic)) > 0 })

		// The broker drops produce connections: the open transaction's
		// re-feeds wait for their acknowledgements, and so does its end.
		var unreachable atomic.Bool
		unreachable.Store(true)
		e.fake.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
			e.fake.KeepControl()
			if unreachable.Load() {
				return nil, errors.New("unreachable"), true
			}
			return nil, nil, false
		})
		time.Sleep(2 * time.Second)
		// The coordinator forgets the member at its next heartbeat.
		var refused atomic.Bool
		e.fake.ControlKey(int16(kmsg.Heartbeat), func(req kmsg.Request) (kmsg.Response, error, bool) {
			resp := req.(*kmsg.HeartbeatRequest).ResponseKind().(*kmsg.HeartbeatResponse)
			resp.ErrorCode = kerr.UnknownMemberID.Code
			refused.Store(true)
			return resp, nil, true
		})
		waitFor(t, "a heartbeat refused", refused.Load)
		time.Sleep(time.Second)
		unreachable.Store(false)

		const allowed, failed = "kretry allowed a waiting rebalance", "kretry relay's transaction ended with an error"
		waitFor(t, "the end of the transaction the lost session was in", func() bool {
			s := logs.String()
			return strings.Contains(s, allowed) || strings.Contains(s, failed)
		})
		if s := logs.String(); !strings.Contains(s, allowed) || strings.Contains(s, failed) {
			t.Fatalf("the transaction did not abort when the group session was lost; log:\n%s", s)
		}

		// Every record is re-fed, once for a read_committed reader.
		var seen map[string]int
		waitFor(t, "every record re-fed", func() bool {
			seen = readCommittedKeys(t, e, relayTopic)
			return len(seen) == n
		})
		if err := r.stop(); err != nil {
			t.Fatalf("Run: %v", err)
		}
		for i := range n {
			if k := fmt.Sprintf("k%03d", i); seen[k] != 1 {
				t.Errorf("%s re-fed %d times, want once", k, seen[k])
			}
		}
	})
}

// readCommittedKeys counts the records of topic per key as a read_committed
// reader sees them, reading until three seconds pass without one.
func readCommittedKeys(t *testing.T, e *relayEnv, topic string) map[string]int {
	t.Helper()
	rd, err := kgo.NewClient(append(slices.Clone(e.kopts), kgo.ConsumeTopics(topic),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	seen := map[string]int{}
	for quiet := 0; quiet < 3; {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		fs := rd.PollFetches(ctx)
		cancel()
		if fs.NumRecords() == 0 {
			quiet++
			continue
		}
		quiet = 0
		fs.EachRecord(func(r *kgo.Record) { seen[string(r.Key)]++ })
	}
	return seen
}
