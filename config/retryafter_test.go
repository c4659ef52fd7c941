package config_test

import (
	"strings"
	"testing"
	"time"

	"github.com/kretry/kretry/config"
	"github.com/kretry/kretry/ladder"
)

// retry_after_max: read from a file with its line on error, and given to the
// ladder, whose default is 24h or the last tier's delay when longer.
func TestRetryAfterMax(t *testing.T) {
	for _, tc := range []struct {
		tiers, key string
		want       time.Duration // the ladder's RetryAfterMax
		err        string
	}{
		{"[{delay: 5s}, {delay: 1m}]", "", ladder.DefaultRetryAfterMax, ""},
		{"[{delay: 5s}, {delay: 1m}]", "2h", 2 * time.Hour, ""},
		{"[{delay: 5s}, {delay: 1m}]", "1m", time.Minute, ""},
		{"[{delay: 5s}, {delay: 48h}]", "", 48 * time.Hour, ""},
		{"[{delay: 5s}, {delay: 1m}]", "30s", 0, "line 5: topics[0].retry_after_max: must be at least the last tier's delay, 1m: a RetryAfter up to that tier's delay is always kept; got 30s"},
		{"[{delay: 5s}, {delay: 1m}]", "8d", 0, "line 5: topics[0].retry_after_max: must be at most 168h"},
		{"[{delay: 5s}, {delay: 1m}]", "0s", 0, "line 5: topics[0].retry_after_max: must be > 0 (omit it for the default 24h), got 0s"},
		{"[{delay: 5s}, {delay: 1m}]", "soon", 0, "line 5: topics[0].retry_after_max: must be a duration such as"},
	} {
		text := "brokers: [a:9092]\ngroup: g\ntopics:\n"
		if tc.key != "" {
			text += "  - {name: t, tiers: " + tc.tiers + ",\n     retry_after_max: " + tc.key + "}\n"
		} else {
			text += "  - {name: t, tiers: " + tc.tiers + "}\n"
		}
		c, err := config.Parse([]byte(text))
		if tc.err != "" {
			if err == nil || !strings.HasPrefix(err.Error(), tc.err) {
				t.Errorf("retry_after_max %s: error %v, want %q", tc.key, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("retry_after_max %s: %v", tc.key, err)
		}
		l, err := c.Topics[0].Ladder(c.Group)
		if err != nil {
			t.Fatal(err)
		}
		if got := l.RetryAfterMax(); got != tc.want {
			t.Errorf("retry_after_max %q with tiers %s: the ladder's is %v, want %v", tc.key, tc.tiers, got, tc.want)
		}
	}
}
