package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/goleak"

	"github.com/kretry/kretry/internal/kafkatest"
)

const day = 24 * time.Hour

// TestMain lets a test run this test binary as the kretry command: with
// KRETRY_TEST_AS_MAIN=1 it is main, for tests of the real process (signals,
// exit status). Otherwise it runs the tests and fails on any goroutine that a
// command left running.
func TestMain(m *testing.M) {
	if os.Getenv("KRETRY_TEST_AS_MAIN") == "1" {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	goleak.VerifyTestMain(m)
}

// result is what one in-process run of the CLI did.
type result struct {
	code           int
	stdout, stderr string
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

// kretry runs the command tree in process, as main does.
func kretry(t *testing.T, args ...string) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := runContext(t.Context(), args, &stdout, &stderr)
	return result{code, stdout.String(), stderr.String()}
}

// noEnvOverrides clears the variables that replace the config's brokers and
// group, which an integration run may have set for the whole process.
func noEnvOverrides(t *testing.T) {
	t.Setenv("KRETRY_BROKERS", "")
	t.Setenv("KRETRY_GROUP", "")
	t.Setenv("KRETRY_INSTANCE_ID", "")
}

// ladderYAML is a config of one main topic with tiers 5s, 1m, 10m×2 and the
// default DLQ; extra is appended at the top level.
func writeConfig(t *testing.T, brokers []string, main, extra string) string {
	t.Helper()
	var quoted []string
	for _, b := range brokers {
		quoted = append(quoted, strconv.Quote(b))
	}
	yaml := fmt.Sprintf(`brokers: [%s]
group: %s
topics:
  - name: %s
    tiers:
      - delay: 5s
      - delay: 1m
      - delay: 10m
        attempts: 2
%s`, strings.Join(quoted, ", "), main+"-group", main, extra)
	path := filepath.Join(t.TempDir(), "kretry.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func ladderTopics(main string) []string {
	return []string{main + ".retry-5s", main + ".retry-1m", main + ".retry-10m", main + ".dlq"}
}

// topicState is a topic as kadm sees it, read independently of kretry's code.
type topicState struct {
	exists      bool
	partitions  int
	replicas    int
	retentionMs int64
}

// inspect reads topics with a fresh kadm client (so nothing is cached).
func inspect(t *testing.T, opts []kgo.Opt, topics ...string) map[string]topicState {
	t.Helper()
	adm, err := kadm.NewOptClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	td, err := adm.ListTopics(t.Context(), topics...)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]topicState{}
	var existing []string
	for _, name := range topics {
		d, ok := td[name]
		if !ok || d.Err != nil {
			out[name] = topicState{}
			continue
		}
		out[name] = topicState{exists: true, partitions: len(d.Partitions), replicas: d.Partitions.NumReplicas()}
		existing = append(existing, name)
	}
	if len(existing) == 0 {
		return out
	}
	rcs, err := adm.DescribeTopicConfigs(t.Context(), existing...)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range existing {
		rc, err := rcs.On(name, nil)
		if err != nil {
			t.Fatal(err)
		}
		s := out[name]
		for _, c := range rc.Configs {
			if c.Key == "retention.ms" {
				if s.retentionMs, err = strconv.ParseInt(c.MaybeValue(), 10, 64); err != nil {
					t.Fatal(err)
				}
			}
		}
		out[name] = s
	}
	return out
}

func createTopic(t *testing.T, opts []kgo.Opt, name string, partitions int32, retentionMs int64) {
	t.Helper()
	adm, err := kadm.NewOptClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	cfgs := map[string]*string{}
	if retentionMs != 0 {
		cfgs["retention.ms"] = kadm.StringPtr(strconv.FormatInt(retentionMs, 10))
	}
	if _, err := adm.CreateTopic(t.Context(), partitions, -1, cfgs, name); err != nil {
		t.Fatalf("create topic %s: %v", name, err)
	}
	// A real broker shows a new topic in its metadata a little later.
	for wait := 10 * time.Millisecond; ; wait *= 2 {
		if inspect(t, opts, name)[name].exists {
			return
		}
		if wait > 10*time.Second {
			t.Fatalf("topic %s created but not in the metadata", name)
		}
		time.Sleep(wait)
	}
}

// fakeWithMain starts kfake with main (3 partitions) and returns its seeds.
func fakeWithMain(t *testing.T, main string, opts ...kfake.Opt) []string {
	t.Helper()
	_, seeds := kafkatest.Fake(t, append([]kfake.Opt{kfake.SeedTopics(3, main)}, opts...)...)
	return seeds
}

// closedAddr returns an address on which nothing listens.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestTopicsPlanEmptyClusterListsEveryTopicMissing(t *testing.T) {
	noEnvOverrides(t)
	main := kafkatest.Name(t, "orders")
	seeds := fakeWithMain(t, main)
	cfg := writeConfig(t, seeds, main, "")

	r := kretry(t, "topics", "plan", "-c", cfg)
	if r.code != 0 {
		t.Fatalf("plan: %v", r)
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if !strings.HasPrefix(lines[0], "TOPIC") {
		t.Errorf("first line %q, want the table header", lines[0])
	}
	for _, topic := range ladderTopics(main) {
		re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(topic) + `\s+(tier|dlq)\s+` + regexp.QuoteMeta(main) + `\s+- -> 3\s+- -> \S+\s+- -> \d+\s+create$`)
		if !re.MatchString(r.stdout) {
			t.Errorf("plan does not list %s as missing with 3 partitions:\n%s", topic, r.stdout)
		}
	}
	if want := `4 topics to change (4 create): run "kretry topics apply -c ` + cfg + `"`; !strings.Contains(r.stdout, want) {
		t.Errorf("plan output lacks %q:\n%s", want, r.stdout)
	}
	if ts := inspect(t, []kgo.Opt{kgo.SeedBrokers(seeds...)}, ladderTopics(main)...); slices.ContainsFunc(ladderTopics(main), func(n string) bool { return ts[n].exists }) {
		t.Errorf("plan created topics: %+v", ts)
	}

	r = kretry(t, "topics", "plan", "-c", cfg, "--json")
	if r.code != 0 {
		t.Fatalf("plan --json: %v", r)
	}
	wantRet := map[string]int64{
		main + ".retry-5s": day.Milliseconds(), main + ".retry-1m": day.Milliseconds(),
		main + ".retry-10m": day.Milliseconds(), main + ".dlq": (14 * day).Milliseconds(),
	}
	var got []string
	for line := range strings.SplitSeq(strings.TrimSpace(r.stdout), "\n") {
		var row planJSON
		if err := json.Unmarshal([]byte(line), &row); err != nil {
			t.Fatalf("line %q is not a JSON object: %v", line, err)
		}
		got = append(got, row.Topic)
		if row.Exists || row.RetentionMs != nil || !slices.Equal(row.Actions, []string{"create"}) ||
			row.WantPartitions != 3 || row.WantRetentionMs != wantRet[row.Topic] {
			t.Errorf("json row %s", line)
		}
	}
	if !slices.Equal(got, ladderTopics(main)) {
		t.Errorf("json rows for %v, want %v", got, ladderTopics(main))
	}
}

