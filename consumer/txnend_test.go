package consumer_test

import (
	"context"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kretry/kretry/consumer"
	"github.com/kretry/kretry/internal/kafkatest"
)

// Exactly once: a group session lost while a transaction is open (here the
// coordinator forgets the member at one heartbeat; a broker restart does the
// same) aborts the transaction at its end, and the records are handled
// again. Before, kgo's End waited the consumer's 30s end timeout for a
// heartbeat its stopped heartbeat loop never sent, and failed with
// "context deadline exceeded", while the open transaction held back every
// read_committed reader of the partitions it wrote to (internal/txnend).
// On real TCP: see newClusterOn.
func TestExactlyOnceLostGroupSessionAbortsTheOpenTransaction(t *testing.T) {
	c := newClusterOn(t, 1, 1, false)
	c.cfg.ExactlyOnce = true
	var logs logBuffer
	var handled counter
	h := consumer.HandlerFunc(func(_ context.Context, r *kgo.Record) error {
		handled.add(r.Key)
		return nil
	})
	r := c.start(h, consumer.WithRelay(false), consumer.WithLogger(logs.logger()))

	// Records keep coming, so that every transaction has offsets to commit
	// (kgo's End forces its heartbeat only then).
	var produced atomic.Int64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			c.produce(&kgo.Record{Topic: testTopic, Key: []byte(strconv.Itoa(i))})
			produced.Add(1)
		}
	}()
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		<-done
	}()
	kafkatest.WaitFor(t, "a first record handled", 50*time.Millisecond, time.Minute, func() bool { return handled.total() > 0 })

	var refused atomic.Bool
	c.fake.ControlKey(int16(kmsg.Heartbeat), func(req kmsg.Request) (kmsg.Response, error, bool) {
		resp := req.(*kmsg.HeartbeatRequest).ResponseKind().(*kmsg.HeartbeatResponse)
		resp.ErrorCode = kerr.UnknownMemberID.Code
		refused.Store(true)
		return resp, nil, true
	})
	const allowed, failed = "kretry allowed a waiting rebalance", "kretry consumer transaction failed"
	kafkatest.WaitFor(t, "the end of the transaction the lost session was in", 100*time.Millisecond, 2*time.Minute, func() bool {
		s := logs.String()
		return strings.Contains(s, allowed) || strings.Contains(s, failed)
	})
	if s := logs.String(); !strings.Contains(s, allowed) || strings.Contains(s, failed) {
		t.Fatalf("the transaction did not abort when the group session was lost (heartbeat refused: %v); log:\n%s", refused.Load(), s)
	}

	// Every record is handled after the rejoin.
	close(stop)
	<-done
	kafkatest.WaitFor(t, "every record handled", 100*time.Millisecond, 2*time.Minute, func() bool {
		for i := range produced.Load() {
			if handled.get(strconv.Itoa(int(i))) == 0 {
				return false
			}
		}
		return true
	})
	if err := r.stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
}
