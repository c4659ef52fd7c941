//go:build integration

package txnend_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/internal/chaos"
	"github.com/kretry/kretry/internal/kafkatest"
	"github.com/kretry/kretry/internal/txnend"
)

// On a broker of its own, stopped and started again with its data while a
// transaction is open (the shared broker is never touched): the group
// session is lost meanwhile, and End then aborts the transaction once the
// broker is back, instead of waiting for its context (30s in kretry's
// consumer, during which the open transaction holds back every
// read_committed reader of the partitions it wrote to). The aborted output
// is never visible; the input is handled again and its output commits once.
func TestEndAbortsAfterTheBrokerRestarted(t *testing.T) {
	kafkatest.Brokers(t) // skips or fails like every integration test without a broker
	ctx := t.Context()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	cluster, err := chaos.StartCluster(ctx, root, 1)
	if err != nil {
		t.Fatalf("a broker of this test's own: %v", err)
	}
	t.Cleanup(func() { _ = cluster.Down() })
	seeds := cluster.Brokers

	in, out, group := kafkatest.Name(t, "in"), kafkatest.Name(t, "out"), kafkatest.Name(t, "g")
	admCl, err := kgo.NewClient(kgo.SeedBrokers(seeds...))
	if err != nil {
		t.Fatal(err)
	}
	defer admCl.Close()
	adm := kadm.NewClient(admCl)
	if _, err := adm.CreateTopics(ctx, 1, 1, nil, in, out); err != nil {
		t.Fatal(err)
	}
	kafkatest.WaitTopics(t, adm, in, out)
	if err := admCl.ProduceSync(ctx, &kgo.Record{Topic: in, Value: []byte("input")}).FirstErr(); err != nil {
		t.Fatal(err)
	}

	e := txnend.New(nil)
	// As kretry's consumer builds its session: rebalances wait for the
	// poller, reads see committed records only.
	sess, err := kgo.NewGroupTransactSession(kgo.SeedBrokers(seeds...),
		kgo.ConsumerGroup(group), kgo.ConsumeTopics(in), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.TransactionalID(group), kgo.TransactionTimeout(5*time.Minute), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.BlockRebalanceOnPoll(), kgo.HeartbeatInterval(500*time.Millisecond), e.Opt())
	if err != nil {
		t.Fatal(err)
	}
	defer sess.CloseAllowingRebalance()

	// handle begins a transaction, polls the input and produces value to
	// out.
	handle := func(value string) {
		t.Helper()
		if err := sess.Begin(); err != nil {
			t.Fatal(err)
		}
		pctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		for n := 0; n == 0; {
			fs := sess.PollRecords(pctx, 10)
			if pctx.Err() != nil {
				t.Fatal("the input was not polled within 2 minutes")
			}
			n = fs.NumRecords()
		}
		if err := sess.ProduceSync(pctx, &kgo.Record{Topic: out, Value: []byte(value)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}

	handle("aborted")
	if err := cluster.Stop(ctx, 1); err != nil {
		t.Fatal(err)
	}
	kafkatest.WaitFor(t, "the group session lost (its lost callback waiting for the poller)", 50*time.Millisecond, 2*time.Minute, e.Blocked)
	if err := cluster.Start(ctx, 1); err != nil {
		t.Fatal(err)
	}
	ectx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	began := time.Now()
	committed, err := e.End(ectx, sess, kgo.TryCommit)
	t.Logf("End after the restart: committed %v, error %v, after %s", committed, err, time.Since(began).Round(time.Millisecond))
	if err != nil || committed {
		t.Fatalf("End of the transaction whose group session was lost: committed %v, error %v; want an abort without error", committed, err)
	}
	sess.AllowRebalance()

	// The input again, in a transaction that commits.
	for attempt := 1; ; attempt++ {
		handle("committed")
		committed, err := e.End(ctx, sess, kgo.TryCommit)
		sess.AllowRebalance()
		if err != nil {
			t.Fatal(err)
		}
		if committed {
			break
		}
		if attempt == 5 {
			t.Fatal("the input's output did not commit in 5 transactions")
		}
	}

	rd, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.ConsumeTopics(out),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	var got []string
	for {
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		fs := rd.PollFetches(rctx)
		cancel()
		n := 0
		fs.EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)); n++ })
		if n == 0 {
			break
		}
	}
	if len(got) != 1 || got[0] != "committed" {
		t.Errorf("a read_committed reader of %s sees %q; want [committed]", out, got)
	}
}