func TestTopicsApplyCreatesThenIsANoOp(t *testing.T) {
	noEnvOverrides(t)
	main := kafkatest.Name(t, "orders")
	seeds := fakeWithMain(t, main)
	opts := []kgo.Opt{kgo.SeedBrokers(seeds...)}
	cfg := writeConfig(t, seeds, main, `    retention:
      dlq: 720h
`)
	mainRF := inspect(t, opts, main)[main].replicas

	r := kretry(t, "topics", "apply", "-c", cfg)
	if r.code != 0 {
		t.Fatalf("apply: %v", r)
	}
	if n := strings.Count(r.stdout, "created "); n != 4 {
		t.Errorf("apply printed %d creations, want 4:\n%s", n, r.stdout)
	}
	want := map[string]int64{
		main + ".retry-5s": day.Milliseconds(), main + ".retry-1m": day.Milliseconds(),
		main + ".retry-10m": day.Milliseconds(), main + ".dlq": (30 * day).Milliseconds(),
	}
	for name, s := range inspect(t, opts, ladderTopics(main)...) {
		if !s.exists || s.partitions != 3 || s.replicas != mainRF || s.retentionMs != want[name] {
			t.Errorf("%s: %+v; want 3 partitions, %d replicas, retention.ms %d", name, s, mainRF, want[name])
		}
	}

	r = kretry(t, "topics", "apply", "-c", cfg)
	if r.code != 0 || r.stdout != "nothing to change: 4 topics up to date\n" {
		t.Errorf("second apply: %v", r)
	}
	r = kretry(t, "topics", "plan", "-c", cfg)
	if r.code != 0 || !strings.Contains(r.stdout, "4 topics up to date: nothing to apply") || strings.Contains(r.stdout, "create") {
		t.Errorf("plan after apply: %v", r)
	}
}

