//go:build integration

package consumer_test

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/consumer"
	"github.com/kretry/kretry/internal/kafkatest"
)

// At least once, a classic join that waits for a dead member does not stop
// the commits: franz-go commits nothing between join and sync, and the join
// waits until the dead member's session expires, while the live member goes
// on handling its partitions. kretry commits their marks meanwhile, so a kill
// then repeats about a commit interval of work, not the whole wait.
//
// The dead member D is a plain franz-go member of the same group (it
// subscribes to another topic, so that nothing of the main topic moves) whose
// connections stop carrying anything, as those of a process killed with
// kill -9 on a host that went away; a third member C then joins, and its join
// waits for D's 20s session.
func TestAtLeastOnceCommitsWhileAJoinWaitsForADeadMember(t *testing.T) {
	b := newRealBroker(t, 2)
	other := kafkatest.Name(t, "other")
	ctx := context.Background()
	if resp, err := b.adm.CreateTopics(ctx, 1, 1, nil, other); err != nil || resp.Error() != nil {
		t.Fatalf("create topic %s: %v %v", other, err, resp.Error())
	}
	kafkatest.WaitTopics(t, b.adm, other)
	t.Cleanup(func() { b.adm.DeleteTopics(context.Background(), other) })

	var handled atomic.Int64
	b.run(consumer.HandlerFunc(func(context.Context, *kgo.Record) error { handled.Add(1); return nil }))

	// A steady stream to both main partitions until the test ends.
	stream, stopStream := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; stream.Err() == nil; i++ {
			b.cl.Produce(stream, &kgo.Record{Topic: b.ladder.Topic(), Partition: int32(i % 2), Value: []byte("v")}, nil)
			time.Sleep(20 * time.Millisecond)
		}
	})
	t.Cleanup(func() { stopStream(); wg.Wait() })
	waitReal(t, 30*time.Second, "the consumer to handle records", func() bool { return handled.Load() > 20 })

	var frozen atomic.Bool
	dead := newMember(t, b, other, 20*time.Second, func(ctx context.Context, network, host string) (net.Conn, error) {
		var d net.Dialer
		c, err := d.DialContext(ctx, network, host)
		if err != nil {
			return nil, err
		}
		return &freezableConn{Conn: c, frozen: &frozen}, nil
	})
	waitReal(t, 60*time.Second, "the member that will die to get its assignment", func() bool { return dead.assigned.Load() })
	b.waitStable(b.cfg.Group)
	frozen.Store(true) // from now on, D is dead to the brokers

	joiner := newMember(t, b, other, 10*time.Second, nil)
	time.Sleep(3 * time.Second) // the live member's heartbeat sees the rebalance; its join waits for D
	before := b.committedSum(b.cfg.Group, b.ladder.Topic())
	handledBefore := handled.Load()
	time.Sleep(6 * time.Second)
	after := b.committedSum(b.cfg.Group, b.ladder.Topic())
	if joiner.assigned.Load() {
		t.Fatalf("the join did not wait for the dead member (its session is 20s): the test proves nothing")
	}
	if handled.Load() == handledBefore {
		t.Fatalf("the live member handled nothing while the join waited: the test proves nothing")
	}
	if after <= before {
		t.Errorf("while a join waited for a dead member, the live member handled %d records and committed none (committed offsets %d, then %d 6s later)",
			handled.Load()-handledBefore, before, after)
	}
	// Once the dead member's session expires, the join completes.
	waitReal(t, 60*time.Second, "the joiner's assignment after the dead member's session expired", func() bool { return joiner.assigned.Load() })
	frozen.Store(false)
}

// member is a plain franz-go member of b's group subscribed to topic.
type member struct {
	assigned atomic.Bool
}

func newMember(t *testing.T, b *realBroker, topic string, session time.Duration,
	dial func(ctx context.Context, network, host string) (net.Conn, error)) *member {
	t.Helper()
	m := &member{}
	opts := []kgo.Opt{
		kgo.SeedBrokers(b.seeds...), kgo.ConsumerGroup(b.cfg.Group), kgo.ConsumeTopics(topic),
		kgo.SessionTimeout(session), kgo.HeartbeatInterval(time.Second),
		kgo.OnPartitionsAssigned(func(context.Context, *kgo.Client, map[string][]int32) { m.assigned.Store(true) }),
	}
	if dial != nil {
		opts = append(opts, kgo.Dialer(dial))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			cl.PollFetches(ctx)
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		cl.Close()
	})
	return m
}

// freezableConn carries nothing once frozen: writes fail and the connection
// closes, so the brokers hear nothing more from its client.
type freezableConn struct {
	net.Conn
	frozen *atomic.Bool
}

func (c *freezableConn) Write(p []byte) (int, error) {
	if c.frozen.Load() {
		c.Conn.Close()
		return 0, errors.New("frozen: the member is dead to the brokers")
	}
	return c.Conn.Write(p)
}

// committedSum is the sum of group's committed offsets on topic.
func (b *realBroker) committedSum(group, topic string) int64 {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	committed, err := b.adm.FetchOffsets(ctx, group)
	if err != nil {
		b.t.Fatalf("fetching group %s's offsets: %v", group, err)
	}
	var sum int64
	committed.Each(func(o kadm.OffsetResponse) {
		if o.Topic == topic && o.At > 0 {
			sum += o.At
		}
	})
	return sum
}
