package consumer_test

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kretry/kretry/consumer"
)

// Exactly once, on a broker whose transaction markers lag (a loaded Kafka 4
// broker): for a while after each EndTxn the coordinator still writes the
// markers of the ended transaction, and refuses to add a partition to the
// next one with CONCURRENT_TRANSACTIONS; DescribeTransactions says
// PrepareCommit meanwhile. kfake completes a transaction at once, so the
// test plays that window (markersLag after each commit). kgo retries a
// produce or an AddOffsetsToTxn refused so, but takes the refusal in a
// TxnOffsetCommit's answer (with KIP-890's transactions, the request that
// adds the offsets partition) for an abort: before awaitPreviousTxn, every
// transaction that produced nothing and ended within the window aborted,
// and its records were handled again (10 to 75 records a run of the real
// broker's rebalance storm test under load, and "the last transaction did
// not commit" at shutdown). Now End waits for the markers: every record is
// handled once, and Run stops without an error.
func TestExactlyOnceWaitsForThePreviousTransactionsMarkers(t *testing.T) {
	c := newClusterOn(t, 2, 1, false)
	c.cfg.ExactlyOnce = true
	var logs logBuffer

	const markersLag = 400 * time.Millisecond
	lag := lagMarkers(c, markersLag)

	var handled counter
	h := consumer.HandlerFunc(func(_ context.Context, r *kgo.Record) error {
		handled.add(r.Key)
		return nil
	})
	r := c.start(h, consumer.WithRelay(false), consumer.WithLogger(logs.logger()))

	// A record every 20ms for a second and a half: transactions end every
	// 100 to 200ms, each within the window of the one before.
	const n = 75
	for i := range n {
		c.produce(&kgo.Record{Topic: testTopic, Partition: int32(i % 2), Key: []byte(strconv.Itoa(i))})
		time.Sleep(20 * time.Millisecond)
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(2 * time.Minute); !cond(); time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("still waiting for %s after 2m (TxnOffsetCommits refused %d, describes answered PrepareCommit %d); log:\n%s",
					what, lag.refused.Load(), lag.described.Load(), logs.String())
			}
		}
	}
	waitFor("every record committed", func() bool {
		os, err := c.adm.FetchOffsets(context.Background(), testGroup)
		if err != nil {
			return false
		}
		o0, _ := os.Lookup(testTopic, 0)
		o1, _ := os.Lookup(testTopic, 1)
		return o0.At+o1.At == n
	})
	if err := r.stop(); err != nil {
		t.Errorf("Run: %v", err)
	}
	var dups []string
	for i := range n {
		if got := handled.get(strconv.Itoa(i)); got != 1 {
			dups = append(dups, fmt.Sprintf("%d handled %d times", i, got))
		}
	}
	t.Logf("TxnOffsetCommits refused %d, describes answered PrepareCommit %d", lag.refused.Load(), lag.described.Load())
	if len(dups) > 0 {
		t.Errorf("records handled more than once (their transactions aborted; TxnOffsetCommits refused %d): %v; log:\n%s",
			lag.refused.Load(), dups, logs.String())
	}
	if lag.described.Load() == 0 {
		t.Errorf("no transaction ended within %v of the one before: the test did not play the lagging markers", markersLag)
	}
}

// laggingMarkers plays, on kfake, a broker whose transaction markers lag:
// for lag after each committing EndTxn, a TxnOffsetCommit v5+ or an
// AddOffsetsToTxn is refused with CONCURRENT_TRANSACTIONS and a
// DescribeTransactions says PrepareCommit.
type laggingMarkers struct {
	mu         sync.Mutex
	completing time.Time // when the markers of the last commit are written
	commits    atomic.Int64
	refused    atomic.Int64 // TxnOffsetCommits refused
	described  atomic.Int64 // describes answered PrepareCommit
}

func (l *laggingMarkers) inWindow() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return time.Now().Before(l.completing)
}

