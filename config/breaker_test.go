package config_test

import (
	"strings"
	"testing"
	"time"

	"github.com/kretry/kretry/config"
	"github.com/kretry/kretry/ladder"
)

// circuit_breaker from a file: half_open_records as given, 5 when omitted.
func TestCircuitBreakerLoad(t *testing.T) {
	clearEnv(t)
	c, err := config.Load("../testdata/config/good/circuit-breaker.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := []config.CircuitBreaker{
		{FailureRatio: 0.5, MinRecords: 100, Window: 30 * time.Second, OpenFor: time.Minute, HalfOpenRecords: 3},
		{FailureRatio: 0.25, MinRecords: 20, Window: 10 * time.Second, OpenFor: 30 * time.Second},
	}
	for i, w := range want {
		if got := c.Topics[i].CircuitBreaker; got == nil || *got != w {
			t.Errorf("topics[%d].circuit_breaker = %+v, want %+v", i, got, w)
		}
	}
	if n := c.Topics[0].CircuitBreaker.Probes(); n != 3 {
		t.Errorf("Probes() = %d, want 3", n)
	}
	if n := c.Topics[1].CircuitBreaker.Probes(); n != 5 {
		t.Errorf("Probes() of an omitted half_open_records = %d, want 5", n)
	}
}

// A circuit breaker built in Go is held to the file's rules; 0 is the default.
func TestCircuitBreakerValidate(t *testing.T) {
	for _, c := range []struct {
		halfOpen int
		problem  string // "": valid
	}{
		{0, ""},
		{1, ""},
		{config.MaxHalfOpenRecords, ""},
		{-1, "topics[0].circuit_breaker.half_open_records: must be a whole number from 1 to 10000"},
		{config.MaxHalfOpenRecords + 1, "topics[0].circuit_breaker.half_open_records: must be a whole number from 1 to 10000"},
	} {
		cfg := &config.Config{Brokers: []string{"127.0.0.1:9092"}, Group: "g", Topics: []config.Topic{{
			Name: "orders", Tiers: []ladder.Tier{{Delay: time.Second}},
			CircuitBreaker: &config.CircuitBreaker{FailureRatio: 0.5, MinRecords: 10, Window: time.Second, OpenFor: time.Second, HalfOpenRecords: c.halfOpen},
		}}}
		err := cfg.Validate()
		switch {
		case c.problem == "" && err != nil:
			t.Errorf("half_open_records %d: %v, want valid", c.halfOpen, err)
		case c.problem != "" && (err == nil || !strings.Contains(err.Error(), c.problem)):
			t.Errorf("half_open_records %d: %v, want %q", c.halfOpen, err, c.problem)
		}
	}
}
