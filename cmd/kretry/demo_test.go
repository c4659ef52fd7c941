package main

import (
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"testing"
)

func TestDemoBadRecordsIsUsage(t *testing.T) {
	for _, args := range [][]string{
		{"demo", "--records", "0"},
		{"demo", "--records", "many"},
		{"demo", "--timeout", "0s"},
		{"demo", "extra"},
	} {
		r := kretry(t, args...)
		if r.code != exitUsage {
			t.Errorf("kretry %s: %s\nwant exit %d", strings.Join(args, " "), r, exitUsage)
		}
	}
}

// TestDemoJSON runs the real demo (1s, 3s, 5s×2 ladder: about 15 s) with few
// records and checks its one JSON object.
func TestDemoJSON(t *testing.T) {
	t.Parallel()
	r := kretry(t, "demo", "--records", "300", "--json")
	if r.code != exitOK {
		t.Fatalf("kretry demo --json: %s", r)
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 1 {
		t.Fatalf("stdout has %d lines, want one JSON object:\n%s", len(lines), r.stdout)
	}
	var tally struct {
		Produced     int            `json:"produced"`
		OKFirstTry   int            `json:"ok_first_try"`
		OKAfterRetry map[string]int `json:"ok_after_retry"`
		DeadLettered map[string]int `json:"dead_lettered"`
		Lost         *int           `json:"lost"`
		Duplicates   *int           `json:"duplicates"`
		P50          *float64       `json:"lateness_p50_ms"`
		P99          *float64       `json:"lateness_p99_ms"`
	}
	if err := json.Unmarshal([]byte(lines[0]), &tally); err != nil {
		t.Fatalf("stdout is not JSON: %v\n%s", err, r.stdout)
	}
	if tally.Produced != 300 || tally.Lost == nil || *tally.Lost != 0 || tally.Duplicates == nil || tally.P50 == nil || tally.P99 == nil {
		t.Errorf("tally %s: want produced 300, lost 0 and every key", lines[0])
	}
	if tiers := slices.Sorted(maps.Keys(tally.OKAfterRetry)); !slices.Equal(tiers, []string{"retry-1s", "retry-3s", "retry-5s"}) {
		t.Errorf("ok_after_retry tiers %v, want retry-1s, retry-3s, retry-5s", tiers)
	}
	total := tally.OKFirstTry
	for _, n := range tally.OKAfterRetry {
		total += n
	}
	for _, n := range tally.DeadLettered {
		total += n
	}
	if total != 300 {
		t.Errorf("ok + retried ok + dead-lettered = %d, want 300: %s", total, lines[0])
	}
	if !strings.Contains(r.stderr, "metrics on http://127.0.0.1:") {
		t.Errorf("stderr does not say where /metrics is served:\n%s", r.stderr)
	}
}

// TestDemoText runs the real demo in text mode and checks that it ends with
// the tally and the listings of kretry dlq ls.
func TestDemoText(t *testing.T) {
	t.Parallel()
	r := kretry(t, "demo", "--records", "300")
	if r.code != exitOK {
		t.Fatalf("kretry demo: %s", r)
	}
	out := r.stdout
	for _, want := range []string{
		"metrics on http://127.0.0.1:",
		"every record accounted for",
		"  produced             300\n",
		"  lost                   0\n",
		"  duplicates             0\n",
		"re-feed lateness  p50 ",
		"$ kretry dlq ls --brokers 127.0.0.1:",
		"--topic orders.dlq --reason exhausted --limit 4\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("stdout lacks %q:\n%s", want, out)
		}
	}
	// The second listing is dlq ls's table of records that used up the
	// ladder: 1 + 1 + 2 attempts, then the DLQ at attempt 5.
	listing := out[strings.LastIndex(out, "$ kretry dlq ls"):]
	if !strings.Contains(listing, "P/OFFSET") || !strings.Contains(listing, " 5 ") || !strings.Contains(listing, "exhausted") {
		t.Errorf("no dlq ls table of exhausted records at the end:\n%s", listing)
	}
}
