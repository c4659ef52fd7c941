//go:build integration

package relay_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/goleak"

	"github.com/kretry/kretry/headers"
	"github.com/kretry/kretry/internal/kafkatest"
	"github.com/kretry/kretry/ladder"
	"github.com/kretry/kretry/relay"
)

// freezableDialer cuts its client off from the brokers while frozen: it
// closes every connection it made and refuses new ones, until thawed.
type freezableDialer struct {
	mu     sync.Mutex
	frozen bool
	conns  []net.Conn
}

func (d *freezableDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.frozen {
		return nil, errors.New("frozen: cut off from the brokers")
	}
	c, err := new(net.Dialer).DialContext(ctx, network, addr)
	if err == nil {
		d.conns = append(d.conns, c)
	}
	return c, err
}

func (d *freezableDialer) freeze(frozen bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.frozen = frozen
	if frozen {
		for _, c := range d.conns {
			_ = c.Close()
		}
		d.conns = nil
	}
}

// TestRelayFencedRejoinsRealBroker: A, an exactly-once relay without an
// instance id, re-feeds a tier's records in an open transaction and is cut
// off from the brokers. B takes its partitions after the session timeout
// and fences A's transaction. When A is back, its transaction calls fail
// with the fence: A drops its session and rejoins with a new transactional
// id instead of stopping Run. After B stops, A re-feeds the records
// produced since; a read_committed reader sees every record once.
func TestRelayFencedRejoinsRealBroker(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) }) // after every other cleanup
	brokers := kafkatest.Brokers(t)
	const parts = 2
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	rl := newRealLadder(t, ctx, brokers, time.Second, parts, parts)
	l, tier, main := rl.l, rl.tier, rl.l.Topic()
	produce := func(from, n int) {
		t.Helper()
		now := time.Now()
		var recs []*kgo.Record
		for i := from; i < from+n; i++ {
			p := int32(i % parts)
			md := headers.Metadata{Group: l.Group(), Attempts: 1, Tier: tier.Name, DueAt: now, OriginalTopic: main, OriginalPartition: p,
				OriginalOffset: int64(i), OriginalTimestamp: now, FirstFailureAt: now, LastFailureAt: now}
			recs = append(recs, &kgo.Record{Topic: tier.Topic, Partition: p, Key: fmt.Appendf(nil, "k%03d", i), Headers: headers.Encode(nil, md)})
		}
		if err := rl.cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	newRelay := func(commitInterval time.Duration, reg prometheus.Registerer, log *slog.Logger, opts ...kgo.Opt) *relay.Relay {
		r, err := relay.New([]*ladder.Ladder{l},
			relay.WithExactlyOnce(true), relay.WithCommitInterval(commitInterval), relay.WithDeliveryTimeout(2*time.Second),
			relay.WithGroupOpts(kgo.SessionTimeout(6*time.Second), kgo.HeartbeatInterval(600*time.Millisecond)),
			relay.WithClientOpts(append([]kgo.Opt{kgo.SeedBrokers(brokers...)}, opts...)...),
			relay.WithRegisterer(reg), relay.WithLogger(log))
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	mainEnd := func() (n int64) {
		for _, o := range kafkatest.EndOffsets(t, ctx, rl.adm, main) {
			n += o
		}
		return n
	}

	// A re-feeds 20 records in a transaction it does not commit (its
	// ends are held), then is cut off.
	produce(0, 20)
	var logA kafkatest.Buffer
	dialer := &freezableDialer{}
	hold := &kafkatest.EndHolder{Dial: dialer.DialContext}
	hold.Hold(true)
	a := newRelay(time.Minute, nil, slog.New(slog.NewTextHandler(&logA, &slog.HandlerOptions{Level: slog.LevelInfo})), kgo.Dialer(hold.DialContext))
	actx, stopA := context.WithCancel(ctx)
	var errA error
	doneA := make(chan struct{})
	go func() { errA = a.Run(actx); close(doneA) }()
	defer func() {
		stopA()
		dialer.freeze(false)
		hold.Hold(false)
		<-doneA
		t.Logf("A's log:\n%s", logA.String())
	}()
	running := func() {
		t.Helper()
		select {
		case <-doneA:
			t.Fatalf("A's Run returned: %v", errA)
		default:
		}
	}
	kafkatest.WaitFor(t, "A's re-feeds, uncommitted", 100*time.Millisecond, time.Minute, func() bool { return mainEnd() >= 20 })
	idA := a.TransactionalID()
	dialer.freeze(true)

	reg := prometheus.NewRegistry()
	b := newRelay(time.Second, reg, testLogger(t, slog.LevelInfo))
	stopB := runRelay(t, ctx, b)
	defer stopB()
	fenced := func() float64 { // B's registry holds B's series only
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range mfs {
			if f.GetName() == "kretry_fenced_transactions_total" && len(f.GetMetric()) == 1 {
				return f.GetMetric()[0].GetCounter().GetValue()
			}
		}
		return 0
	}
	kafkatest.WaitFor(t, "B to fence A's transaction", 100*time.Millisecond, 2*time.Minute, func() bool { return fenced() > 0 })
	dialer.freeze(false)
	hold.Hold(false) // its held ends fail on the closed connections
	kafkatest.WaitFor(t, "A to rejoin after the fence", 100*time.Millisecond, 2*time.Minute, func() bool {
		running()
		return strings.Contains(logA.String(), "rejoins the group with a new transactional id")
	})
	if a.TransactionalID() == idA {
		t.Errorf("A rejoined with its fenced transactional id %s, want a new one", idA)
	}
	kafkatest.WaitFor(t, "B to re-feed A's records", 200*time.Millisecond, time.Minute, func() bool {
		return len(readCommitted(t, ctx, brokers, main)) >= 20
	})
	stopB()

	// Committed, not only written: B's leaving rebalances A, whose open
	// transaction then aborts and whose re-feeds are fetched and re-fed
	// again. Stopped on the end offsets (aborted re-feeds count there), A
	// left 5 records in their tier for the next relay (a loaded run).
	produce(20, 10)
	kafkatest.WaitFor(t, "A to re-feed the records produced after B stopped", 200*time.Millisecond, 2*time.Minute, func() bool {
		running()
		return len(readCommitted(t, ctx, brokers, main)) >= 30
	})
	stopA()
	<-doneA
	if errA != nil {
		t.Errorf("A: %v", errA)
	}
	seen := readCommitted(t, ctx, brokers, main)
	for i := range 30 {
		if k := fmt.Sprintf("k%03d", i); seen[k] != 1 {
			t.Errorf("a read_committed reader sees %s %d times, want once", k, seen[k])
		}
	}
	if len(seen) != 30 {
		t.Errorf("a read_committed reader sees %d keys, want 30", len(seen))
	}
}
