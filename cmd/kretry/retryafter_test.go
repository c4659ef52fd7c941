package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// config check shows a topic's retry_after_max, and --json every topic's
// (its default included).
func TestConfigCheckRetryAfterMax(t *testing.T) {
	noEnvOverrides(t)
	path := filepath.Join(t.TempDir(), "kretry.yaml")
	text := "brokers: [\"127.0.0.1:9092\"]\ngroup: orders-service\ntopics:\n" +
		"  - {name: orders, tiers: [{delay: 5s}, {delay: 1m}], retry_after_max: 2h}\n" +
		"  - {name: payments, tiers: [{delay: 5s}]}\n"
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	r := kretry(t, "config", "check", "-c", path)
	if r.code != 0 || !strings.Contains(r.stdout, "  orders: orders.retry-5s -> orders.retry-1m -> orders.dlq (2 retries)\n"+
		"    retry_after_max 2h: a longer consumer.RetryAfter is cut to it; a wait past 1m is kept by re-parking in orders.retry-1m\n") ||
		strings.Count(r.stdout, "retry_after_max") != 1 {
		t.Errorf("config check of retry_after_max: %v", r)
	}
	r = kretry(t, "config", "check", "--json", "-c", path)
	if r.code != 0 || !strings.Contains(r.stdout, `"retry_after_max":"2h"`) || !strings.Contains(r.stdout, `"retry_after_max":"24h"`) {
		t.Errorf("config check --json of retry_after_max: %v", r)
	}
}
