package config_test

import (
	"testing"
	"time"

	"github.com/kretry/kretry/config"
	"github.com/kretry/kretry/ladder"
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

// The commit_interval config.Parse takes is one relay.New takes: the
// shortest, and not a millisecond less.
func TestRelayOptsCommitInterval(t *testing.T) {
	base := "brokers: [\"127.0.0.1:9092\"]\ngroup: g\ntopics: [{name: orders, tiers: [{delay: 5s}]}]\n"
	for _, tc := range []struct {
		interval time.Duration
		ok       bool
	}{{config.MinCommitInterval, true}, {config.MinCommitInterval - time.Millisecond, false}} {
		yaml := base + "commit_interval: " + tc.interval.String() + "\n"
		cfg, perr := config.Parse([]byte(yaml))
		if (perr == nil) != tc.ok {
			t.Errorf("config.Parse with commit_interval %v: %v, want ok %v", tc.interval, perr, tc.ok)
		}
		l, err := ladder.New("orders", "g", []ladder.Tier{{Delay: 5 * time.Second}})
		if err != nil {
			t.Fatal(err)
		}
		c := &config.Config{Group: "g", CommitInterval: tc.interval}
		if cfg != nil {
			c = cfg
		}
		if _, err := relay.New([]*ladder.Ladder{l}, c.RelayOpts()...); (err == nil) != tc.ok {
			t.Errorf("relay.New with commit_interval %v: %v, want ok %v (as config.Parse)", tc.interval, err, tc.ok)
		}
	}
}