func TestTopicsApplyRaisesShortRetentionAndAddsPartitions(t *testing.T) {
	noEnvOverrides(t)
	main := kafkatest.Name(t, "orders")
	seeds := fakeWithMain(t, main)
	opts := []kgo.Opt{kgo.SeedBrokers(seeds...)}
	createTopic(t, opts, main+".retry-5s", 3, time.Hour.Milliseconds())
	createTopic(t, opts, main+".retry-1m", 1, (2 * day).Milliseconds())
	createTopic(t, opts, main+".dlq", 6, -1)
	cfg := writeConfig(t, seeds, main, "")

	r := kretry(t, "topics", "plan", "-c", cfg)
	for _, re := range []string{
		`(?m)^` + regexp.QuoteMeta(main+".retry-5s") + `\s+tier\s+\S+\s+3\s+1h -> 1d\s+1048588 -> \d+\s+raise-retention,raise-max-message-bytes$`,
		`(?m)^` + regexp.QuoteMeta(main+".retry-1m") + `\s+tier\s+\S+\s+1 -> 3\s+2d\s+1048588 -> \d+\s+raise-max-message-bytes,add-partitions$`,
		`(?m)^` + regexp.QuoteMeta(main+".dlq") + `\s+dlq\s+\S+\s+6\s+unlimited\s+1048588 -> \d+\s+raise-max-message-bytes$`,
		`(?m)^` + regexp.QuoteMeta(main+".retry-10m") + `\s+tier\s+\S+\s+- -> 3\s+- -> 1d\s+- -> \d+\s+create$`,
	} {
		if !regexp.MustCompile(re).MatchString(r.stdout) {
			t.Errorf("plan does not match %s:\n%v", re, r)
		}
	}

	r = kretry(t, "topics", "apply", "-c", cfg)
	if r.code != 0 {
		t.Fatalf("apply: %v", r)
	}
	for _, want := range []string{
		"raised    " + main + ".retry-5s: retention 1h -> 1d",
		"added     " + main + ".retry-1m: partitions 1 -> 3",
		"created   " + main + ".retry-10m: 3 partitions",
		"raised    " + main + ".dlq: max.message.bytes 1048588 -> ",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("apply output lacks %q:\n%s", want, r.stdout)
		}
	}
	ts := inspect(t, opts, ladderTopics(main)...)
	for name, want := range map[string]topicState{
		main + ".retry-5s":  {true, 3, 0, day.Milliseconds()},
		main + ".retry-1m":  {true, 3, 0, (2 * day).Milliseconds()}, // longer than wanted: kept
		main + ".retry-10m": {true, 3, 0, day.Milliseconds()},
		main + ".dlq":       {true, 6, 0, -1}, // more partitions and unlimited: never shrunk
	} {
		got := ts[name]
		got.replicas = 0
		if got != want {
			t.Errorf("%s: %+v, want %+v", name, got, want)
		}
	}
}

func TestTopicsPlanMainTopicMissing(t *testing.T) {
	noEnvOverrides(t)
	_, seeds := kafkatest.Fake(t)
	main := kafkatest.Name(t, "orders")
	cfg := writeConfig(t, seeds, main, "")
	r := kretry(t, "topics", "apply", "-c", cfg)
	if r.code != 1 || !strings.Contains(r.stderr, "kretry: main topic "+main+" does not exist: create it first") {
		t.Errorf("apply without the main topic: %v", r)
	}
}

