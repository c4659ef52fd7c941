//go:build integration

package consumer_test

import (
	"context"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kretry/kretry/config"
	"github.com/kretry/kretry/consumer"
	"github.com/kretry/kretry/internal/chaos"
	"github.com/kretry/kretry/internal/kafkatest"
)

// With group_protocol: consumer (KIP-848) the brokers own the session
// timeout: Run makes session_timeout the group config
// consumer.session.timeout.ms of its group and of its relay's group (50s
// here, within the brokers' default bounds of 45s to 60s).
func TestRunSetsConsumerProtocolSessionTimeout(t *testing.T) {
	b := newRealBroker(t, 1)
	b.cfg.GroupProtocol = config.GroupProtocolConsumer
	b.cfg.SessionTimeout = 50 * time.Second
	b.runUntilGroupConfigs(map[string]string{config.GroupConfigSessionTimeout: "50000"})
}

// With group_protocol: consumer and brokers that allow kretry's defaults
// (a broker of this test's own, with the fault suite's settings), Run makes
// the default session_timeout (10s) and the heartbeat interval that follows
// it (1s) the group configs of its group and of its relay's. Before, only the
// session timeout was set, and members heartbeated at the brokers' 5s: a
// killed member's partitions moved up to 15s after the kill.
func TestRunSetsConsumerProtocolHeartbeatInterval(t *testing.T) {
	kafkatest.Brokers(t) // skips or fails like every integration test without a broker
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	cluster, err := chaos.StartCluster(t.Context(), root, 1, chaos.KIP848Settings...)
	if err != nil {
		t.Fatalf("a broker of this test's own: %v", err)
	}
	t.Cleanup(func() { _ = cluster.Down() })
	b := newRealBrokerAt(t, cluster.Brokers, 1)
	b.cfg.GroupProtocol = config.GroupProtocolConsumer
	b.runUntilGroupConfigs(map[string]string{config.GroupConfigSessionTimeout: "10000", config.GroupConfigHeartbeatInterval: "1000"})
}

// runUntilGroupConfigs runs a consumer of b.cfg until the group configs of
// its group and of its relay's have the values of want.
func (b *realBroker) runUntilGroupConfigs(want map[string]string) {
	t := b.t
	c, err := consumer.New(b.cfg, consumer.HandlerFunc(func(context.Context, *kgo.Record) error { return nil }))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- c.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-errc; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	for _, g := range []string{b.cfg.Group, b.cfg.Relay.Group} {
		for name, value := range want {
			waitReal(t, 30*time.Second, "group "+g+"'s "+name+" set to "+value, func() bool {
				return b.groupConfig(g, name) == value
			})
		}
	}
}

// groupConfig is the value of group config name of group ("" if none).
func (b *realBroker) groupConfig(group, name string) string {
	b.t.Helper()
	req := kmsg.NewPtrDescribeConfigsRequest()
	res := kmsg.NewDescribeConfigsRequestResource()
	res.ResourceType = kmsg.ConfigResourceTypeGroupConfig
	res.ResourceName = group
	res.ConfigNames = []string{name}
	req.Resources = append(req.Resources, res)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := req.RequestWith(ctx, b.cl)
	if err != nil {
		b.t.Fatalf("describing group %s's configs: %v", group, err)
	}
	for _, r := range resp.Resources {
		for _, c := range r.Configs {
			if c.Name == name && c.Value != nil {
				return *c.Value
			}
		}
	}
	return ""
}

// In exactly-once mode the transaction timeout follows session_timeout
// (three times it, config.Config.TransactionTimeout), for the consumer's
// transactions and for those of its relay, as the brokers see them: a killed
// instance's open transaction holds its records from read_committed readers
// for that long, franz-go's default being 40s.
func TestTransactionTimeoutFollowsSessionTimeout(t *testing.T) {
	b := newRealBroker(t, 1)
	b.cfg.ExactlyOnce = true
	b.cfg.InstanceID = "txn-timeout"
	b.cfg.SessionTimeout = 12 * time.Second
	want := int32(36000)
	if got := b.cfg.TransactionTimeout(); got != 36*time.Second {
		t.Fatalf("TransactionTimeout() = %v, want 36s", got)
	}
	main := b.ladder.Topic()
	if err := b.cl.ProduceSync(context.Background(), &kgo.Record{Topic: main, Key: []byte("fail")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	var refed atomic.Bool
	h := consumer.HandlerFunc(func(_ context.Context, r *kgo.Record) error {
		if len(r.Headers) > 0 { // the re-fed copy: the relay wrote it in a transaction
			refed.Store(true)
			return nil
		}
		return errTransient // forwarded to the first tier in the consumer's transaction
	})
	c, err := consumer.New(b.cfg, h)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- c.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-errc; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	waitReal(t, 60*time.Second, "the record re-fed by the relay and handled", refed.Load)
	for _, id := range []string{
		"kretry/" + b.cfg.Group + "/consumer/" + b.cfg.InstanceID,
		"kretry/" + b.cfg.Relay.Group + "/relay/" + b.cfg.InstanceID,
	} {
		dctx, dcancel := context.WithTimeout(context.Background(), 10*time.Second)
		ds, err := b.adm.DescribeTransactions(dctx, id)
		dcancel()
		if err != nil {
			t.Fatalf("describing transactional id %s: %v", id, err)
		}
		d, ok := ds[id]
		switch {
		case !ok || d.Err != nil:
			t.Errorf("transactional id %s not described: %v", id, d.Err)
		case d.TimeoutMillis != want:
			t.Errorf("transactional id %s: the brokers' transaction timeout is %dms, want %dms (three times session_timeout)", id, d.TimeoutMillis, want)
		default:
			t.Logf("transactional id %s: transaction timeout %dms", id, d.TimeoutMillis)
		}
	}
}
