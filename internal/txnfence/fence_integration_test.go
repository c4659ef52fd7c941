//go:build integration

package txnfence_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/internal/kafkatest"
	"github.com/kretry/kretry/internal/txnfence"
)

// TestSweepFencesOnlyTheDeadRealBroker: three kretry-like members of a group,
// each with its transactional id as its client id, have a transaction open;
// one leaves the group without ending it (as a dead instance drops out).
// While a member the sweep cannot tell is in the group, a sweep fences
// nothing; once it is gone, a sweep fences the dead one's transaction only:
// it ends at once, and the live member still commits its own.
func TestSweepFencesOnlyTheDeadRealBroker(t *testing.T) {
	for _, protocol := range []string{"classic", "consumer"} {
		t.Run(protocol, func(t *testing.T) { testSweep(t, protocol) })
	}
}

func testSweep(t *testing.T, protocol string) {
	brokers := kafkatest.Brokers(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	topic, group := kafkatest.Name(t, "fence"), kafkatest.Name(t, "fence-g")
	adm := kadm.NewClient(newClient(t, kgo.SeedBrokers(brokers...)))
	if resp, err := adm.CreateTopics(ctx, 3, 1, nil, topic); err != nil || resp.Error() != nil {
		t.Fatalf("creating %s: %v %v", topic, err, resp.Error())
	}
	t.Cleanup(func() { adm.DeleteTopics(context.Background(), topic) })
	kafkatest.WaitTopics(t, adm, topic)

	member := func(clientID string, txn bool) *kgo.Client {
		opts := []kgo.Opt{kgo.SeedBrokers(brokers...), kgo.ClientID(clientID), kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic)}
		if protocol == "consumer" {
			opts = append(opts, kgo.Balancers(kgo.StickyBalancer()), kgo.ServerSideBalancer())
		}
		if txn {
			opts = append(opts, kgo.TransactionalID(clientID), kgo.TransactionTimeout(time.Minute))
		}
		return newClient(t, opts...)
	}
	prefix := txnfence.Prefix(group, txnfence.Consumer)
	self, live, dead := prefix+"self", prefix+"live", prefix+"dead"
	cSelf, cLive, cDead := member(self, true), member(live, true), member(dead, true)
	foreign := member("someone-else", false)
	all := []*kgo.Client{cSelf, cLive, cDead, foreign}
	for _, cl := range all {
		go func() {
			for !cl.PollFetches(ctx).IsClientClosed() && ctx.Err() == nil {
			}
		}()
	}
	waitMembers(t, ctx, adm, group, protocol, 4)
	for _, cl := range []*kgo.Client{cLive, cDead} {
		if err := cl.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte("in a transaction")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	cDead.LeaveGroup() // its transaction stays open
	waitMembers(t, ctx, adm, group, protocol, 3)

	counter := prometheus.NewCounter(prometheus.CounterOpts{Name: "fenced"})
	f := txnfence.New(group, txnfence.Consumer, self, nil, counter)
	if fenced, err := f.Sweep(ctx, cSelf); !errors.Is(err, txnfence.ErrInDoubt) || len(fenced) != 0 {
		t.Fatalf("with a member of client id someone-else in the group: sweep fenced %v, error %v; want nothing, ErrInDoubt", fenced, err)
	}
	if s := state(t, ctx, adm, dead); s != "Ongoing" {
		t.Fatalf("the dead member's transaction is %s after a sweep in doubt, want Ongoing", s)
	}

	foreign.LeaveGroup()
	waitMembers(t, ctx, adm, group, protocol, 2)
	fenced, err := f.Sweep(ctx, cSelf)
	if err != nil || !slices.Equal(fenced, []string{dead}) {
		t.Fatalf("sweep fenced %v, error %v; want %s", fenced, err, dead)
	}
	if s := state(t, ctx, adm, dead); s == "Ongoing" {
		t.Errorf("the dead member's transaction is still Ongoing after it was fenced")
	}
	if n := testutil.ToFloat64(counter); n != 1 {
		t.Errorf("fenced counter = %v, want 1", n)
	}
	if s := state(t, ctx, adm, live); s != "Ongoing" {
		t.Errorf("the live member's transaction is %s after the sweep, want Ongoing", s)
	}
	if err := cLive.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Errorf("the live member could not commit after the sweep: %v", err)
	}
	if fenced, err := f.Sweep(ctx, cSelf); err != nil || len(fenced) != 0 {
		t.Errorf("a second sweep fenced %v, error %v; want nothing", fenced, err)
	}
}