func TestBrokersFlagOverridesConfig(t *testing.T) {
	noEnvOverrides(t)
	main := kafkatest.Name(t, "orders")
	seeds := fakeWithMain(t, main)
	dead := closedAddr(t)
	cfg := writeConfig(t, []string{dead}, main, "")

	r := kretry(t, "topics", "plan", "-c", cfg)
	if r.code != 1 || !strings.HasPrefix(r.stderr, "kretry: cannot reach Kafka at "+dead) || strings.Count(r.stderr, "\n") != 1 {
		t.Errorf("plan against a dead broker: %v", r)
	}
	r = kretry(t, "topics", "plan", "-c", cfg, "--brokers", strings.Join(seeds, ","))
	if r.code != 0 || !strings.Contains(r.stdout, main+".dlq") {
		t.Errorf("plan with --brokers: %v", r)
	}
	// A file without brokers works with --brokers.
	noBrokers := filepath.Join(t.TempDir(), "kretry.yaml")
	os.WriteFile(noBrokers, []byte("group: g\ntopics:\n  - name: "+main+"\n    tiers: [{delay: 1s}]\n"), 0o600)
	r = kretry(t, "topics", "plan", "-c", noBrokers, "--brokers", strings.Join(seeds, ","))
	if r.code != 0 || !strings.Contains(r.stdout, main+".retry-1s") {
		t.Errorf("plan of a file without brokers, with --brokers: %v", r)
	}
	// --brokers also wins over KRETRY_BROKERS.
	t.Setenv("KRETRY_BROKERS", dead)
	r = kretry(t, "topics", "apply", "--brokers", strings.Join(seeds, ","), "-c", cfg)
	if r.code != 0 {
		t.Errorf("apply with --brokers over KRETRY_BROKERS: %v", r)
	}
	if ts := inspect(t, []kgo.Opt{kgo.SeedBrokers(seeds...)}, main+".dlq"); !ts[main+".dlq"].exists {
		t.Errorf("apply with --brokers did not create %s.dlq", main)
	}
}

func TestConfigCheck(t *testing.T) {
	noEnvOverrides(t)
	good := writeConfig(t, []string{"127.0.0.1:9092"}, "orders", "")
	r := kretry(t, "config", "check", "-c", good)
	if r.code != 0 || !strings.HasPrefix(r.stdout, good+": ok: 1 topic, 3 tiers, dlq orders.dlq\n") ||
		!strings.Contains(r.stdout, "orders: orders.retry-5s -> orders.retry-1m -> orders.retry-10m ×2 -> orders.dlq (4 retries)") {
		t.Errorf("config check of a good file: %v", r)
	}
	if !strings.Contains(r.stdout, "\n  relay    hold_bytes 64 MiB\n") {
		t.Errorf("config check does not show the default relay.hold_bytes: %v", r)
	}
	if !strings.Contains(r.stdout, "\n  mode     at least once, commit_interval 1s, delivery_timeout 30s\n"+
		"  members  group_protocol classic, session_timeout 10s (heartbeat 1s), dynamic member\n") {
		t.Errorf("config check does not show the defaults of the group members: %v", r)
	}
	members := writeConfig(t, []string{"127.0.0.1:9092"}, "orders", "exactly_once: true\ncommit_interval: 200ms\ngroup_protocol: consumer\ninstance_id: from-file\n")
	t.Setenv("KRETRY_INSTANCE_ID", "pod-3")
	if r := kretry(t, "config", "check", "-c", members); r.code != 0 || !strings.Contains(r.stdout, "\n  mode     exactly once (transactions), commit_interval 200ms, delivery_timeout 30s\n"+
		"  members  group_protocol consumer, session timeout set by the broker (group config consumer.session.timeout.ms), static member pod-3\n") {
		t.Errorf("config check of the group member keys: %v", r)
	}
	t.Setenv("KRETRY_INSTANCE_ID", "")
	none := writeConfig(t, []string{"127.0.0.1:9092"}, "orders", "relay:\n  hold_bytes: 0\n")
	if r := kretry(t, "config", "check", "-c", none); r.code != 0 || !strings.Contains(r.stdout, "\n  relay    hold_bytes 0 (holds nothing)\n") {
		t.Errorf("config check of hold_bytes: 0: %v", r)
	}

	r = kretry(t, "config", "check", "-c", good, "--json")
	var got configJSON
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || r.code != 0 {
		t.Fatalf("config check --json: %v (%v)", r, err)
	}
	if !got.OK || len(got.Topics) != 1 || len(got.Topics[0].Tiers) != 3 || got.Topics[0].Tiers[2].Attempts != 2 || got.Topics[0].DLQ != "orders.dlq" ||
		got.HoldBytes != 64<<20 {
		t.Errorf("config check --json: %+v", got)
	}

	bad := filepath.Join(t.TempDir(), "kretry.yaml")
	os.WriteFile(bad, []byte("brokers: [\"127.0.0.1:9092\"]\ngroup: g\ntopics:\n  - name: orders\n    tiers:\n      - delay: 5s\n      - delay: -1m\n    bogus: 1\n"), 0o600)
	r = kretry(t, "config", "check", "-c", bad)
	if r.code != 1 || r.stdout != "" ||
		!strings.Contains(r.stderr, "kretry: "+bad+":7: topics[0].tiers[1].delay: must be > 0, got -1m\n") ||
		!strings.Contains(r.stderr, "kretry: "+bad+":8: topics[0].bogus:") {
		t.Errorf("config check of a bad file: %v", r)
	}
	// A bad config fails every command that loads it with 1, not only check.
	r = kretry(t, "topics", "plan", "-c", bad)
	if r.code != 1 || !strings.Contains(r.stderr, bad+":7: topics[0].tiers[1].delay") {
		t.Errorf("topics plan with a bad file: %v", r)
	}

	missing := filepath.Join(t.TempDir(), "nope.yaml")
	r = kretry(t, "config", "check", "-c", missing)
	if r.code != 1 || r.stderr != "kretry: config file "+missing+" does not exist: pass -c FILE (the format is in the README)\n" {
		t.Errorf("config check of a missing file: %v", r)
	}
}

