package txnend

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kretry/kretry/internal/kafkatest"
)

// session joins group on kfake with a transactional session as kretry's
// consumer and relay build theirs (BlockRebalanceOnPoll, read_committed),
// with e's option, and returns it with a record of in polled and a record
// produced to out in an open transaction.
func session(t *testing.T, seeds []string, e *Ender, group, in, out string) *kgo.GroupTransactSession {
	t.Helper()
	sess, err := kgo.NewGroupTransactSession(kgo.SeedBrokers(seeds...),
		kgo.ConsumerGroup(group), kgo.ConsumeTopics(in), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.TransactionalID(group+"-txn"), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.BlockRebalanceOnPoll(), kgo.HeartbeatInterval(100*time.Millisecond), e.Opt())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sess.CloseAllowingRebalance)
	if err := sess.Begin(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	for n := 0; n == 0; {
		fs := sess.PollRecords(ctx, 10)
		if ctx.Err() != nil {
			t.Fatal("no record polled within a minute")
		}
		n = fs.NumRecords()
	}
	if err := sess.ProduceSync(ctx, &kgo.Record{Topic: out, Value: []byte("output")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	return sess
}

// A transaction whose group session is lost while it is open (its heartbeat
// fails) ends with an abort, not at its context's deadline: kgo's End waits
// for a heartbeat the stopped heartbeat loop never sends, and for the lost
// callback that BlockRebalanceOnPoll holds until End has returned; the Ender
// allows the rebalance.
func TestEndAbortsWhenTheGroupSessionIsLost(t *testing.T) {
	const in, out = "in", "out"
	c, seeds := kafkatest.Fake(t, kfake.NumBrokers(1), kfake.SeedTopics(1, in, out))
	prod, err := kgo.NewClient(kgo.SeedBrokers(seeds...))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	if err := prod.ProduceSync(t.Context(), &kgo.Record{Topic: in, Value: []byte("input")}).FirstErr(); err != nil {
		t.Fatal(err)
	}

	e := New(nil)
	sess := session(t, seeds, e, "g", in, out)

	// From now on the coordinator forgets the member at every heartbeat.
	var refused atomic.Int32
	c.ControlKey(int16(kmsg.Heartbeat), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		resp := req.(*kmsg.HeartbeatRequest).ResponseKind().(*kmsg.HeartbeatResponse)
		resp.ErrorCode = kerr.UnknownMemberID.Code
		refused.Add(1)
		return resp, nil, true
	})
	kafkatest.WaitFor(t, "the lost callback waiting for the poller", 10*time.Millisecond, time.Minute, func() bool {
		return e.Blocked()
	})

	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	committed, err := e.End(ctx, sess, kgo.TryCommit)
	if err != nil || committed {
		t.Fatalf("End: committed %v, error %v; want an abort without error (%d heartbeats refused)", committed, err, refused.Load())
	}
	if e.Blocked() {
		t.Error("End left the signal of a waiting callback for the next transaction")
	}
}

// Without a lost session End commits, however long a rebalance callback
// has waited: the heartbeat answers.
func TestEndCommitsWithALiveSession(t *testing.T) {
	const in, out = "in", "out"
	_, seeds := kafkatest.Fake(t, kfake.NumBrokers(1), kfake.SeedTopics(1, in, out))
	prod, err := kgo.NewClient(kgo.SeedBrokers(seeds...))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	if err := prod.ProduceSync(t.Context(), &kgo.Record{Topic: in, Value: []byte("input")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	e := New(nil)
	sess := session(t, seeds, e, "g", in, out)
	// A callback that has waited for longer than Stall (the signal alone
	// allows nothing).
	e.blocked.Store(time.Now().Add(-time.Minute).UnixNano())
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	committed, err := e.End(ctx, sess, kgo.TryCommit)
	if err != nil || !committed {
		t.Fatalf("End: committed %v, error %v; want a commit", committed, err)
	}
}
