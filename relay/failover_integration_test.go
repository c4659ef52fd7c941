//go:build integration

package relay_test

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/headers"
	"github.com/kretry/kretry/internal/kafkatest"
	"github.com/kretry/kretry/ladder"
	"github.com/kretry/kretry/relay"
)

// killableDialer dials TCP until kill, which closes every connection it made
// and refuses new ones: to the broker, its client vanished as a process
// killed with kill -9 does, without leaving its group.
type killableDialer struct {
	mu    sync.Mutex
	dead  bool
	conns []net.Conn
}

func (d *killableDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.dead {
		return nil, errors.New("killed")
	}
	c, err := new(net.Dialer).DialContext(ctx, network, addr)
	if err == nil {
		d.conns = append(d.conns, c)
	}
	return c, err
}

func (d *killableDialer) kill() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.dead = true
	for _, c := range d.conns {
		_ = c.Close()
	}
}

// TestRelayFailoverAfterKillRealBroker: of two relays, one vanishes without
// leaving the group (as with kill -9). The other re-feeds the records of its
// partitions after the relay's session timeout (10s by default), not after
// franz-go's default 45s, during which those records stalled.
func TestRelayFailoverAfterKillRealBroker(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	const parts = 4
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	rl := newRealLadder(t, ctx, brokers, time.Second, parts, parts)
	l, tier, main := rl.l, rl.tier, rl.l.Topic()

	produce := func(key string) {
		now := time.Now()
		var recs []*kgo.Record
		for p := range int32(parts) {
			md := headers.Metadata{Group: l.Group(), Attempts: 1, Tier: tier.Name, DueAt: now, OriginalTopic: main, OriginalPartition: p,
				OriginalOffset:    now.UnixNano(), // one attempt per call: the relay skips copies of one
				OriginalTimestamp: now, FirstFailureAt: now, LastFailureAt: now}
			recs = append(recs, &kgo.Record{Topic: tier.Topic, Partition: p, Key: []byte(key), Headers: headers.Encode(nil, md)})
		}
		if err := rl.cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	refed := func() int64 {
		var n int64
		for _, o := range kafkatest.EndOffsets(t, ctx, rl.adm, main) {
			n += o
		}
		return n
	}
	newRelay := func(opts ...kgo.Opt) *relay.Relay {
		r, err := relay.New([]*ladder.Ladder{l}, relay.WithDeliveryTimeout(2*time.Second),
			relay.WithClientOpts(append([]kgo.Opt{kgo.SeedBrokers(brokers...)}, opts...)...),
			relay.WithLogger(testLogger(t, slog.LevelWarn)))
		if err != nil {
			t.Fatal(err)
		}
		return r
	}

	doomed := &killableDialer{}
	a := newRelay(kgo.Dialer(doomed.DialContext))
	stopA := runRelay(t, ctx, a)
	defer stopA()
	produce("warm-up")
	kafkatest.WaitFor(t, "the warm-up re-feeds", 50*time.Millisecond, time.Minute, func() bool { return refed() == parts })

	b := newRelay()
	stopB := runRelay(t, ctx, b)
	defer stopB()
	kafkatest.WaitFor(t, "both relays sharing the tier", 100*time.Millisecond, time.Minute, func() bool {
		gs, err := rl.adm.DescribeGroups(ctx, a.Group())
		if err != nil {
			return false
		}
		g := gs[a.Group()]
		if g.State != "Stable" || len(g.Members) != 2 {
			return false
		}
		for _, m := range g.Members {
			if ca, ok := m.Assigned.AsConsumer(); !ok || len(ca.Topics) == 0 || len(ca.Topics[0].Partitions) == 0 {
				return false
			}
		}
		return true
	})

	doomed.kill()
	killed := time.Now()
	produce("after-kill")
	kafkatest.WaitFor(t, "every partition's re-feed after the kill", 100*time.Millisecond, 2*time.Minute, func() bool { return refed() == 2*parts })
	took := time.Since(killed)
	t.Logf("after one of two relays vanished, the other re-fed its partitions' records %v later (session timeout %v)",
		took.Round(100*time.Millisecond), relay.DefaultSessionTimeout)
	// franz-go's default session timeout (45s) stalled them at least that long.
	if limit := 30 * time.Second; took > limit {
		t.Errorf("the records of the vanished relay's partitions were re-fed %v after it vanished, want within %v", took, limit)
	}
}