func TestUsageErrorsExit2(t *testing.T) {
	noEnvOverrides(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"topics", "plan", "--bogus"}, `kretry: unknown flag: --bogus: see "kretry topics plan --help"`},
		{[]string{"--bogus"}, `kretry: unknown flag: --bogus: see "kretry --help"`},
		{[]string{"bogus"}, `kretry: unknown command "bogus" for "kretry": the commands are `},
		{[]string{"topcis", "plan"}, `kretry: unknown command "topcis" for "kretry": did you mean "topics"?`},
		{[]string{"topics", "plna"}, `kretry: unknown command "plna" for "kretry topics": did you mean "plan"?`},
		{[]string{"topics"}, `kretry: kretry topics needs a command: one of apply, plan`},
		{[]string{"config", "check", "extra"}, `kretry: kretry config check takes no arguments, got "extra"`},
		{[]string{"broker", "--port", "x"}, `kretry: invalid argument "x" for "--port" flag`},
		{[]string{"broker", "--port", "70000"}, `kretry: --port 70000: use a port from 1 to 65535, or 0 for a free one`},
		{[]string{"broker", "--topic", "orders:0"}, `kretry: --topic "orders:0": partitions must be a number ≥ 1`},
		{[]string{"relay", "--log-level", "loud"}, `kretry: --log-level "loud": use debug, info, warn or error`},
		{[]string{"completion", "tcsh"}, `kretry: unknown command "tcsh" for "kretry completion"`},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			r := kretry(t, tc.args...)
			if r.code != 2 || !strings.HasPrefix(r.stderr, tc.want) || r.stdout != "" {
				t.Errorf("want exit 2 and stderr starting %q; got %v", tc.want, r)
			}
		})
	}
}

func TestHelpExits0(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"topics", "--help"}, {"help", "topics", "apply"}} {
		r := kretry(t, args...)
		if r.code != 0 || !strings.Contains(r.stdout, "Usage:") {
			t.Errorf("%v: %v", args, r)
		}
	}
}

func TestVersion(t *testing.T) {
	r := kretry(t, "version")
	if r.code != 0 || !regexp.MustCompile(`^kretry \S+( rev [0-9a-f]+(\+dirty)?)? \(franz-go v\d+\.\d+\.\d+\S*, go\d\S*, \w+/\w+\)\n$`).MatchString(r.stdout) {
		t.Errorf("version: %v", r)
	}
	r = kretry(t, "version", "--json")
	var v versions
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil || !strings.HasPrefix(v.FranzGo, "v1.") {
		t.Errorf("version --json: %v (%v)", r, err)
	}
}

