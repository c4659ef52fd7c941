package consumer_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kretry/kretry/consumer"
)

// Exactly once: a group session lost while a transaction is open (here the
// coordinator forgets the member at one heartbeat; a broker restart does the
// same) aborts the transaction at its end, and the records are handled
// again. Before, kgo's End waited the consumer's 30s end timeout for a
// heartbeat its stopped heartbeat loop never sent, and failed with
// "context deadline exceeded", while the open transaction held back every
// read_committed reader of the partitions it wrote to (internal/txnend).
// On real TCP: see newClusterOn.
//
// The handler holds one record until the heartbeat was refused, so that the
// refused heartbeat is a periodic one, sent while a transaction with
// offsets to commit is open, and its End comes after. Without the hold the
// test counted on records flowing to have such a transaction open, and
// waited its 2 minutes when none was (4 of 17 runs under two CPU burners;
// every run when the producer paused 2s before the refusal): a transaction
// without offsets commits without a heartbeat, and the lost callback then
// runs between two transactions (restartTxn), which logs neither line;
// nor does an End whose own forced heartbeat is the refused one (it aborts
// on the answer, as kgo's End does).
func TestExactlyOnceLostGroupSessionAbortsTheOpenTransaction(t *testing.T) {
	c := newClusterOn(t, 1, 1, false)
	c.cfg.ExactlyOnce = true
	var logs logBuffer
	var handled counter
	holding, release := make(chan struct{}), make(chan struct{})
	h := consumer.HandlerFunc(func(ctx context.Context, r *kgo.Record) error {
		if handled.add(r.Key) == 1 && string(r.Key) == "hold" {
			close(holding)
			select {
			case <-release:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	})
	r := c.start(h, consumer.WithRelay(false), consumer.WithLogger(logs.logger()))
	waitLogged := func(what string, within time.Duration, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(within); !cond(); time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("still waiting for %s after %s; log:\n%s", what, within, logs.String())
			}
		}
	}

	c.produce(&kgo.Record{Topic: testTopic, Key: []byte("0")})
	waitLogged("a first record handled", time.Minute, func() bool { return handled.get("0") > 0 })
	c.produce(&kgo.Record{Topic: testTopic, Key: []byte("hold")})
	waitLogged("the held record handed to the handler", time.Minute, func() bool {
		select {
		case <-holding:
			return true
		default:
			return false
		}
	})

	var refused atomic.Bool
	c.fake.ControlKey(int16(kmsg.Heartbeat), func(req kmsg.Request) (kmsg.Response, error, bool) {
		resp := req.(*kmsg.HeartbeatRequest).ResponseKind().(*kmsg.HeartbeatResponse)
		resp.ErrorCode = kerr.UnknownMemberID.Code
		refused.Store(true)
		return resp, nil, true
	})
	waitLogged("a heartbeat refused", time.Minute, refused.Load)
	close(release)
	const allowed, failed = "kretry allowed a waiting rebalance", "kretry consumer transaction failed"
	waitLogged("the end of the transaction the lost session was in", 2*time.Minute, func() bool {
		s := logs.String()
		return strings.Contains(s, allowed) || strings.Contains(s, failed)
	})
	if s := logs.String(); !strings.Contains(s, allowed) || strings.Contains(s, failed) {
		t.Fatalf("the transaction did not abort when the group session was lost; log:\n%s", s)
	}

	// The held record, whose transaction aborted, is handled again after
	// the rejoin, and a record produced after it once.
	c.produce(&kgo.Record{Topic: testTopic, Key: []byte("1")})
	waitLogged("the held record handled again, and a later one", 2*time.Minute, func() bool {
		return handled.get("hold") >= 2 && handled.get("1") > 0
	})
	if err := r.stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
}
