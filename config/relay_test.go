package config_test

import (
	"testing"

	"github.com/kretry/kretry/config"
	"github.com/kretry/kretry/relay"
)

// RelayOpts carries the config's relay settings into relay.New: the group,
// exactly_once with instance_id (seen in the transactional id), and a
// Config built in Go with zeros gets the relay's defaults, not a zero fetch
// max wait that relay.New refuses.
func TestRelayOpts(t *testing.T) {
	cfg, err := config.Parse([]byte(`
brokers: ["127.0.0.1:9092"]
group: orders-service
exactly_once: true
instance_id: pod-0
relay:
  group: orders-relay
  fetch_max_wait: 20ms
  hold_bytes: 1MiB
topics:
  - name: orders
    tiers: [{delay: 5s}]
`))
	if err != nil {
		t.Fatal(err)
	}
	ladders, err := cfg.Ladders()
	if err != nil {
		t.Fatal(err)
	}
	r, err := relay.New(ladders, cfg.RelayOpts()...)
	if err != nil {
		t.Fatal(err)
	}
	if r.Group() != "orders-relay" || r.TransactionalID() != "kretry/orders-relay/relay/pod-0" {
		t.Errorf("relay group %q, transactional id %q; want orders-relay and kretry/orders-relay/relay/pod-0", r.Group(), r.TransactionalID())
	}

	bare := &config.Config{Group: "orders-service", Topics: cfg.Topics}
	r, err = relay.New(ladders, bare.RelayOpts()...)
	if err != nil {
		t.Fatalf("relay.New with the options of an unvalidated Config: %v", err)
	}
	if r.Group() != "orders-service-relay" {
		t.Errorf("relay group %q, want the default orders-service-relay", r.Group())
	}
}
