package main

import (
	"errors"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/config"
	"github.com/kretry/kretry/consumer"
	"github.com/kretry/kretry/headers"
	"github.com/kretry/kretry/kretrytest"
)

func TestKretryConfig(t *testing.T) {
	cfg, err := kretryConfig(settings{brokers: "k1:9092,k2:9092", group: "orders-service", instanceID: "orders-0", saslUser: "orders"})
	if err != nil {
		t.Fatal(err)
	}
	// The defaults a file would get.
	if cfg.Topics[0].DLQ != "orders.dlq" || cfg.Relay.Group != "orders-service-relay" || *cfg.Relay.HoldBytes != config.DefaultHoldBytes {
		t.Errorf("defaults: DLQ %q, relay group %q, hold bytes %d", cfg.Topics[0].DLQ, cfg.Relay.Group, *cfg.Relay.HoldBytes)
	}
	if cfg.Topics[0].Tiers[0].Attempts != 1 || cfg.SessionTimeout != 15*time.Second {
		t.Errorf("tiers %+v, session timeout %v", cfg.Topics[0].Tiers, cfg.SessionTimeout)
	}

	// Bad settings are refused with the field they would have in a file.
	for _, tc := range []struct {
		s     settings
		field string
	}{
		{settings{brokers: "http://kafka:9092", group: "g"}, "brokers[0]"},
		{settings{brokers: "k:9092", group: ""}, "group"},
		{settings{brokers: "k:9092", group: "g", instanceID: "pod/0"}, "instance_id"},
	} {
		_, err := kretryConfig(tc.s)
		var fe *config.FieldError
		if !errors.As(err, &fe) || fe.Field != tc.field || !strings.HasPrefix(err.Error(), "kretry settings: "+tc.field+": ") {
			t.Errorf("kretryConfig(%+v) = %v, want an error of %s", tc.s, err, tc.field)
		}
	}
}

// The Config built in Go runs: on an in-process Kafka (kretrytest), an order
// is handled and an order without a body is dead-lettered at once.
func TestKretryConfigRuns(t *testing.T) {
	cfg, err := kretryConfig(settings{brokers: "127.0.0.1:9092", group: "orders-service"})
	if err != nil {
		t.Fatal(err)
	}
	synctest.Test(t, func(t *testing.T) {
		k := kretrytest.New(t, cfg)
		if err := k.Run(consumer.HandlerFunc(handle)); err != nil {
			t.Fatal(err)
		}
		order, empty := &kgo.Record{Key: []byte("1"), Value: []byte(`{"id": 1}`)}, &kgo.Record{Key: []byte("2")}
		if err := k.Produce(t.Context(), order, empty); err != nil {
			t.Fatal(err)
		}
		if f, err := k.Fate(t.Context(), order); err != nil || !f.Handled || len(f.Attempts) != 1 {
			t.Errorf("order: %+v, %v; want handled at the first attempt", f, err)
		}
		f, err := k.Fate(t.Context(), empty)
		if err != nil || f.Reason != headers.ReasonPermanent || f.DeadLetter.Topic != "orders.dlq" {
			t.Errorf("order without a body: %+v, %v; want dead-lettered to orders.dlq, reason permanent", f, err)
		}
	})
}
