//go:build integration

package main

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kretry/kretry/config"
	"github.com/kretry/kretry/internal/kafkatest"
)

// realMain creates a main topic with 3 partitions on the real broker and
// deletes it and its ladder's topics when the test ends.
func realMain(t *testing.T, seeds []string) string {
	t.Helper()
	main := kafkatest.Name(t, "orders")
	createTopic(t, []kgo.Opt{kgo.SeedBrokers(seeds...)}, main, 3, 0)
	t.Cleanup(func() {
		adm, err := kadm.NewOptClient(kgo.SeedBrokers(seeds...))
		if err != nil {
			return
		}
		defer adm.Close()
		_, _ = adm.DeleteTopics(t.Context(), append([]string{main}, ladderTopics(main)...)...)
	})
	return main
}

func TestIntegrationTopicsPlanApply(t *testing.T) {
	seeds := kafkatest.Brokers(t)
	opts := []kgo.Opt{kgo.SeedBrokers(seeds...)}
	main := realMain(t, seeds)
	cfg := writeConfig(t, seeds, main, "")
	mainRF := inspect(t, opts, main)[main].replicas

	r := kretry(t, "topics", "plan", "-c", cfg, "--brokers", strings.Join(seeds, ","))
	if r.code != 0 {
		t.Fatalf("plan: %v", r)
	}
	for _, topic := range ladderTopics(main) {
		re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(topic) + `\s+(tier|dlq)\s+\S+\s+- -> 3\s+- -> \S+\s+- -> \d+\s+create$`)
		if !re.MatchString(r.stdout) {
			t.Errorf("plan on the real broker does not list %s as missing:\n%s", topic, r.stdout)
		}
	}

	r = kretry(t, "topics", "apply", "-c", cfg, "--brokers", strings.Join(seeds, ","))
	if r.code != 0 || strings.Count(r.stdout, "created ") != 4 {
		t.Fatalf("apply: %v", r)
	}
	want := map[string]int64{
		main + ".retry-5s": day.Milliseconds(), main + ".retry-1m": day.Milliseconds(),
		main + ".retry-10m": day.Milliseconds(), main + ".dlq": (14 * day).Milliseconds(),
	}
	for name, s := range inspect(t, opts, ladderTopics(main)...) {
		if !s.exists || s.partitions != 3 || s.replicas != mainRF || s.retentionMs != want[name] {
			t.Errorf("%s on the real broker: %+v; want 3 partitions, %d replicas, retention.ms %d", name, s, mainRF, want[name])
		}
	}

	r = kretry(t, "topics", "apply", "-c", cfg, "--json", "--brokers", strings.Join(seeds, ","))
	if r.code != 0 {
		t.Fatalf("second apply: %v", r)
	}
	for line := range strings.SplitSeq(strings.TrimSpace(r.stdout), "\n") {
		var row planJSON
		if err := json.Unmarshal([]byte(line), &row); err != nil || len(row.Actions) != 0 || len(row.Applied) != 0 {
			t.Errorf("second apply --json row %q: want no actions (%v)", line, err)
		}
	}
	r = kretry(t, "topics", "apply", "-c", cfg)
	if r.code != 0 || r.stdout != "nothing to change: 4 topics up to date\n" {
		t.Errorf("third apply: %v", r)
	}
}

func TestIntegrationTopicsApplyRaisesRetention(t *testing.T) {
	seeds := kafkatest.Brokers(t)
	opts := []kgo.Opt{kgo.SeedBrokers(seeds...)}
	main := realMain(t, seeds)
	createTopic(t, opts, main+".retry-5s", 3, time.Hour.Milliseconds())
	createTopic(t, opts, main+".dlq", 1, (day).Milliseconds())
	cfg := writeConfig(t, seeds, main, "")

	r := kretry(t, "topics", "apply", "-c", cfg)
	if r.code != 0 {
		t.Fatalf("apply: %v", r)
	}
	for _, w := range []string{
		"raised    " + main + ".retry-5s: retention 1h -> 1d",
		"raised    " + main + ".dlq: retention 1d -> 14d",
		"added     " + main + ".dlq: partitions 1 -> 3",
	} {
		if !strings.Contains(r.stdout, w) {
			t.Errorf("apply output lacks %q:\n%s", w, r.stdout)
		}
	}
	ts := inspect(t, opts, main+".retry-5s", main+".dlq")
	if s := ts[main+".retry-5s"]; s.retentionMs != day.Milliseconds() {
		t.Errorf("retry-5s retention.ms %d, want %d", s.retentionMs, day.Milliseconds())
	}
	if s := ts[main+".dlq"]; s.retentionMs != (14*day).Milliseconds() || s.partitions != 3 {
		t.Errorf("dlq %+v, want 3 partitions and 14d", s)
	}
}

