//go:build integration

package consumer_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/consumer"
)

// TestExactlyOnceFencesKilledInstanceRealBroker: A, an exactly-once
// consumer without instance_id (so a random transactional id no restart
// reuses), emits outputs in a transaction and is killed (SIGKILL) with it
// open. B, another instance of the group, takes A's partitions after the
// session timeout and fences A's transaction: it ends before its
// transaction timeout elapsed, where without the fence the brokers abort
// it only after that timeout (and the outputs B commits stay invisible to
// read_committed readers until then).
func TestExactlyOnceFencesKilledInstanceRealBroker(t *testing.T) {
	verifyNoLeaks(t)
	b := newRealBroker(t, 2)
	b.cfg.ExactlyOnce = true
	b.cfg.SessionTimeout = 6 * time.Second // a transaction timeout of 18s
	out := b.ladder.Topic() + ".out"
	ctx := context.Background()
	if resp, err := b.adm.CreateTopics(ctx, 2, 1, nil, out); err != nil || resp.Error() != nil {
		t.Fatalf("creating %s: %v %v", out, err, resp.Error())
	}
	t.Cleanup(func() { b.adm.DeleteTopics(context.Background(), out) })
	keys := []string{"ok-0", "fail-1", "ok-2", "block-4", "ok-5"}
	for _, k := range keys {
		if err := b.cl.ProduceSync(ctx, &kgo.Record{Topic: b.ladder.Topic(), Partition: 0, Key: []byte(k)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}

	blocked := make(chan struct{}, 1)
	a := startCrashChild(t, crashSpec{Config: b.cfg, Handler: "txn-block", NoRelay: true, Out: out}, func(line string) {
		if line == "blocked" {
			blocked <- struct{}{}
		}
	})
	select {
	case <-blocked:
	case <-time.After(60 * time.Second):
		t.Fatal("A never reached block-4")
	}
	prefix := "kretry/" + b.cfg.Group + "/consumer/"
	var idA string
	waitReal(t, 30*time.Second, "A's transaction listed", func() bool {
		ls, err := b.adm.ListTransactions(ctx, nil, []string{"Ongoing"})
		if err != nil {
			return false
		}
		for id := range ls {
			if strings.HasPrefix(id, prefix) {
				idA = id
			}
		}
		return idA != ""
	})
	ds, err := b.adm.DescribeTransactions(ctx, idA)
	if err != nil {
		t.Fatal(err)
	}
	txnA, _ := ds.On(idA, nil)
	timesOut := time.UnixMilli(txnA.StartTimestamp).Add(time.Duration(txnA.TimeoutMillis) * time.Millisecond)
	a.kill()
	killed := time.Now()

	reg := prometheus.NewRegistry()
	c, err := consumer.New(b.cfg, txnHandler(out, false, func(string) {}), consumer.WithRelay(false), consumer.WithRegisterer(reg))
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() { errc <- c.Run(rctx) }()
	defer func() {
		cancel()
		if err := <-errc; err != nil {
			t.Errorf("B: %v", err)
		}
	}()

	var ended time.Time
	waitReal(t, 90*time.Second, "A's transaction ended", func() bool {
		ds, err := b.adm.DescribeTransactions(ctx, idA)
		if err != nil {
			return false
		}
		d, _ := ds.On(idA, nil)
		if d.State == "Ongoing" {
			return false
		}
		ended = time.Now()
		return true
	})
	t.Logf("A's transaction (timeout %v) ended %v after the kill", time.Duration(txnA.TimeoutMillis)*time.Millisecond, ended.Sub(killed).Round(100*time.Millisecond))
	if !ended.Before(timesOut) {
		t.Errorf("A's transaction ended %v after its transaction timeout elapsed: nothing fenced it, the brokers aborted it", ended.Sub(timesOut))
	}
	fenced := func() float64 {
		return counterValue(t, reg, "kretry_fenced_transactions_total", map[string]string{"component": "consumer", "group": b.cfg.Group})
	}
	waitReal(t, 30*time.Second, "B counted the fence", func() bool { return fenced() > 0 })
	if n := fenced(); n != 1 {
		t.Errorf("kretry_fenced_transactions_total{component=consumer} = %v, want 1", n)
	}
	if got := b.readCommittedKeys(out, 4); !slices.Equal(got, []string{"out-block-4", "out-ok-0", "out-ok-2", "out-ok-5"}) {
		t.Errorf("outputs seen by a read_committed reader: %v, want those of B's successful calls once each", got)
	}
}
