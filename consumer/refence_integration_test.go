//go:build integration

package consumer_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/consumer"
)

// TestExactlyOnceFencedConsumerRejoinsRealBroker: A and B, exactly-once
// consumers of one group without instance_id, share a stream. A's
// connections go dead (frozen) while A's handler holds a record of an open
// transaction; after session_timeout B takes A's partitions and fences A's
// transaction. When A's connections come back, its transaction calls fail
// with the fence: A drops its session and rejoins with a new transactional
// id instead of stopping. After B stops, A handles the rest. Every record is
// handled ok, and a read_committed reader sees each output once.
func TestExactlyOnceFencedConsumerRejoinsRealBroker(t *testing.T) {
	testFencedConsumer(t, false)
}

// TestExactlyOnceFencedStaticConsumerStopsRealBroker: the same with
// instance_id set: another instance with A's id may really run, so A's Run
// stops with the fenced error instead of taking the id back; B handles
// everything, each output visible once.
func TestExactlyOnceFencedStaticConsumerStopsRealBroker(t *testing.T) {
	testFencedConsumer(t, true)
}

func testFencedConsumer(t *testing.T, static bool) {
	verifyNoLeaks(t)
	b := newRealBroker(t, 2)
	b.cfg.ExactlyOnce = true
	b.cfg.SessionTimeout = 6 * time.Second // the shortest the brokers take: B fences A about 7s after the freeze
	out := b.ladder.Topic() + ".out"
	ctx := context.Background()
	if resp, err := b.adm.CreateTopics(ctx, 2, 1, nil, out); err != nil || resp.Error() != nil {
		t.Fatalf("creating %s: %v %v", out, err, resp.Error())
	}
	t.Cleanup(func() { b.adm.DeleteTopics(context.Background(), out) })

	var mu sync.Mutex
	ok := map[string]bool{}  // keys handled ok, by anyone
	okB := map[string]bool{} // by B
	var byA atomic.Int64
	gate := make(chan struct{}) // A's handler waits here on keys "block-*"
	blocked := make(chan struct{}, 2)
	handler := func(isA bool) consumer.Handler {
		return consumer.HandlerFunc(func(ctx context.Context, r *kgo.Record) error {
			k := string(r.Key)
			if err := consumer.Emit(ctx, &kgo.Record{Topic: out, Key: []byte("out-" + k)}); err != nil {
				return err
			}
			if isA && strings.HasPrefix(k, "block-") {
				select {
				case blocked <- struct{}{}:
				default:
				}
				select {
				case <-gate:
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			if isA {
				byA.Add(1)
			}
			mu.Lock()
			ok[k] = true
			if !isA {
				okB[k] = true
			}
			mu.Unlock()
			return nil
		})
	}
	var frozen atomic.Bool
	dial := func(ctx context.Context, network, host string) (net.Conn, error) {
		var d net.Dialer
		c, err := d.DialContext(ctx, network, host)
		if err != nil {
			return nil, err
		}
		return &freezableConn{Conn: c, frozen: &frozen}, nil
	}
	cfgA, cfgB := *b.cfg, *b.cfg
	if static {
		cfgA.InstanceID, cfgB.InstanceID = "a", "b"
	}
	var logA logBuffer
	a, err := consumer.New(&cfgA, handler(true), consumer.WithRelay(false), consumer.WithLogger(logA.logger()),
		consumer.WithClientOpts(kgo.Dialer(dial)))
	if err != nil {
		t.Fatal(err)
	}
	actx, stopA := context.WithCancel(ctx)
	var errA error
	doneA := make(chan struct{}) // closed when A's Run returned errA
	go func() { errA = a.Run(actx); close(doneA) }()
	t.Cleanup(func() {
		stopA()
		frozen.Store(false)
		select {
		case <-doneA:
		case <-time.After(2 * time.Minute):
			t.Error("A's Run did not return within 2 minutes of its stop")
		}
	})

	regB := prometheus.NewRegistry()
	bc, err := consumer.New(&cfgB, handler(false), consumer.WithRelay(false), consumer.WithRegisterer(regB))
	if err != nil {
		t.Fatal(err)
	}
	bctx, stopB := context.WithCancel(ctx)
	errB := make(chan error, 1)
	go func() { errB <- bc.Run(bctx) }()
	stoppedB := false
	t.Cleanup(func() {
		if !stoppedB {
			stopB()
			<-errB
		}
	})
	b.waitStable(b.cfg.Group)
	waitReal(t, 60*time.Second, "A and B both members", func() bool {
		ds, err := b.adm.DescribeGroups(ctx, b.cfg.Group)
		return err == nil && len(ds[b.cfg.Group].Members) == 2 && ds[b.cfg.Group].State == "Stable"
	})

	produce := func(keys ...string) {
		t.Helper()
		var recs []*kgo.Record
		for i, k := range keys {
			recs = append(recs, &kgo.Record{Topic: b.ladder.Topic(), Partition: int32(i % 2), Key: []byte(k)})
		}
		if err := b.cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	var keys []string
	for i := range 20 {
		keys = append(keys, fmt.Sprintf("k-%d", i))
	}
	keys = append(keys, "block-0", "block-1") // one on each partition: A holds the one of its own
	produce(keys...)
	select {
	case <-blocked:
	case <-doneA:
		t.Fatalf("A's Run returned before it blocked: %v", errA)
	case <-time.After(60 * time.Second):
		t.Fatal("A never blocked on its block-* record")
	}
	time.Sleep(time.Second) // A's open transaction has its output's partition
	frozen.Store(true)      // A is cut off from the brokers, its transaction open

	fenced := func() float64 {
		return counterValue(t, regB, "kretry_fenced_transactions_total", map[string]string{"component": "consumer", "group": b.cfg.Group})
	}
	waitReal(t, 90*time.Second, "B to fence A's open transaction", func() bool { return fenced() >= 1 })
	close(gate) // A's handler returns; its transaction cannot commit
	frozen.Store(false)

	if static {
		select {
		case <-doneA:
		case <-time.After(2 * time.Minute):
			// Seen once in nine runs (session 14), not in 45 since: A's log
			// and the consumers' goroutines say where it waits.
			t.Fatalf("A, with instance_id, still runs 2 minutes after its transaction was fenced (fences by B: %v); A's log:\n%s\nthe goroutines in package consumer:\n%s",
				fenced(), logA.String(), consumerStacks())
		}
		if !errors.Is(errA, kerr.ProducerFenced) && !errors.Is(errA, kerr.InvalidProducerEpoch) {
			t.Errorf("A's Run returned %v, want the fence (PRODUCER_FENCED or INVALID_PRODUCER_EPOCH)", errA)
		}
		if strings.Contains(logA.String(), "rejoins the group") {
			t.Errorf("A, with instance_id, rejoined after the fence")
		}
		// A's handlings of its transaction are aborted: B handles them again.
		waitReal(t, 120*time.Second, "B to handle every record", func() bool {
			mu.Lock()
			defer mu.Unlock()
			for _, k := range keys {
				if !okB[k] {
					return false
				}
			}
			return true
		})
		if err := func() error { stoppedB = true; stopB(); return <-errB }(); err != nil {
			t.Errorf("B: %v", err)
		}
		checkOutputsOnce(t, b, out, keys)
		t.Logf("A: %v", errA)
		return
	}
	waitReal(t, 120*time.Second, "A to rejoin after the fence", func() bool {
		select {
		case <-doneA:
			t.Fatalf("A's Run returned after its transaction was fenced: %v", errA)
		default:
		}
		return strings.Contains(logA.String(), "rejoins the group with a new transactional id")
	})
	if err := func() error { stoppedB = true; stopB(); return <-errB }(); err != nil {
		t.Errorf("B: %v", err)
	}
	var more []string
	for i := range 20 {
		more = append(more, fmt.Sprintf("m-%d", i))
	}
	atA := byA.Load()
	produce(more...)
	keys = append(keys, more...)
	waitReal(t, 120*time.Second, "A to handle the records produced after B stopped", func() bool {
		select {
		case <-doneA:
			t.Fatalf("A's Run returned: %v", errA)
		default:
		}
		return byA.Load() >= atA+int64(len(more))
	})
	waitReal(t, 60*time.Second, "every record handled ok", func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, k := range keys {
			if !ok[k] {
				return false
			}
		}
		return true
	})
	stopA()
	select {
	case <-doneA:
		if errA != nil {
			t.Errorf("A: %v", errA)
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("A's Run did not return within 2 minutes of its stop")
	}

	checkOutputsOnce(t, b, out, keys)
	t.Logf("fences by B: %v; A's log:\n%s", fenced(), grepLines(logA.String(), "fenced"))
}

// checkOutputsOnce checks that a read_committed reader of out sees the
// output of each key once, and no other.
func checkOutputsOnce(t *testing.T, b *realBroker, out string, keys []string) {
	t.Helper()
	seen := map[string]int{}
	for _, k := range b.readCommittedKeys(out, len(keys)) {
		seen[k]++
	}
	for _, k := range keys {
		if n := seen["out-"+k]; n != 1 {
			t.Errorf("output of %s visible %d times to a read_committed reader, want once", k, n)
		}
	}
	if len(seen) != len(keys) {
		t.Errorf("a read_committed reader sees %d distinct outputs, want %d", len(seen), len(keys))
	}
}

// consumerStacks returns the stacks of the goroutines running code of
// package consumer (both consumers of a test), from a dump of all.
func consumerStacks() string {
	buf := make([]byte, 16<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "kretry/kretry/consumer.(") {
			out = append(out, g)
		}
	}
	return strings.Join(out, "\n\n")
}

// grepLines returns the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
