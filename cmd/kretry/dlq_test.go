package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/headers"
	"github.com/kretry/kretry/internal/kafkatest"
)

func TestDLQUsageErrors(t *testing.T) {
	noEnvOverrides(t)
	// Two topics: --topic is required. The brokers are never reached: usage
	// is checked first.
	two := filepath.Join(t.TempDir(), "two.yaml")
	if err := os.WriteFile(two, []byte(`brokers: ["127.0.0.1:1"]
group: g
topics:
  - name: orders
    tiers: [{delay: 5s}]
  - name: payments
    tiers: [{delay: 5s}]
`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"dlq", "ls", "--bogus"}, "unknown flag: --bogus"},
		{[]string{"dlq", "ls", "--offsets", "5-2"}, "FROM 5 is after TO 2; want FROM-TO (both included, FROM ≤ TO)"},
		{[]string{"dlq", "ls", "--offsets", "x"}, "want FROM-TO"},
		{[]string{"dlq", "stats", "--since", "yesterday"}, `--since "yesterday" is not a time: want a time (2026-11-25T10:00:00Z`},
		{[]string{"dlq", "replay", "--until", "-2h"}, "or a duration ago (90s, 30m, 2h, 3d)"},
		{[]string{"dlq", "ls", "--reason", "timeout"}, "want one of exhausted, permanent, panic, expired, too-large, invalid-metadata, unknown"},
		{[]string{"dlq", "ls", "--partition", "x"}, `invalid argument "x" for "--partition"`},
		{[]string{"dlq", "ls", "--limit", "-1"}, "--limit -1: want a number of records"},
		{[]string{"dlq", "ls", "--key-hex", "0xfg"}, `--key-hex "0xfg" is not a key in hex: want its bytes as pairs of hex digits`},
		{[]string{"dlq", "replay", "--key-hex", "f"}, `--key-hex "f" is not a key in hex`},
		{[]string{"dlq", "ls", "--key", "o-1", "--key-hex", "ff00"}, "--key and --key-hex both name a key: give one"},
		{[]string{"dlq", "replay", "--max-replays", "0"}, "--max-replays 0: want 1 or more"},
		{[]string{"dlq", "replay", "--rate", "-5"}, "--rate -5: want records per second"},
		{[]string{"dlq", "replay", "--group", ""}, "--group is empty"},
		{[]string{"dlq", "show", "--partition", "0"}, "show needs --partition P and --offset O"},
		{[]string{"dlq", "ls", "stray"}, "takes no arguments"},
		{[]string{"dlq", "nope"}, `unknown command "nope"`},
		{[]string{"dlq", "ls", "-c", two}, "has 2 topics: name the DLQ with --topic, one of orders.dlq, payments.dlq"},
		{[]string{"dlq", "replay", "--rate", "NaN"}, "--rate NaN: want records per second, finite and at least"},
		{[]string{"dlq", "replay", "--rate", "Inf"}, "--rate +Inf: want records per second, finite"},
		{[]string{"dlq", "replay", "--rate", "1e-300"}, "--rate 1e-300: want records per second, finite and at least 0.0003 (one an hour)"},
		{[]string{"dlq", "ls", "--topic", ""}, "--topic is empty"},
		{[]string{"dlq", "show", "--topic", "", "--partition", "0", "--offset", "0"}, "--topic is empty"},
		{[]string{"dlq", "stats", "--reason", ""}, "--reason has an empty value"},
		{[]string{"dlq", "ls", "--reason", "permanent,"}, "--reason has an empty value"},
		{[]string{"dlq", "replay", "--offsets", ""}, "--offsets is empty"},
		{[]string{"dlq", "ls", "--brokers", "", "--topic", "orders.dlq"}, "--brokers has an empty value"},
		{[]string{"dlq", "ls", "--failed-group", ""}, "--failed-group is empty"},
		{[]string{"dlq", "ls", "--since", "2026-11-25", "--until", "2026-11-24"}, "--since 2026-11-25 is not before --until 2026-11-24"},
		{[]string{"dlq", "stats", "--since", "1h", "--until", "2h"}, "--since 1h is not before --until 2h"},
		{[]string{"dlq", "replay", "--all-groups", "--failed-group", "g"}, "--all-groups and --failed-group both select groups"},
		{[]string{"dlq", "ls"}, "no DLQ to read: name it with --topic DLQ and the brokers with --brokers (or KRETRY_BROKERS), or give a config file with -c FILE"},
		{[]string{"dlq", "ls", "--topic", "orders.dlq"}, "--topic orders.dlq needs the brokers: give --brokers HOST:PORT (or KRETRY_BROKERS), or a config file with -c FILE"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			res := kretry(t, tc.args...)
			if res.code != exitUsage || !strings.Contains(res.stderr, tc.want) {
				t.Errorf("want exit 2 with %q; got\n%s", tc.want, res)
			}
		})
	}
}

