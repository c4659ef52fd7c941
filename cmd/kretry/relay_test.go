package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/headers"
	"github.com/kretry/kretry/internal/kafkatest"
)

func TestRelayMissingTopics(t *testing.T) {
	noEnvOverrides(t)
	main := kafkatest.Name(t, "orders")
	seeds := fakeWithMain(t, main)
	cfg := writeConfig(t, seeds, main, "")
	r := kretry(t, "relay", "-c", cfg)
	want := "kretry: topics " + strings.Join(ladderTopics(main), ", ") + ` do not exist: run "kretry topics apply -c ` + cfg + `"` + "\n"
	if r.code != 1 || r.stderr != want {
		t.Errorf("relay without its topics: %v\nwant stderr %q", r, want)
	}
}

func TestRelayRefeedsAndStopsGracefully(t *testing.T) {
	noEnvOverrides(t)
	main := kafkatest.Name(t, "orders")
	seeds := fakeWithMain(t, main)
	relayRoundTrip(t, seeds, main, true)
}

// relayRoundTrip provisions main's ladder, puts a due record on its first
// tier, runs "kretry relay" until the record is back on main, stops it and
// checks that it committed. With metrics it also serves /metrics and checks
// that the re-feed is counted there.
func relayRoundTrip(t *testing.T, seeds []string, main string, metrics bool) {
	t.Helper()
	relayRoundTripWith(t, seeds, main, metrics, "")
}

// relayRoundTripWith is relayRoundTrip with top-level keys added to the
// config (extra: YAML lines at column 0), and returns what the relay logged.
// With exactly_once the re-feed is read read_committed: visible only once
// its transaction committed.
func relayRoundTripWith(t *testing.T, seeds []string, main string, metrics bool, extra string) string {
	t.Helper()
	cfg := writeConfig(t, seeds, main, extra)
	if r := kretry(t, "topics", "apply", "-c", cfg); r.code != 0 {
		t.Fatalf("apply: %v", r)
	}

	// A record that failed once on partition 2 of main and is due already.
	prod, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	now := time.Now()
	rec := &kgo.Record{
		Topic: main + ".retry-5s", Partition: 2, Key: []byte("k1"), Value: []byte("v1"),
		Headers: headers.Encode([]kgo.RecordHeader{{Key: "trace", Value: []byte("t1")}}, headers.Metadata{
			Group: main + "-group", Attempts: 1, Tier: "retry-5s", DueAt: now.Add(-time.Second),
			OriginalTopic: main, OriginalPartition: 2, OriginalOffset: 7, OriginalTimestamp: now.Add(-6 * time.Second),
			FirstFailureAt: now.Add(-6 * time.Second), LastFailureAt: now.Add(-6 * time.Second), Error: "boom",
		}),
	}
	if err := prod.ProduceSync(t.Context(), rec).FirstErr(); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var stdout, stderr kafkatest.Buffer
	args := []string{"relay", "-c", cfg, "--json"}
	if metrics {
		args = append(args, "--metrics", "127.0.0.1:0")
	}
	done := make(chan int, 1)
	go func() { done <- runContext(ctx, args, &stdout, &stderr) }()

	cons, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.ConsumeTopics(main), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	var got *kgo.Record
	for got == nil {
		fs := cons.PollFetches(t.Context())
		if err := fs.Err0(); err != nil {
			t.Fatalf("consume %s: %v", main, err)
		}
		fs.EachRecord(func(r *kgo.Record) { got = r })
	}
	if got.Partition != 2 || string(got.Key) != "k1" || string(got.Value) != "v1" || got.Headers[0].Key != "trace" {
		t.Errorf("re-fed record: partition %d key %q value %q headers %v", got.Partition, got.Key, got.Value, got.Headers)
	}

	if metrics {
		checkRefedMetric(t, stderr.String(), main)
		checkHealth(t, stderr.String())
	}

	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("relay exit %d: %s", code, stderr.String())
	}
	var msgs []string
	for line := range strings.SplitSeq(strings.TrimSpace(stderr.String()), "\n") {
		var entry struct{ Msg string }
		if err := json.Unmarshal([]byte(line), &entry); err != nil {
			t.Errorf("relay --json logged a line that is not JSON: %q", line)
		}
		msgs = append(msgs, entry.Msg)
	}
	if !slices.Contains(msgs, "kretry relay started") || !slices.Contains(msgs, "kretry relay stopped") {
		t.Errorf("relay logs lack the start and stop lines:\n%s", stderr.String())
	}
	if strings.Contains(extra, "exactly_once: true") && !strings.Contains(stderr.String(), `"exactly_once":true`) {
		t.Errorf("relay did not start in the exactly-once mode:\n%s", stderr.String())
	}
	// Stopping committed the re-fed record: the relay group is past it.
	adm := kadm.NewClient(prod)
	offs, err := adm.FetchOffsets(t.Context(), main+"-group-relay")
	if err != nil {
		t.Fatal(err)
	}
	if o, ok := offs.Lookup(main+".retry-5s", 2); !ok || o.At != 1 {
		t.Errorf("relay group offset on %s.retry-5s/2: %+v (found %v), want 1", main, o, ok)
	}
	return stderr.String()
}

// checkRefedMetric scrapes the /metrics that the relay logged it serves until
// kretry_refed_total counts the re-feed of a record of main (the counter
// moves once the produce is acknowledged, which may be just after the record
// shows on main).
func checkRefedMetric(t *testing.T, logs, main string) {
	t.Helper()
	var url string
	for line := range strings.SplitSeq(logs, "\n") {
		var entry struct{ Msg, URL string }
		if json.Unmarshal([]byte(line), &entry) == nil && entry.Msg == "serving metrics" {
			url = entry.URL
		}
	}
	if url == "" {
		t.Fatalf("relay --metrics logged no URL:\n%s", logs)
	}
	want := regexp.MustCompile(`(?m)^kretry_refed_total\{[^}]*topic="` + regexp.QuoteMeta(main) + `"[^}]*\} 1$`)
	var body []byte
	for range 500 { // at most 10s
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		body, err = io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if want.Match(body) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Errorf("%s does not count the re-feed (want %s):\n%s", url, want, body)
}

// checkHealth gets /healthz and /readyz next to the /metrics that the relay
// logged it serves: 200, status ok, once it has joined its group (it has
// re-fed a record already).
func checkHealth(t *testing.T, logs string) {
	t.Helper()
	var url string
	for line := range strings.SplitSeq(logs, "\n") {
		var entry struct{ Msg, URL string }
		if json.Unmarshal([]byte(line), &entry) == nil && entry.Msg == "serving metrics" {
			url = strings.TrimSuffix(entry.URL, "/metrics")
		}
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		resp, err := http.Get(url + path)
		if err != nil {
			t.Fatal(err)
		}
		var body struct{ Status string }
		err = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK || body.Status != "ok" {
			t.Errorf("GET %s%s: %d %+v %v, want 200 and status ok", url, path, resp.StatusCode, body, err)
		}
	}
}
