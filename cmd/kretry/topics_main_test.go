package main

import (
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/internal/kafkatest"
)

// topicConfig reads one config of a topic with a fresh kadm client.
func topicConfig(t *testing.T, opts []kgo.Opt, topic, key string) string {
	t.Helper()
	adm, err := kadm.NewOptClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	rcs, err := adm.DescribeTopicConfigs(t.Context(), topic)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := rcs.On(topic, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range rc.Configs {
		if c.Key == key {
			return c.MaybeValue()
		}
	}
	return ""
}

// checkMainTopicAndConfigs walks a main topic that the config declares, on
// the cluster of seeds: created by apply with its tier and DLQ topics and
// their extra configs; its partitions raised only with --raise-partitions
// (plan --exit-code 3 while held), never lowered (exit 1), its replication
// factor never changed (a warning); an extra config that drifts is set
// again by apply.
func checkMainTopicAndConfigs(t *testing.T, seeds []string) {
	opts := []kgo.Opt{kgo.SeedBrokers(seeds...)}
	main := kafkatest.Name(t, "fresh")
	t.Cleanup(func() {
		adm, err := kadm.NewOptClient(opts...)
		if err != nil {
			return
		}
		defer adm.Close()
		_, _ = adm.DeleteTopics(t.Context(), append([]string{main}, ladderTopics(main)...)...)
	})
	all := append([]string{main}, ladderTopics(main)...)
	config := func(partitions, rf int) string {
		rfLine := ""
		if rf > 0 {
			rfLine = fmt.Sprintf("    replication_factor: %d\n", rf)
		}
		return writeConfig(t, seeds, main, fmt.Sprintf("    partitions: %d\n%s    topic_configs: {compression.type: zstd}\n    dlq_configs: {compression.type: gzip}\n", partitions, rfLine))
	}
	cfg := config(2, 0)

	r := kretry(t, "topics", "plan", "-c", cfg, "--exit-code")
	mainRow := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(main) + `\s+main\s+\S+\s+- -> 2\s+-\s+-\s+-\s+create$`)
	if r.code != 3 || !mainRow.MatchString(r.stdout) || !strings.Contains(r.stdout, "5 topics to change (5 create)") {
		t.Fatalf("plan --exit-code of a declared main topic that is missing: %v; want exit 3 and the main topic to create", r)
	}
	r = kretry(t, "topics", "apply", "-c", cfg)
	if r.code != 0 || !strings.Contains(r.stdout, "created   "+main+": 2 partitions, replication factor the brokers' default\n") || strings.Count(r.stdout, "created ") != 5 {
		t.Fatalf("apply: %v; want the main topic and its 4 topics created", r)
	}
	for name, s := range inspect(t, opts, all...) {
		if !s.exists || s.partitions != 2 {
			t.Errorf("%s: %+v, want it with 2 partitions", name, s)
		}
	}
	for _, name := range ladderTopics(main) {
		want := "zstd"
		if strings.HasSuffix(name, ".dlq") {
			want = "gzip"
		}
		if got := topicConfig(t, opts, name, "compression.type"); got != want {
			t.Errorf("%s: compression.type %q, want %q", name, got, want)
		}
	}
	if r := kretry(t, "topics", "plan", "-c", cfg, "--exit-code"); r.code != 0 {
		t.Errorf("plan --exit-code after apply: %v; want exit 0", r)
	}

	cfg = config(4, 0)
	r = kretry(t, "topics", "plan", "-c", cfg, "--exit-code")
	if r.code != 3 || !strings.Contains(r.stdout, "held: --raise-partitions") || !strings.Contains(r.stdout, "2 partitions, the config wants 4: raised only with --raise-partitions") {
		t.Errorf("plan --exit-code with 4 partitions declared and 2 there: %v; want exit 3 and the raise held", r)
	}
	if r := kretry(t, "topics", "apply", "-c", cfg); r.code != 0 || inspect(t, opts, main)[main].partitions != 2 {
		t.Errorf("apply without --raise-partitions: %v; want the main topic left at 2 partitions", r)
	}
	r = kretry(t, "topics", "apply", "-c", cfg, "--raise-partitions")
	if r.code != 0 || !strings.Contains(r.stdout, "added     "+main+": partitions 2 -> 4") {
		t.Errorf("apply --raise-partitions: %v", r)
	}
	for name, s := range inspect(t, opts, all...) {
		if s.partitions != 4 {
			t.Errorf("%s has %d partitions after apply --raise-partitions, want 4", name, s.partitions)
		}
	}
	if r := kretry(t, "topics", "plan", "-c", cfg, "--exit-code"); r.code != 0 {
		t.Errorf("plan --exit-code after the raise: %v; want exit 0", r)
	}
	r = kretry(t, "topics", "plan", "-c", config(3, 0), "--raise-partitions")
	if r.code != 1 || !strings.Contains(r.stderr, "main topic "+main+" has 4 partitions and 3 are wanted: Kafka cannot remove partitions") {
		t.Errorf("plan with fewer partitions declared: %v; want exit 1 naming the lowering", r)
	}
	rf := inspect(t, opts, main)[main].replicas
	r = kretry(t, "topics", "plan", "-c", config(4, rf+1), "--exit-code")
	if want := fmt.Sprintf("warning: main %s: replication factor %d, the config wants %d: kretry never changes a replication factor", main, rf, rf+1); r.code != 0 || !strings.Contains(r.stdout, want) {
		t.Errorf("plan with another replication factor: %v; want exit 0 and %q", r, want)
	}

	// An extra config drifts: apply sets it again.
	tier := main + ".retry-1m"
	adm, err := kadm.NewOptClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	rs, err := adm.AlterTopicConfigs(t.Context(), []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "compression.type", Value: kadm.StringPtr("lz4")}}, tier)
	if err == nil {
		_, err = rs.On(tier, func(r *kadm.AlterConfigsResponse) error { return r.Err })
	}
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; topicConfig(t, opts, tier, "compression.type") != "lz4"; i++ {
		if i > 100 {
			t.Fatal("compression.type lz4 never showed")
		}
	}
	r = kretry(t, "topics", "plan", "-c", cfg, "--exit-code")
	drift := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(tier) + `\s+tier\s+.*compression\.type lz4 -> zstd\s+set-configs$`)
	if r.code != 3 || !drift.MatchString(r.stdout) {
		t.Errorf("plan --exit-code with a drifted config: %v; want exit 3 and set-configs", r)
	}
	r = kretry(t, "topics", "apply", "-c", cfg)
	if r.code != 0 || !strings.Contains(r.stdout, "set       "+tier+": compression.type lz4 -> zstd") {
		t.Errorf("apply of the drift: %v", r)
	}
	if got := topicConfig(t, opts, tier, "compression.type"); got != "zstd" {
		t.Errorf("%s: compression.type %q after apply, want zstd", tier, got)
	}
	if r := kretry(t, "topics", "plan", "-c", cfg, "--exit-code"); r.code != 0 {
		t.Errorf("plan --exit-code after fixing the drift: %v; want exit 0", r)
	}
}

func TestTopicsMainTopicAndConfigs(t *testing.T) {
	noEnvOverrides(t)
	_, seeds := kafkatest.Fake(t)
	checkMainTopicAndConfigs(t, seeds)
}