func TestCompletion(t *testing.T) {
	for _, shell := range []string{"bash", "zsh", "fish", "powershell"} {
		r := kretry(t, "completion", shell)
		if r.code != 0 || !strings.Contains(r.stdout, "kretry") {
			t.Errorf("completion %s: exit %d, %d bytes", shell, r.code, len(r.stdout))
		}
	}
}

// startBroker runs "kretry broker" in process until the returned stop is
// called, and returns its address from the KRETRY_BROKERS line it prints.
func startBroker(t *testing.T, args ...string) (addr string, stop func() result) {
	t.Helper()
	line, stop := startBrokerLine(t, args...)
	addr, ok := strings.CutPrefix(line, "KRETRY_BROKERS=")
	if !ok {
		t.Fatalf("broker printed %q, want KRETRY_BROKERS=HOST:PORT", line)
	}
	return addr, stop
}

// startBrokerLine runs "kretry broker" in process until the returned stop is
// called, and returns the first line it printed.
func startBrokerLine(t *testing.T, args ...string) (line string, stop func() result) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	pr, pw := io.Pipe()
	var stderr bytes.Buffer
	done := make(chan int, 1)
	go func() {
		code := runContext(ctx, append([]string{"broker"}, args...), pw, &stderr)
		pw.Close()
		done <- code
	}()
	sc := bufio.NewScanner(pr)
	if !sc.Scan() {
		cancel()
		t.Fatalf("broker printed nothing; exit %d: %s", <-done, stderr.String())
	}
	line = sc.Text()
	rest := make(chan string, 1)
	go func() { b, _ := io.ReadAll(pr); rest <- string(b) }()
	stopped := false
	stop = func() result {
		cancel()
		code := <-done
		stopped = true
		return result{code, line + "\n" + <-rest, stderr.String()}
	}
	t.Cleanup(func() {
		if !stopped {
			stop()
		}
	})
	return line, stop
}

func TestBrokerJSON(t *testing.T) {
	line, stop := startBrokerLine(t, "--port", "0", "--json", "--topic", "orders:2")
	var got struct{ Brokers, Data string }
	if err := json.Unmarshal([]byte(line), &got); err != nil {
		t.Fatalf("broker --json printed %q: %v", line, err)
	}
	if s := inspect(t, []kgo.Opt{kgo.SeedBrokers(got.Brokers)}, "orders")["orders"]; !s.exists || s.partitions != 2 {
		t.Errorf("broker at %q from --json: topic orders %+v", got.Brokers, s)
	}
	if r := stop(); r.code != 0 {
		t.Errorf("broker --json: %v", r)
	}
}

func TestBrokerCommandKeepsTopicsWithData(t *testing.T) {
	noEnvOverrides(t)
	data := t.TempDir()
	addr, stop := startBroker(t, "--port", "0", "--data", data, "--topic", "orders:2")
	if host, _, err := net.SplitHostPort(addr); err != nil || host != "127.0.0.1" {
		t.Fatalf("broker address %q, want 127.0.0.1:PORT", addr)
	}
	opts := []kgo.Opt{kgo.SeedBrokers(addr)}
	createTopic(t, opts, "kept", 4, 0)
	cfg := writeConfig(t, []string{addr}, "orders", "")
	if r := kretry(t, "topics", "apply", "-c", cfg); r.code != 0 {
		t.Fatalf("apply on kretry broker: %v", r)
	}
	r := stop()
	if r.code != 0 || !strings.Contains(r.stderr, "listening on "+addr+", state in "+data) {
		t.Fatalf("broker: %v", r)
	}

	addr2, stop2 := startBroker(t, "--port", "0", "--data", data)
	ts := inspect(t, []kgo.Opt{kgo.SeedBrokers(addr2)}, append([]string{"kept", "orders"}, ladderTopics("orders")...)...)
	if s := ts["kept"]; !s.exists || s.partitions != 4 {
		t.Errorf("after restart, topic kept: %+v, want 4 partitions", s)
	}
	if s := ts["orders"]; !s.exists || s.partitions != 2 {
		t.Errorf("after restart, topic orders: %+v, want 2 partitions", s)
	}
	if s := ts["orders.dlq"]; !s.exists || s.retentionMs != (14*day).Milliseconds() {
		t.Errorf("after restart, orders.dlq: %+v, want 14d retention", s)
	}
	stop2()

	// Without --data nothing survives.
	addr3, _ := startBroker(t, "--port", "0")
	if s := inspect(t, []kgo.Opt{kgo.SeedBrokers(addr3)}, "kept")["kept"]; s.exists {
		t.Errorf("a broker without --data has topic kept")
	}
}

func TestBrokerPortInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	r := kretry(t, "broker", "--port", port)
	if r.code != 1 || r.stderr != "kretry: port "+port+" on 127.0.0.1 is in use: pass --port N, or --port 0 for a free one\n" {
		t.Errorf("broker on a used port: %v", r)
	}
}

func TestSASLScram(t *testing.T) {
	noEnvOverrides(t)
	const password = "correct-horse-battery"
	main := kafkatest.Name(t, "orders")
	seeds := fakeWithMain(t, main, kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-256", "svc", password))
	cfg := writeConfig(t, seeds, main, `sasl:
  mechanism: SCRAM-SHA-256
  username: svc
  password_env: KRETRY_TEST_SASL_PASSWORD
`)

	t.Setenv("KRETRY_TEST_SASL_PASSWORD", password)
	if r := kretry(t, "topics", "plan", "-c", cfg); r.code != 0 || !strings.Contains(r.stdout, main+".dlq") {
		t.Errorf("plan with the right password: %v", r)
	}

	const wrong = "wrong-password-xyzzy"
	t.Setenv("KRETRY_TEST_SASL_PASSWORD", wrong)
	r := kretry(t, "topics", "plan", "-c", cfg)
	if r.code != 1 || !strings.Contains(r.stderr, `login of user "svc"`) ||
		!strings.Contains(r.stderr, "check the username and the password in $KRETRY_TEST_SASL_PASSWORD") ||
		strings.Count(r.stderr, "\n") != 1 {
		t.Errorf("plan with a wrong password: %v", r)
	}
	if strings.Contains(r.stderr+r.stdout, wrong) || strings.Contains(r.stderr+r.stdout, password) {
		t.Errorf("output shows a password: %v", r)
	}

	t.Setenv("KRETRY_TEST_SASL_PASSWORD", "")
	r = kretry(t, "topics", "plan", "-c", cfg)
	if r.code != 1 || !strings.Contains(r.stderr, "KRETRY_TEST_SASL_PASSWORD is not set") {
		t.Errorf("plan without the password variable: %v", r)
	}

	// The same broker without SASL in the config.
	plain := writeConfig(t, seeds, main, "")
	r = kretry(t, "topics", "plan", "-c", plain)
	if r.code != 1 || !strings.Contains(r.stderr, "closed the connection after its first answer, as brokers do that want SASL: add a sasl section") ||
		!strings.HasSuffix(r.stderr, "; edit sasl in "+plain+"\n") {
		t.Errorf("plan without sasl against a SASL broker: %v", r)
	}
}

func TestBrokerProcessStopsOnSIGTERM(t *testing.T) {
	cmd := exec.CommandContext(t.Context(), os.Args[0], "broker", "--port", "0", "--topic", "orders")
	cmd.Env = append(os.Environ(), "KRETRY_TEST_AS_MAIN=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	if !sc.Scan() {
		t.Fatalf("kretry broker printed nothing: %v", cmd.Wait())
	}
	addr, ok := strings.CutPrefix(sc.Text(), "KRETRY_BROKERS=")
	if !ok {
		t.Fatalf("kretry broker printed %q", sc.Text())
	}
	if s := inspect(t, []kgo.Opt{kgo.SeedBrokers(addr)}, "orders")["orders"]; !s.exists || s.partitions != 3 {
		t.Errorf("topic orders on the broker process: %+v, want 3 partitions", s)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("kretry broker after SIGTERM: %v\n%s", err, stderr.String())
	}
	if !strings.HasSuffix(stderr.String(), "kretry broker: stopped\n") {
		t.Errorf("stderr %q, want the stop line last", stderr.String())
	}
}

func TestProcessExitStatus(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want int
	}{
		{[]string{"version"}, 0},
		{[]string{"config", "check", "-c", filepath.Join(t.TempDir(), "missing.yaml")}, 1},
		{[]string{"--bogus"}, 2},
	} {
		cmd := exec.CommandContext(t.Context(), os.Args[0], tc.args...)
		cmd.Env = append(os.Environ(), "KRETRY_TEST_AS_MAIN=1")
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if code != tc.want {
			t.Errorf("kretry %v: exit %d, want %d", tc.args, code, tc.want)
		}
	}
}