// fillDLQ writes 4 DLQ records by hand: 3 from orders (2 permanent, 1
// exhausted), 1 without kretry headers.
func fillDLQ(t *testing.T, seeds []string, dlqTopic, main string) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	at := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	md := func(off int64, reason headers.Reason, err string) headers.Metadata {
		return headers.Metadata{Group: main + "-group", Attempts: 4, Tier: "retry-10m", DueAt: at, OriginalTopic: main,
			OriginalPartition: 0, OriginalOffset: off, OriginalTimestamp: at, FirstFailureAt: at, LastFailureAt: at,
			Error: err, Reason: reason}
	}
	recs := []*kgo.Record{
		{Key: []byte("o-1"), Value: []byte(`{"order":1}`), Headers: headers.Encode(nil, md(10, headers.ReasonPermanent, "order 1 not found"))},
		{Key: []byte("o-2"), Value: []byte(`{"order":2}`), Headers: headers.Encode(nil, md(11, headers.ReasonExhausted, "timeout after 30s"))},
		{Key: []byte{0xff, 0x00}, Value: []byte("raw"), Headers: []kgo.RecordHeader{{Key: "source", Value: []byte("legacy")}}},
		{Key: []byte("o-3"), Value: []byte(`{"order":3}`), Headers: headers.Encode(nil, md(12, headers.ReasonPermanent, "order 3 not found"))},
	}
	for i, r := range recs {
		r.Topic, r.Partition, r.Timestamp = dlqTopic, 0, at.Add(time.Duration(i)*time.Minute)
		if err := cl.ProduceSync(t.Context(), r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestDLQLsIntoPipeIsNotCut: output that is not a terminal, without COLUMNS,
// is not cut, so keys and errors stay whole for grep.
func TestDLQLsIntoPipeIsNotCut(t *testing.T) {
	noEnvOverrides(t)
	_, seeds := kafkatest.Fake(t, kfake.NumBrokers(1), kfake.SeedTopics(1, "orders", "orders.dlq"))
	cfg := writeConfig(t, seeds, "orders", "")
	t.Setenv("COLUMNS", "")
	long := strings.Repeat("x", 150)
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...))
	if err != nil {
		t.Fatal(err)
	}
	rec := &kgo.Record{Topic: "orders.dlq", Key: []byte("o-long-key-0123456789"), Headers: headers.Encode(nil, headers.Metadata{
		Group: "g", Attempts: 1, Tier: "dlq", DueAt: time.Now(), OriginalTopic: "orders", OriginalOffset: 13,
		OriginalTimestamp: time.Now(), FirstFailureAt: time.Now(), LastFailureAt: time.Now(),
		Error: long, Reason: headers.ReasonPermanent})}
	if err := cl.ProduceSync(t.Context(), rec).FirstErr(); err != nil {
		t.Fatal(err)
	}
	cl.Close()
	res := kretry(t, "dlq", "ls", "-c", cfg, "--key", "o-long-key-0123456789")
	if res.code != exitOK || !strings.Contains(res.stdout, "o-long-key-0123456789") || !strings.Contains(res.stdout, long) {
		t.Errorf("ls into a pipe cut the key or the error:\n%s", res)
	}
}

