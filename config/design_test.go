package config

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dustin/go-humanize"

	"github.com/kretry/kretry/headers"
	"github.com/kretry/kretry/ladder"
)

// designRows returns the rows of docs/design.md's tables by their first
// cell: "| `commit_interval` | 1s | 100ms to 10m |" is the row of
// "`commit_interval`".
func designRows(t *testing.T) map[string]string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "docs", "design.md"))
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]string{}
	for line := range strings.Lines(string(data)) {
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		first, _, _ := strings.Cut(strings.TrimPrefix(line, "| "), " |")
		for cell := range strings.SplitSeq(first, ", ") {
			rows[cell] = line
		}
	}
	return rows
}

// TestDesignDocKeys: docs/design.md's configuration table has a row for every
// key a file may hold, with the defaults and bounds the code has.
func TestDesignDocKeys(t *testing.T) {
	rows := designRows(t)
	var paths []string
	add := func(prefix string, keys []string) {
		for _, k := range keys {
			paths = append(paths, prefix+k)
		}
	}
	add("", topKeys)
	add("tls.", tlsKeys)
	add("sasl.", saslKeys)
	add("topics[].", topicKeys)
	add("topics[].tiers[].", tierKeys)
	add("topics[].backoff.", backoffKeys)
	add("topics[].retry_in_place.", inPlaceKeys)
	add("topics[].circuit_breaker.", breakerKeys)
	add("topics[].retention.", retentionKeys)
	add("relay.", relayKeys)
	for _, p := range paths {
		if _, ok := rows["`"+p+"`"]; !ok {
			t.Errorf("docs/design.md has no row for the config key %s", p)
		}
	}

	d := ladder.FormatDelay
	for key, want := range map[string][]string{
		"client_id":                                  {DefaultClientID},
		"commit_interval":                            {d(DefaultCommitInterval), d(MinCommitInterval) + " to " + d(MaxCommitInterval)},
		"session_timeout":                            {d(DefaultSessionTimeout), d(MinSessionTimeout) + " to " + d(MaxSessionTimeout)},
		"delivery_timeout":                           {d(DefaultDeliveryTimeout), d(time.Millisecond) + " to " + d(MaxDeliveryTimeout)},
		"relay.fetch_max_wait":                       {d(DefaultFetchMaxWait), "at least " + d(MinFetchMaxWait)},
		"relay.hold_bytes":                           {strings.ReplaceAll(humanize.IBytes(DefaultHoldBytes), " ", "")},
		"topics[].tiers[].attempts":                  {"1 to " + humanize.Comma(MaxTierAttempts)},
		"topics[].dlq":                               {ladder.DefaultDLQ},
		"topics[].backoff.multiplier":                {"`" + strconv.Itoa(ladder.DefaultMultiplier) + "`", "1 to " + strconv.Itoa(ladder.MaxMultiplier)},
		"topics[].backoff.attempts":                  {"1 to " + humanize.Comma(MaxTierAttempts)},
		"topics[].retry_in_place":                    {d(MaxInPlaceWait)},
		"topics[].retry_in_place.attempts":           {"1 to " + strconv.Itoa(MaxInPlaceAttempts)},
		"topics[].retry_in_place.backoff":            {d(DefaultInPlaceBackoff)},
		"topics[].retry_in_place.max_backoff":        {d(DefaultInPlaceMaxBackoff)},
		"topics[].naming":                            {ladder.DefaultNaming},
		"topics[].circuit_breaker.half_open_records": {strconv.Itoa(DefaultHalfOpenRecords), "1 to " + humanize.Comma(MaxHalfOpenRecords)},
		"topics[].retry_after_max":                   {d(ladder.DefaultRetryAfterMax), d(MaxRetryAfterMax)},
		"topics[].retention.dlq":                     {humanize.Comma(int64(DefaultDLQRetention/(24*time.Hour))) + " days"},
		"topics[].retention.tiers":                   {"max(2 × delay, " + d(MinTierRetention) + ")"},
		"instance_id":                                {"1 to " + humanize.Comma(MaxInstanceIDLength), EnvInstanceID},
		"group_protocol":                             {GroupProtocolClassic, GroupProtocolConsumer},
		"brokers":                                    {EnvBrokers},
		"group":                                      {EnvGroup},
	} {
		row := rows["`"+key+"`"]
		for _, w := range want {
			if !strings.Contains(row, w) {
				t.Errorf("docs/design.md: the row of %s does not say %q: %s", key, w, strings.TrimSpace(row))
			}
		}
	}
}

// TestDesignDocHeaders: docs/design.md has a row for every header kretry
// writes and for every DLQ reason.
func TestDesignDocHeaders(t *testing.T) {
	rows := designRows(t)
	at := time.Date(2026, 11, 25, 10, 0, 5, 0, time.UTC)
	all := headers.Encode(nil, headers.Metadata{Group: "g", Attempts: 1, Tier: "retry-5s", DueAt: at,
		OriginalTopic: "orders", OriginalTimestamp: at, FirstFailureAt: at, LastFailureAt: at,
		Error: "e", Reason: headers.ReasonExhausted, Replays: 1, InPlaceRetries: 1,
		TraceParent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"})
	if len(all) < 15 {
		t.Fatalf("Encode wrote %d headers of a full Metadata, want every header of the contract", len(all))
	}
	for _, h := range all {
		if _, ok := rows["`"+h.Key+"`"]; !ok {
			t.Errorf("docs/design.md has no row for the header %s", h.Key)
		}
	}
	for _, r := range headers.Reasons() {
		if _, ok := rows["`"+string(r)+"`"]; !ok {
			t.Errorf("docs/design.md has no row for the DLQ reason %s", r)
		}
	}
}
