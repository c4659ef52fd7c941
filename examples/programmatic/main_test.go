package main

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/kretry/kretry/config"
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