func lagMarkers(c *cluster, lag time.Duration) *laggingMarkers {
	l := &laggingMarkers{}
	inWindow := l.inWindow
	refused, described := &l.refused, &l.described
	c.fake.ControlKey(int16(kmsg.EndTxn), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		c.fake.KeepControl()
		if kreq.(*kmsg.EndTxnRequest).Commit {
			l.mu.Lock()
			l.completing = time.Now().Add(lag)
			l.mu.Unlock()
			l.commits.Add(1)
		}
		return nil, nil, false // kfake ends it
	})
	c.fake.ControlKey(int16(kmsg.TxnOffsetCommit), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		c.fake.KeepControl()
		req := kreq.(*kmsg.TxnOffsetCommitRequest)
		if req.Version < 5 || !inWindow() { // below v5, AddOffsetsToTxn added the partition
			return nil, nil, false
		}
		refused.Add(1)
		resp := req.ResponseKind().(*kmsg.TxnOffsetCommitResponse)
		for _, rt := range req.Topics {
			st := kmsg.NewTxnOffsetCommitResponseTopic()
			st.Topic, st.TopicID = rt.Topic, rt.TopicID
			for _, rp := range rt.Partitions {
				sp := kmsg.NewTxnOffsetCommitResponseTopicPartition()
				sp.Partition = rp.Partition
				sp.ErrorCode = kerr.ConcurrentTransactions.Code
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
	c.fake.ControlKey(int16(kmsg.AddOffsetsToTxn), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		c.fake.KeepControl()
		if !inWindow() {
			return nil, nil, false
		}
		resp := kreq.ResponseKind().(*kmsg.AddOffsetsToTxnResponse)
		resp.ErrorCode = kerr.ConcurrentTransactions.Code
		return resp, nil, true
	})
	c.fake.ControlKey(int16(kmsg.DescribeTransactions), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		c.fake.KeepControl()
		if !inWindow() {
			return nil, nil, false
		}
		described.Add(1)
		req := kreq.(*kmsg.DescribeTransactionsRequest)
		resp := req.ResponseKind().(*kmsg.DescribeTransactionsResponse)
		for _, id := range req.TransactionalIDs {
			st := kmsg.NewDescribeTransactionsResponseTransactionState()
			st.TransactionalID = id
			st.State = "PrepareCommit"
			resp.TransactionStates = append(resp.TransactionStates, st)
		}
		return resp, nil, true
	})

	return l
}

// Exactly once: Run stopped right after a transaction committed, with a
// record handled in the next one, commits that last transaction and returns
// nil, on a broker whose markers lag (see above). Before awaitPreviousTxn,
// its TxnOffsetCommit met the markers of the transaction before, kgo aborted
// it, and Run returned "the last transaction did not commit at shutdown"
// (the bench's exactly-once child once failed so).
func TestExactlyOnceStopRightAfterACommitCommitsTheLastTransaction(t *testing.T) {
	c := newClusterOn(t, 1, 1, false)
	c.cfg.ExactlyOnce = true
	var logs logBuffer
	lag := lagMarkers(c, 400*time.Millisecond)
	var handled counter
	var r *running
	started := make(chan struct{})
	h := consumer.HandlerFunc(func(_ context.Context, rec *kgo.Record) error {
		if handled.add(rec.Key) == 1 && string(rec.Key) == "last" {
			<-started
			go r.stop() // Run waits for this call: stop from outside it
		}
		return nil
	})
	r = c.start(h, consumer.WithRelay(false), consumer.WithLogger(logs.logger()))
	close(started)
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(2 * time.Minute); !cond(); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("still waiting for %s after 2m; log:\n%s", what, logs.String())
			}
		}
	}
	c.produce(&kgo.Record{Topic: testTopic, Key: []byte("first")})
	waitFor("the first record's transaction committed", func() bool { return lag.commits.Load() > 0 })
	c.produce(&kgo.Record{Topic: testTopic, Key: []byte("last")})
	waitFor("the last record handled", func() bool { return handled.get("last") > 0 })
	if err := r.stop(); err != nil {
		t.Errorf("Run: %v (TxnOffsetCommits refused %d, describes answered PrepareCommit %d); log:\n%s",
			err, lag.refused.Load(), lag.described.Load(), logs.String())
	}
	os, err := c.adm.FetchOffsets(context.Background(), testGroup)
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := os.Lookup(testTopic, 0); o.At != 2 {
		t.Errorf("committed offset after the stop: %d, want 2 (both records)", o.At)
	}
	t.Logf("TxnOffsetCommits refused %d, describes answered PrepareCommit %d", lag.refused.Load(), lag.described.Load())
}