func newClient(t *testing.T, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// waitMembers waits until group has n members.
func waitMembers(t *testing.T, ctx context.Context, adm *kadm.Client, group, protocol string, n int) {
	t.Helper()
	kafkatest.WaitFor(t, "the group's members", 100*time.Millisecond, time.Minute, func() bool {
		if protocol == "consumer" {
			gs, err := adm.DescribeConsumerGroups(ctx, group)
			return err == nil && len(gs[group].Members) == n
		}
		gs, err := adm.DescribeGroups(ctx, group)
		return err == nil && gs[group].State == "Stable" && len(gs[group].Members) == n
	})
}

// state is the state of id's transaction.
func state(t *testing.T, ctx context.Context, adm *kadm.Client, id string) string {
	t.Helper()
	ds, err := adm.DescribeTransactions(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	d, err := ds.On(id, nil)
	if err != nil {
		t.Fatal(err)
	}
	return d.State
}

// A member that drops out of the group with a transaction open and is back
// in it before the confirm wait ends (a broker restart, the coordinator
// moving: the sweeping client failed to connect too) keeps its transaction:
// the sweep fences nothing. Without the
// confirm wait it was fenced at once, and its Run stopped (seen in the short
// fault suite's broker restart in exactly-once mode).
func TestSweepSparesAMemberBackWithinTheConfirmWait(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	topic, group := kafkatest.Name(t, "fence"), kafkatest.Name(t, "fence-g")
	adm := kadm.NewClient(newClient(t, kgo.SeedBrokers(brokers...)))
	if resp, err := adm.CreateTopics(ctx, 3, 1, nil, topic); err != nil || resp.Error() != nil {
		t.Fatalf("creating %s: %v %v", topic, err, resp.Error())
	}
	t.Cleanup(func() { adm.DeleteTopics(context.Background(), topic) })
	kafkatest.WaitTopics(t, adm, topic)

	prefix := txnfence.Prefix(group, txnfence.Consumer)
	self, back := prefix+"self", prefix+"back"
	poll := func(cl *kgo.Client) {
		go func() {
			for !cl.PollFetches(ctx).IsClientClosed() && ctx.Err() == nil {
			}
		}()
	}
	member := func(clientID string, txn bool) *kgo.Client {
		opts := []kgo.Opt{kgo.SeedBrokers(brokers...), kgo.ClientID(clientID), kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic)}
		if txn {
			opts = append(opts, kgo.TransactionalID(clientID), kgo.TransactionTimeout(time.Minute))
		}
		cl := newClient(t, opts...)
		poll(cl)
		return cl
	}
	cSelf, cBack := member(self, true), member(back, true)
	waitMembers(t, ctx, adm, group, "classic", 2)
	if err := cBack.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := cBack.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte("in a transaction")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	cBack.LeaveGroup() // out of the group, its transaction open
	waitMembers(t, ctx, adm, group, "classic", 1)

	f := txnfence.New(group, txnfence.Consumer, self, nil, nil).ConfirmAfter(4 * time.Second)
	// The sweeping client lost the brokers a moment ago too, as in a
	// broker restart: the sweep waits the long confirm wait.
	f.OnBrokerConnect(kgo.BrokerMetadata{}, 0, nil, errors.New("connection refused"))
	type result struct {
		fenced []string
		err    error
	}
	done := make(chan result, 1)
	go func() {
		fenced, err := f.Sweep(ctx, cSelf)
		done <- result{fenced, err}
	}()
	time.Sleep(500 * time.Millisecond)
	member(back, false) // the same instance back in the group, as its client id says
	waitMembers(t, ctx, adm, group, "classic", 2)
	r := <-done
	if r.err != nil || len(r.fenced) != 0 {
		t.Fatalf("sweep fenced %v, error %v; want nothing: the member was back before the confirm wait ended", r.fenced, r.err)
	}
	if s := state(t, ctx, adm, back); s != "Ongoing" {
		t.Errorf("the transaction of the member that came back is %s, want Ongoing", s)
	}
	if err := cBack.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Errorf("the member that came back could not commit: %v", err)
	}
}
