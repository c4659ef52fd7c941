//go:build integration

package consumer_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/config"
	"github.com/kretry/kretry/consumer"
	"github.com/kretry/kretry/internal/chaos"
	"github.com/kretry/kretry/internal/kafkatest"
)

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
		for name, want := range map[string]string{config.GroupConfigSessionTimeout: "10000", config.GroupConfigHeartbeatInterval: "1000"} {
			var got string
			waitReal(t, 30*time.Second, "group "+g+"'s "+name+" set to "+want, func() bool {
				got = b.groupConfig(g, name)
				return got == want
			})
		}
	}
}