func TestDLQCommandsOnKfake(t *testing.T) {
	noEnvOverrides(t)
	_, seeds := kafkatest.Fake(t, kfake.NumBrokers(1), kfake.SeedTopics(1, "orders", "orders.dlq"))
	fillDLQ(t, seeds, "orders.dlq", "orders")
	cfg := writeConfig(t, seeds, "orders", "")
	t.Setenv("COLUMNS", "120")

	res := kretry(t, "dlq", "ls", "-c", cfg)
	lines := strings.Split(strings.TrimSpace(res.stdout), "\n")
	if res.code != exitOK || len(lines) != 5 || !strings.HasPrefix(lines[0], "P/OFFSET") {
		t.Fatalf("ls:\n%s", res)
	}
	for i, want := range []string{"0/0 11-25 10:00:00 o-1 orders/0@10 4 permanent order 1 not found",
		"0/2 11-25 10:02:00 0xff00 - - unknown -"} {
		if got := strings.Join(strings.Fields(lines[1+2*i]), " "); got != want {
			t.Errorf("ls line %d: %q, want %q", 1+2*i, got, want)
		}
	}

	// A binary key, as ls shows it, with or without its 0x.
	for _, k := range []string{"0xff00", "FF00"} {
		res = kretry(t, "dlq", "ls", "-c", cfg, "--key-hex", k)
		lines = strings.Split(strings.TrimSpace(res.stdout), "\n")
		if res.code != exitOK || len(lines) != 2 || !strings.HasPrefix(lines[1], "0/2 ") {
			t.Errorf("ls --key-hex %s: want record 0/2 alone:\n%s", k, res)
		}
	}

	// Without a config file: --brokers and --topic.
	res = kretry(t, "dlq", "ls", "--brokers", strings.Join(seeds, ","), "--topic", "orders.dlq", "--json", "--reason", "permanent")
	lines = strings.Split(strings.TrimSpace(res.stdout), "\n")
	if res.code != exitOK || len(lines) != 2 {
		t.Fatalf("ls --json --reason permanent:\n%s", res)
	}
	var obj map[string]any
	if err := json.Unmarshal([]byte(lines[1]), &obj); err != nil {
		t.Fatal(err)
	}
	if obj["offset"] != 3.0 || obj["key_text"] != "o-3" || obj["value_text"] != `{"order":3}` || obj["reason"] != "permanent" ||
		len(obj["headers"].([]any)) != 13 {
		t.Errorf("ls --json object: %v", obj)
	}

	res = kretry(t, "dlq", "show", "-c", cfg, "--partition", "0", "--offset", "1")
	if res.code != exitOK || !strings.Contains(res.stdout, "value (JSON, 11 bytes)\n{\n  \"order\": 2\n}") ||
		!strings.Contains(res.stdout, "error                timeout after 30s") {
		t.Errorf("show:\n%s", res)
	}
	res = kretry(t, "dlq", "show", "-c", cfg, "--partition", "0", "--offset", "9")
	if res.code != exitFailure || !strings.Contains(res.stderr, "has no offset 9: it holds offsets 0-3") {
		t.Errorf("show past the end:\n%s", res)
	}

	res = kretry(t, "dlq", "stats", "-c", cfg, "--json")
	var st struct {
		Total    int `json:"total"`
		ByReason []struct {
			Value string
			Count int
		} `json:"by_reason"`
		ByError []struct {
			Value string
			Count int
		} `json:"by_error"`
	}
	if err := json.Unmarshal([]byte(res.stdout), &st); err != nil || res.code != exitOK {
		t.Fatalf("stats --json: %v\n%s", err, res)
	}
	if st.Total != 4 || st.ByReason[0].Value != "permanent" || st.ByReason[0].Count != 2 ||
		st.ByError[0].Value != "order <n> not found" || st.ByError[0].Count != 2 {
		t.Errorf("stats: %+v", st)
	}
	res = kretry(t, "dlq", "stats", "-c", cfg)
	if res.code != exitOK || !strings.Contains(res.stdout, "orders.dlq: 4 records") || !strings.Contains(res.stdout, "  2  order <n> not found\n") {
		t.Errorf("stats:\n%s", res)
	}

	// Replay: dry run, then for real, then again.
	res = kretry(t, "dlq", "replay", "-c", cfg, "--dry-run")
	if res.code != exitOK || strings.Count(res.stdout, "would replay 0/") != 3 || !strings.Contains(res.stdout, "passed over 1 record the filters do not select (of other groups") {
		t.Errorf("replay --dry-run of the config's group's records:\n%s", res)
	}
	res = kretry(t, "dlq", "replay", "-c", cfg, "--dry-run", "--all-groups")
	if res.code != exitOK || strings.Count(res.stdout, "would replay 0/") != 3 ||
		!strings.Contains(res.stdout, "dry run: would replay 3 records of orders.dlq") ||
		!strings.Contains(res.stdout, "1 without an original topic") || !strings.Contains(res.stdout, ": 0/2\n") {
		t.Errorf("replay --dry-run:\n%s", res)
	}
	res = kretry(t, "dlq", "replay", "-c", cfg, "--reason", "permanent")
	if res.code != exitOK || !strings.Contains(res.stdout, "replayed 2 records of orders.dlq") || !strings.Contains(res.stdout, "to orders: 2") ||
		!strings.Contains(res.stdout, "passed over 2 records") {
		t.Errorf("replay:\n%s", res)
	}
	res = kretry(t, "dlq", "replay", "-c", cfg, "--reason", "permanent")
	if res.code != exitOK || !strings.Contains(res.stdout, "replayed 0 records") || !strings.Contains(res.stdout, "resumed after earlier replays: partition 0 at offset 4") {
		t.Errorf("second replay:\n%s", res)
	}
	// Another selection keeps its own progress.
	res = kretry(t, "dlq", "replay", "-c", cfg)
	if res.code != exitOK || !strings.Contains(res.stdout, "replayed 3 records of orders.dlq") || !strings.Contains(res.stdout, "progress group orders.dlq-replay-") {
		t.Errorf("replay of another selection:\n%s", res)
	}
	res = kretry(t, "dlq", "replay", "-c", cfg, "--all-groups", "--reason", "unknown", "--to", "orders", "--group", "legacy", "--json")
	lines = strings.Split(strings.TrimSpace(res.stdout), "\n")
	if res.code != exitOK || len(lines) != 2 || !strings.Contains(lines[0], `"outcome":"replayed"`) || !strings.Contains(lines[1], `"replayed":1`) {
		t.Errorf("replay --json:\n%s", res)
	}
	res = kretry(t, "dlq", "replay", "-c", cfg, "--all-groups", "--reason", "unknown", "--to", "nope", "--group", "legacy2")
	if res.code != exitFailure || !strings.Contains(res.stderr, "target topic nope does not exist: nothing was replayed") {
		t.Errorf("replay to a missing topic:\n%s", res)
	}
}
