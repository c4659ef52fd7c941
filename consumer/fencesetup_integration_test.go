//go:build integration

package consumer_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kretry/kretry/config"
	"github.com/kretry/kretry/consumer"
	"github.com/kretry/kretry/internal/kafkatest"
)

// Exactly once without instance_id, with group_protocol: consumer: the
// session a fence starts sets up what the first does, the group's session
// timeout included. Here the group's consumer.session.timeout.ms is changed
// behind the consumer's back, then its transactional id is taken (an
// InitProducerID of it: the consumer's next transaction is fenced); the new
// session sets session_timeout again. Before, only the first session set it
// (and read the tier and DLQ topics' partition counts).
func TestExactlyOnceSessionAfterAFenceSetsUpAsTheFirst(t *testing.T) {
	verifyNoLeaks(t)
	b := newRealBroker(t, 1)
	b.cfg.ExactlyOnce = true
	b.cfg.GroupProtocol = config.GroupProtocolConsumer
	b.cfg.SessionTimeout = 50 * time.Second // within the brokers' default bounds, 45s to 60s
	var handled atomic.Int64
	var logs kafkatest.Buffer
	stop := b.run(consumer.HandlerFunc(func(context.Context, *kgo.Record) error {
		handled.Add(1)
		return nil
	}), consumer.WithRelay(false), consumer.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	ctx := context.Background()
	produce := func(key string) {
		if err := b.cl.ProduceSync(ctx, &kgo.Record{Topic: b.ladder.Topic(), Key: []byte(key)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	timeout := func() string { return b.groupConfig(b.cfg.Group, config.GroupConfigSessionTimeout) }

	produce("k0")
	waitReal(t, 60*time.Second, "k0 handled and the group's session timeout set", func() bool {
		return handled.Load() == 1 && timeout() == "50000"
	})
	other := &config.Config{GroupProtocol: config.GroupProtocolConsumer, SessionTimeout: 55 * time.Second}
	if err := other.SetGroupSessionTimeout(ctx, b.cl, b.cfg.Group); err != nil {
		t.Fatal(err)
	}
	waitReal(t, 30*time.Second, "the group's session timeout changed to 55s", func() bool { return timeout() == "55000" })

	fenceByClientID(t, b)
	produce("k1")
	waitReal(t, 90*time.Second, "the consumer fenced", func() bool {
		return strings.Contains(logs.String(), "transaction was fenced")
	})
	waitReal(t, 60*time.Second, "the new session's group session timeout, session_timeout (50000)", func() bool { return timeout() == "50000" })
	waitReal(t, 60*time.Second, "k1 handled", func() bool { return handled.Load() >= 2 })
	if err := stop(); err != nil {
		t.Errorf("Run: %v", err)
	}
}

// fenceByClientID takes the transactional id of b's consumer, the client
// id of the one member of its group, with an InitProducerID: the brokers
// bump its epoch, so the consumer's next transaction is fenced.
func fenceByClientID(t *testing.T, b *realBroker) {
	t.Helper()
	id := memberTxnID(t, b)
	if !strings.HasPrefix(id, "kretry/") {
		t.Fatalf("group %s has no one kretry consumer as its member (client id %q)", b.cfg.Group, id)
	}
	fenceTxnID(t, b, id)
}

// memberTxnID is the client id, a kretry consumer's transactional id, of
// the one member of b's group; "" when the group has not one member.
func memberTxnID(t *testing.T, b *realBroker) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if b.cfg.GroupProtocol == config.GroupProtocolConsumer {
		groups, err := b.adm.DescribeConsumerGroups(ctx, b.cfg.Group)
		if err != nil {
			t.Fatal(err)
		}
		if g := groups[b.cfg.Group]; g.Err == nil && len(g.Members) == 1 {
			return g.Members[0].ClientID
		}
		return ""
	}
	groups, err := b.adm.DescribeGroups(ctx, b.cfg.Group)
	if err != nil {
		t.Fatal(err)
	}
	if g := groups[b.cfg.Group]; g.Err == nil && len(g.Members) == 1 {
		return g.Members[0].ClientID
	}
	return ""
}

// fenceTxnID initializes transactional id id's producer, which bumps its
// epoch: its owner's next transaction is fenced.
func fenceTxnID(t *testing.T, b *realBroker, id string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req := kmsg.NewPtrInitProducerIDRequest()
	req.TransactionalID = &id
	req.TransactionTimeoutMillis = 60_000
	req.ProducerID, req.ProducerEpoch = -1, -1
	for {
		resp, err := req.RequestWith(ctx, b.cl)
		if err == nil {
			err = kerr.ErrorForCode(resp.ErrorCode)
		}
		if err == nil {
			return
		}
		if !errors.Is(err, kerr.ConcurrentTransactions) || ctx.Err() != nil {
			t.Fatal(fmt.Errorf("fencing transactional id %s: %w", id, err))
		}
		time.Sleep(100 * time.Millisecond)
	}
}