// config check prints the ladder a backoff generates, and the backoff.
func TestConfigCheckBackoff(t *testing.T) {
	noEnvOverrides(t)
	path := filepath.Join("..", "..", "testdata", "config", "good", "backoff.yaml")
	r := kretry(t, "config", "check", "-c", path)
	if r.code != 0 || !strings.HasPrefix(r.stdout, path+": ok: 1 topic, 7 tiers, dlq orders.dlq\n") ||
		!strings.Contains(r.stdout, "  orders: orders.retry-1s -> orders.retry-2s -> orders.retry-4s -> orders.retry-8s -> orders.retry-16s -> orders.retry-32s -> orders.retry-1m ×2 -> orders.dlq (8 retries)\n"+
			"    generated by backoff: initial 1s, multiplier 2, max 1m, 8 attempts, jitter 0.2 (due after 80% to 100% of each delay)\n") {
		t.Errorf("config check of a backoff: %v", r)
	}
	r = kretry(t, "config", "check", "--json", "-c", path)
	if r.code != 0 || !strings.Contains(r.stdout, `"backoff":{"initial":"1s","multiplier":2,"max":"1m","attempts":8,"jitter":0.2}`) {
		t.Errorf("config check --json of a backoff: %v", r)
	}
}

// config check prints a topic's retry_in_place and the worst case of its waits.
func TestConfigCheckRetryInPlace(t *testing.T) {
	noEnvOverrides(t)
	path := filepath.Join("..", "..", "testdata", "config", "good", "retry-in-place.yaml")
	r := kretry(t, "config", "check", "-c", path)
	if r.code != 0 || !strings.Contains(r.stdout, "  orders: orders.retry-5s -> orders.retry-1m -> orders.dlq (2 retries)\n"+
		"    retry_in_place first: 3 attempts, 100ms doubling to 1s, at most 700ms of waits in all (bound 30s)\n") ||
		!strings.Contains(r.stdout, "    retry_in_place first: 2 attempts, 100ms doubling to 1s, at most 300ms of waits in all (bound 30s)\n") {
		t.Errorf("config check of retry_in_place: %v", r)
	}
	bad := filepath.Join("..", "..", "testdata", "config", "bad", "retry-in-place.yaml")
	if r := kretry(t, "config", "check", "-c", bad); r.code != 1 || !strings.Contains(r.stderr, bad+":6: topics[0].retry_in_place: its waits take up to 1m15s together") {
		t.Errorf("config check of a retry_in_place too long: %v", r)
	}
}

// config check prints a topic's circuit breaker with its half_open_records
// (5 when omitted), in text and JSON.
func TestConfigCheckCircuitBreaker(t *testing.T) {
	noEnvOverrides(t)
	path := filepath.Join("..", "..", "testdata", "config", "good", "circuit-breaker.yaml")
	r := kretry(t, "config", "check", "-c", path)
	if r.code != 0 || !strings.Contains(r.stdout, "  orders: orders.retry-5s -> orders.retry-1m -> orders.dlq (2 retries)\n"+
		"    circuit breaker: opens when ≥ 0.5 of ≥ 100 records in 30s fail; not fetched for 1m, then half-open: 3 probe records (half_open_records) must succeed to close it\n") ||
		!strings.Contains(r.stdout, "    circuit breaker: opens when ≥ 0.25 of ≥ 20 records in 10s fail; not fetched for 30s, then half-open: 5 probe records (half_open_records) must succeed to close it\n") {
		t.Errorf("config check of circuit breakers: %v", r)
	}
	r = kretry(t, "config", "check", "--json", "-c", path)
	if r.code != 0 || !strings.Contains(r.stdout, `"circuit_breaker":{"failure_ratio":0.5,"min_records":100,"window":"30s","open_for":"1m","half_open_records":3}`) ||
		!strings.Contains(r.stdout, `"circuit_breaker":{"failure_ratio":0.25,"min_records":20,"window":"10s","open_for":"30s","half_open_records":5}`) {
		t.Errorf("config check --json of circuit breakers: %v", r)
	}
}