// topics plan --exit-code gates CI: 3 while apply has something to do (with
// the plan printed, and nothing on stderr), 0 once it has not; a failure
// stays 1 and bad usage 2.
func TestIntegrationTopicsPlanExitCode(t *testing.T) {
	seeds := kafkatest.Brokers(t)
	main := realMain(t, seeds)
	cfg := writeConfig(t, seeds, main, "")

	r := kretry(t, "topics", "plan", "-c", cfg, "--exit-code")
	if r.code != 3 || !strings.Contains(r.stdout, "4 topics to change (4 create)") || r.stderr != "" {
		t.Errorf("plan --exit-code with 4 topics missing: %v; want exit 3, the plan, no error", r)
	}
	if r := kretry(t, "topics", "plan", "-c", cfg, "--exit-code", "--json"); r.code != 3 || strings.Count(r.stdout, "\n") != 4 {
		t.Errorf("plan --exit-code --json with 4 topics missing: %v; want exit 3", r)
	}
	if r := kretry(t, "topics", "plan", "-c", cfg); r.code != 0 {
		t.Errorf("plan without --exit-code: %v; want exit 0", r)
	}

	if r := kretry(t, "topics", "apply", "-c", cfg); r.code != 0 {
		t.Fatalf("apply: %v", r)
	}
	r = kretry(t, "topics", "plan", "-c", cfg, "--exit-code")
	if r.code != 0 || !strings.Contains(r.stdout, "nothing to apply") {
		t.Errorf("plan --exit-code with nothing pending: %v; want exit 0", r)
	}
	if r := kretry(t, "topics", "plan", "-c", cfg, "--exit-code", "--json"); r.code != 0 || strings.Count(r.stdout, "\n") != 4 {
		t.Errorf("plan --exit-code --json with nothing pending: %v; want exit 0 and 4 rows", r)
	}

	missing := writeConfig(t, seeds, kafkatest.Name(t, "absent"), "")
	if r := kretry(t, "topics", "plan", "-c", missing, "--exit-code"); r.code != 1 {
		t.Errorf("plan --exit-code of a missing main topic: %v; want exit 1", r)
	}
	if r := kretry(t, "topics", "plan", "-c", cfg, "--exit-code=maybe"); r.code != 2 {
		t.Errorf("plan --exit-code=maybe: %v; want exit 2", r)
	}
}

func TestIntegrationBadConfigAndUsage(t *testing.T) {
	seeds := kafkatest.Brokers(t)
	main := realMain(t, seeds)
	cfg := writeConfig(t, seeds, main, "    max_age: -1h\n")
	r := kretry(t, "topics", "plan", "-c", cfg)
	if r.code != 1 || !regexp.MustCompile(`kretry: \S+kretry\.yaml:\d+: topics\[0\]\.max_age: `).MatchString(r.stderr) {
		t.Errorf("plan with a bad config: %v", r)
	}
	if r := kretry(t, "topics", "apply", "--no-such-flag"); r.code != 2 {
		t.Errorf("unknown flag: %v", r)
	}
}

func TestIntegrationRelay(t *testing.T) {
	seeds := kafkatest.Brokers(t)
	main := realMain(t, seeds)
	relayRoundTrip(t, seeds, main, false)
}

// TestIntegrationRelayExactlyOnce: kretry relay with exactly_once re-feeds
// in a transaction that a read_committed reader sees committed, with the
// tier offset committed in it.
func TestIntegrationRelayExactlyOnce(t *testing.T) {
	seeds := kafkatest.Brokers(t)
	main := realMain(t, seeds)
	relayRoundTripWith(t, seeds, main, false, "exactly_once: true\ninstance_id: it-0\n")
}

// TestIntegrationRelayGroupProtocolConsumer: kretry relay with
// group_protocol: consumer makes session_timeout its group's
// consumer.session.timeout.ms, as the consumer does for its in-process relay;
// the broker's default bounds (45s to 60s) refuse the default 10s, which the
// relay logs, naming its group, and runs on. Before, a standalone relay set
// nothing and kept the brokers' 45s without a word.
func TestIntegrationRelayGroupProtocolConsumer(t *testing.T) {
	seeds := kafkatest.Brokers(t)
	main := realMain(t, seeds)
	logs := relayRoundTripWith(t, seeds, main, false, "group_protocol: consumer\n")
	group := main + "-group-relay"
	if strings.Contains(logs, "session_timeout 10s could not be set as group "+group+"'s consumer.session.timeout.ms") {
		return
	}
	// A broker whose bounds take 10s: the relay's group has it.
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	req := kmsg.NewPtrDescribeConfigsRequest()
	res := kmsg.NewDescribeConfigsRequestResource()
	res.ResourceType, res.ResourceName = kmsg.ConfigResourceTypeGroupConfig, group
	req.Resources = append(req.Resources, res)
	resp, err := req.RequestWith(t.Context(), cl)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range resp.Resources {
		for _, c := range r.Configs {
			if c.Name == config.GroupConfigSessionTimeout && c.Value != nil && *c.Value == "10000" {
				return
			}
		}
	}
	t.Errorf("relay neither logged a refused session timeout for its group %s nor set it to 10s:\n%s", group, logs)
}

// TestIntegrationTopicsMainTopicAndConfigs: checkMainTopicAndConfigs on the
// real broker: a declared main topic created, --raise-partitions, an extra
// config drifting and set again.
func TestIntegrationTopicsMainTopicAndConfigs(t *testing.T) {
	checkMainTopicAndConfigs(t, kafkatest.Brokers(t))
}
