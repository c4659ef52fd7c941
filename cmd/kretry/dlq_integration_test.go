//go:build integration

package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/kretry/kretry/internal/kafkatest"
)

// TestIntegrationDLQCommands runs kretry dlq through the CLI on the real
// broker: topics apply creates the DLQ, then ls, stats, a dry run, a replay,
// an identical replay, and bad flags.
func TestIntegrationDLQCommands(t *testing.T) {
	seeds := kafkatest.Brokers(t)
	noEnvOverrides(t)
	main := realMain(t, seeds)
	cfg := writeConfig(t, seeds, main, "")
	if res := kretry(t, "topics", "apply", "-c", cfg); res.code != exitOK {
		t.Fatalf("topics apply:\n%s", res)
	}
	fillDLQ(t, seeds, main+".dlq", main)
	t.Setenv("COLUMNS", "160")

	res := kretry(t, "dlq", "ls", "-c", cfg)
	if lines := strings.Split(strings.TrimSpace(res.stdout), "\n"); res.code != exitOK || len(lines) != 5 ||
		!strings.Contains(lines[1], "/0@10 ") || !strings.Contains(lines[1], "order 1 not found") {
		t.Fatalf("ls:\n%s", res)
	}
	res = kretry(t, "dlq", "stats", "-c", cfg, "--json")
	var st struct{ Total int }
	if err := json.Unmarshal([]byte(res.stdout), &st); err != nil || st.Total != 4 {
		t.Fatalf("stats --json: %v\n%s", err, res)
	}
	res = kretry(t, "dlq", "replay", "-c", cfg, "--dry-run")
	if res.code != exitOK || !strings.Contains(res.stdout, "dry run: would replay 3 records") {
		t.Fatalf("dry run:\n%s", res)
	}
	res = kretry(t, "dlq", "replay", "-c", cfg)
	if res.code != exitOK || !strings.Contains(res.stdout, "replayed 3 records of "+main+".dlq") ||
		!strings.Contains(res.stdout, "passed over 1 record the filters do not select (of other groups") {
		t.Fatalf("replay:\n%s", res)
	}
	res = kretry(t, "dlq", "replay", "-c", cfg)
	if res.code != exitOK || !strings.Contains(res.stdout, "replayed 0 records") {
		t.Fatalf("identical replay:\n%s", res)
	}
	res = kretry(t, "dlq", "stats", "--topic", main+".retry-5s", "--brokers", strings.Join(seeds, ","))
	if res.code != exitOK || !strings.Contains(res.stdout, main+".retry-5s holds no records") {
		t.Fatalf("stats of an empty topic:\n%s", res)
	}
	res = kretry(t, "dlq", "stats", "--topic", main, "--brokers", strings.Join(seeds, ","))
	if res.code != exitOK || !strings.Contains(res.stdout, main+" holds no kretry DLQ records") {
		t.Fatalf("stats of records without kretry headers:\n%s", res)
	}
	res = kretry(t, "dlq", "ls", "--topic", main+".dlq", "--brokers", strings.Join(seeds, ","), "--offsets", "5-2")
	if res.code != exitUsage || !strings.Contains(res.stderr, "want FROM-TO") {
		t.Fatalf("bad --offsets:\n%s", res)
	}
	res = kretry(t, "dlq", "replay", "-c", cfg, "--since", "yesterday")
	if res.code != exitUsage || !strings.Contains(res.stderr, "duration ago") {
		t.Fatalf("bad --since:\n%s", res)
	}
}

// TestIntegrationDLQReplayExactlyOnce: with exactly_once: true in the config,
// kretry dlq replay produces and commits its progress in transactions.
func TestIntegrationDLQReplayExactlyOnce(t *testing.T) {
	seeds := kafkatest.Brokers(t)
	noEnvOverrides(t)
	main := realMain(t, seeds)
	cfg := writeConfig(t, seeds, main, "exactly_once: true\n")
	if res := kretry(t, "topics", "apply", "-c", cfg); res.code != exitOK {
		t.Fatalf("topics apply:\n%s", res)
	}
	fillDLQ(t, seeds, main+".dlq", main)
	res := kretry(t, "dlq", "replay", "-c", cfg)
	if res.code != exitOK || !strings.Contains(res.stdout, "replayed 3 records of "+main+".dlq") ||
		!strings.Contains(res.stdout, "in transactions with their progress (exactly_once; transactional id kretry/"+main+".dlq-replay-") {
		t.Fatalf("replay:\n%s", res)
	}
	res = kretry(t, "dlq", "replay", "-c", cfg)
	if res.code != exitOK || !strings.Contains(res.stdout, "replayed 0 records") {
		t.Fatalf("identical replay:\n%s", res)
	}
}
