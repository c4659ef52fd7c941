package config_test

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kretry/kretry/config"
)

const withGroupTemplates = `brokers: ["file-1:9092"]
group: file-group
topics:
  - name: orders
    naming: "{group}.{topic}.retry-{delay}"
    dlq: "{group}.{topic}.dlq"
    tiers: [{delay: 5s}]
`

func TestEnvOverrides(t *testing.T) {
	cases := []struct {
		name              string
		brokersEnv, group string
		yaml              string
		wantBrokers       []string
		wantGroup         string
	}{
		{"no overrides", "", "", withGroupTemplates, []string{"file-1:9092"}, "file-group"},
		{"KRETRY_BROKERS", " env-1:9092, env-2:9093 ,", "", withGroupTemplates, []string{"env-1:9092", "env-2:9093"}, "file-group"},
		{"KRETRY_GROUP", "", "env-group", withGroupTemplates, []string{"file-1:9092"}, "env-group"},
		{"both, file without brokers and group", "env-1:9092", "env-group",
			"topics: [{name: orders, naming: \"{group}.{topic}.retry-{delay}\", dlq: \"{group}.{topic}.dlq\", tiers: [{delay: 5s}]}]\n",
			[]string{"env-1:9092"}, "env-group"},
		{"KRETRY_BROKERS with an empty list in the file", "env-1:9092", "",
			strings.Replace(withGroupTemplates, `["file-1:9092"]`, "[]", 1), []string{"env-1:9092"}, "file-group"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(config.EnvBrokers, tc.brokersEnv)
			t.Setenv(config.EnvGroup, tc.group)
			c, err := config.Parse([]byte(tc.yaml))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if !reflect.DeepEqual(c.Brokers, tc.wantBrokers) || c.Group != tc.wantGroup {
				t.Errorf("brokers %q group %q, want %q %q", c.Brokers, c.Group, tc.wantBrokers, tc.wantGroup)
			}
			// Everything derived from the group follows the override.
			if want := tc.wantGroup + "-relay"; c.Relay.Group != want {
				t.Errorf("relay group %q, want %q", c.Relay.Group, want)
			}
			if want := tc.wantGroup + ".orders.dlq"; c.Topics[0].DLQ != want {
				t.Errorf("DLQ %q, want %q", c.Topics[0].DLQ, want)
			}
			ls, err := c.Ladders()
			if err != nil {
				t.Fatal(err)
			}
			if got, want := ls[0].Steps()[0].Topic, tc.wantGroup+".orders.retry-5s"; got != want {
				t.Errorf("tier topic %q, want %q", got, want)
			}
		})
	}
}

func TestEnvOverrideErrors(t *testing.T) {
	t.Run("KRETRY_BROKERS without a broker", func(t *testing.T) {
		t.Setenv(config.EnvBrokers, " , ,")
		t.Setenv(config.EnvGroup, "")
		_, err := config.Parse([]byte("group: g\ntopics: [{name: t, tiers: [{delay: -1s}]}]\n"))
		want := "line 2: topics[0].tiers[0].delay: must be > 0, got -1s\n" +
			`KRETRY_BROKERS: must be a comma-separated list of host:port, got ", ,"`
		if err == nil || err.Error() != want {
			t.Errorf("error:\n%v\nwant:\n%s", err, want)
		}
	})
	t.Run("neither file nor environment", func(t *testing.T) {
		t.Setenv(config.EnvBrokers, "")
		t.Setenv(config.EnvGroup, "")
		_, err := config.Parse([]byte("# nothing but topics\ntopics: [{name: t, tiers: [{delay: 1s}]}]\n"))
		want := `line 2: brokers: required: list at least one broker, e.g. brokers: ["127.0.0.1:9092"], or set KRETRY_BROKERS` + "\n" +
			`line 2: group: required: the consumer group of the main consumer, e.g. group: orders-service, or set KRETRY_GROUP`
		if err == nil || err.Error() != want {
			t.Errorf("error:\n%v\nwant:\n%s", err, want)
		}
	})
}

func TestFieldError(t *testing.T) {
	clearEnv(t)
	_, err := config.Parse([]byte("brokers: [a:9092]\ngroup: g\ntopics:\n  - name: orders\n    tiers:\n      - delay: 5s\n      - delay: -1m\n"))
	var fe *config.FieldError
	if !errors.As(err, &fe) {
		t.Fatalf("%v is not a *FieldError", err)
	}
	want := config.FieldError{Line: 7, Field: "topics[0].tiers[1].delay", Problem: "must be > 0, got -1m"}
	if *fe != want {
		t.Errorf("FieldError %+v, want %+v", *fe, want)
	}
	if got := fe.Error(); got != "line 7: topics[0].tiers[1].delay: must be > 0, got -1m" {
		t.Errorf("Error() = %q", got)
	}
	fe.Source = "kretry.yaml"
	if got := fe.Error(); got != "kretry.yaml:7: topics[0].tiers[1].delay: must be > 0, got -1m" {
		t.Errorf("Error() = %q", got)
	}

	// A joined error holds one *FieldError per problem.
	_, err = config.Parse([]byte("brokers: []\ngroup: \"\"\ntopics: []\n"))
	joined, ok := err.(interface{ Unwrap() []error })
	if !ok {
		t.Fatalf("%T does not unwrap to a list", err)
	}
	var fields []string
	for _, e := range joined.Unwrap() {
		if errors.As(e, &fe) {
			fields = append(fields, fe.Field)
		}
	}
	if want := []string{"brokers", "group", "topics"}; !reflect.DeepEqual(fields, want) {
		t.Errorf("fields %q, want %q", fields, want)
	}
}

func TestDurations(t *testing.T) {
	clearEnv(t)
	cases := []struct {
		text string
		want time.Duration
		err  string
	}{
		{"500ms", 500 * time.Millisecond, ""},
		{"1h30m", 90 * time.Minute, ""},
		{"14d", 14 * day, ""},
		{"1d12h", 36 * time.Hour, ""},
		{"+2d", 2 * day, ""},
		{"-1d", 0, "must be > 0 (omit max_age for no limit), got -1d"},
		{"0d", 0, "must be > 0 (omit max_age for no limit), got 0d"},
		{"1.5d", 0, "must be a duration such as 500ms, 5s, 1m, 1h30m or 14d, got 1.5d"},
		{"1d-1h", 0, "must be a duration such as 500ms, 5s, 1m, 1h30m or 14d, got 1d-1h"},
		{"d", 0, "must be a duration such as 500ms, 5s, 1m, 1h30m or 14d, got d"},
		{"1w", 0, "must be a duration such as 500ms, 5s, 1m, 1h30m or 14d, got 1w"},
		{"999999999d", 0, "must be a duration such as 500ms, 5s, 1m, 1h30m or 14d, got 999999999d"},
		{"106751d24h", 0, "must be a duration such as 500ms, 5s, 1m, 1h30m or 14d, got 106751d24h"},
		{"30", 0, "must be a duration such as 500ms, 5s, 1m, 1h30m or 14d, got 30"},
	}
	for _, tc := range cases {
		t.Run(tc.text, func(t *testing.T) {
			c, err := config.Parse([]byte("brokers: [a:9092]\ngroup: g\ntopics: [{name: t, tiers: [{delay: 100ms}], max_age: " + tc.text + "}]\n"))
			if tc.err != "" {
				if want := "line 3: topics[0].max_age: " + tc.err; err == nil || err.Error() != want {
					t.Errorf("error %v, want %s", err, want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Topics[0].MaxAge != tc.want {
				t.Errorf("max_age %v, want %v", c.Topics[0].MaxAge, tc.want)
			}
		})
	}
}

func TestHoldBytes(t *testing.T) {
	clearEnv(t)
	const head = "brokers: [a:9092]\ngroup: g\ntopics: [{name: t, tiers: [{delay: 1s}]}]\n"
	for name, relay := range map[string]string{
		"no relay section":         "",
		"relay without hold_bytes": "relay:\n  group: g-relay\n",
		"empty relay section":      "relay: {}\n",
		"null hold_bytes":          "relay:\n  hold_bytes:\n",
	} {
		t.Run(name, func(t *testing.T) {
			c, err := config.Parse([]byte(head + relay))
			if err != nil {
				t.Fatal(err)
			}
			if c.Relay.HoldBytes == nil {
				t.Fatal("HoldBytes nil, want Parse to fill in the default")
			}
			if got := *c.Relay.HoldBytes; got != 64<<20 {
				t.Errorf("hold_bytes %d, want the default 64 MiB", got)
			}
		})
	}

	const (
		syntax   = "must be a size such as 1048576, 512KiB, 64MiB or 1GiB (0 holds nothing; default 64 MiB), got "
		negative = "must be ≥ 0 (0 holds nothing; default 64 MiB), got "
		fraction = "must be a whole number of bytes or of a unit, e.g. 1536MiB rather than 1.5GiB, got "
	)
	overflow := fmt.Sprintf("must be at most %d bytes, got ", math.MaxInt)
	cases := []struct {
		text string
		want int
		err  string
	}{
		{"0", 0, ""},
		{"1048576", 1 << 20, ""},
		{"512KiB", 512 << 10, ""},
		{"64MiB", 64 << 20, ""},
		{"1GiB", 1 << 30, ""},
		{"64 MiB", 64 << 20, ""},
		{"64mib", 64 << 20, ""},
		{"64Mi", 64 << 20, ""},
		{`"64MiB"`, 64 << 20, ""},
		{"100B", 100, ""},
		{"64kB", 64_000, ""},
		{"64MB", 64_000_000, ""},
		{"64M", 64_000_000, ""},
		{"1GB", 1_000_000_000, ""},
		{strconv.Itoa(math.MaxInt), math.MaxInt, ""},
		{"-1", 0, negative + "-1"},
		{"-64MiB", 0, negative + "-64MiB"},
		{"1.5", 0, fraction + "1.5"},
		{"0.5KiB", 0, fraction + "0.5KiB"},
		{"1.5GiB", 0, fraction + "1.5GiB"},
		{"64 apples", 0, syntax + `"64 apples"`},
		{"64MiBs", 0, syntax + "64MiBs"},
		{"1e6", 0, syntax + "1e6"},
		{"0x100000", 0, syntax + "0x100000"},
		{"1,048,576", 0, syntax + "1,048,576"},
		{"1,5GiB", 0, syntax + "1,5GiB"},
		{"off", 0, syntax + "off"},
		{"[64MiB]", 0, syntax + "a list"},
		{"{size: 64MiB}", 0, syntax + "a mapping"},
		{"16EiB", 0, overflow + "16EiB"},
		{"99999999999999999999", 0, overflow + "99999999999999999999"},
	}
	for _, tc := range cases {
		t.Run(tc.text, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "kretry.yaml")
			if err := os.WriteFile(path, []byte(head+"relay:\n  group: g-relay\n  hold_bytes: "+tc.text+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			c, err := config.Load(path)
			if tc.err != "" {
				if want := path + ":6: relay.hold_bytes: " + tc.err; err == nil || err.Error() != want {
					t.Errorf("error %v, want %s", err, want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Relay.HoldBytes == nil {
				t.Fatal("HoldBytes nil")
			}
			if got := *c.Relay.HoldBytes; got != tc.want {
				t.Errorf("hold_bytes %d, want %d", got, tc.want)
			}
		})
	}
}

func TestLadders(t *testing.T) {
	clearEnv(t)
	c, err := config.Load("../testdata/config/good/full.yaml")
	if err != nil {
		t.Fatal(err)
	}
	ls, err := c.Ladders()
	if err != nil {
		t.Fatal(err)
	}
	type step struct {
		topic    string
		attempts int
	}
	want := []struct {
		topic, group, dlq string
		steps             []step
		maxRetries        int
	}{
		{"orders", "orders-service", "orders.dead", []step{{"orders.retry-5s", 1}, {"orders.retry-1m", 1}, {"orders.retry-10m", 2}}, 4},
		{"payments", "orders-service", "payments.dlq", []step{{"payments.retry-500ms", 1}, {"payments.retry-1h30m", 3}}, 4},
	}
	if len(ls) != len(want) {
		t.Fatalf("%d ladders, want %d", len(ls), len(want))
	}
	for i, w := range want {
		l := ls[i]
		var steps []step
		for _, s := range l.Steps() {
			steps = append(steps, step{s.Topic, s.Attempts})
		}
		if l.Topic() != w.topic || l.Group() != w.group || l.DLQ() != w.dlq || !reflect.DeepEqual(steps, w.steps) || l.MaxRetries() != w.maxRetries {
			t.Errorf("ladder %d: %s %s %s %v %d, want %+v", i, l.Topic(), l.Group(), l.DLQ(), steps, l.MaxRetries(), w)
		}
	}

	// Topic.Ladder takes the group: {group} in naming follows it.
	c2, err := config.Load("../testdata/config/good/naming-index.yaml")
	if err != nil {
		t.Fatal(err)
	}
	l, err := c2.Topics[0].Ladder("other")
	if err != nil {
		t.Fatal(err)
	}
	if got := []string{l.Steps()[0].Topic, l.Steps()[1].Topic, l.DLQ()}; !reflect.DeepEqual(got, []string{"other.invoices.r1", "other.invoices.r2", "billing.invoices.dead"}) {
		t.Errorf("topics %q: tiers follow the group given, the DLQ is the one resolved at load", got)
	}
}

func TestRetention(t *testing.T) {
	def := config.Topic{}
	if got := def.RetentionForTier(5 * time.Second); got != 24*time.Hour {
		t.Errorf("default retention of a 5s tier %v, want 24h", got)
	}
	if got := def.RetentionForTier(20 * time.Hour); got != 40*time.Hour {
		t.Errorf("default retention of a 20h tier %v, want 40h", got)
	}
	if got := def.RetentionForDLQ(); got != 14*day {
		t.Errorf("default DLQ retention %v, want 336h", got)
	}
	set := config.Topic{TierRetention: 72 * time.Hour, DLQRetention: 30 * day}
	if set.RetentionForTier(5*time.Second) != 72*time.Hour || set.RetentionForDLQ() != 30*day {
		t.Errorf("set retention not used: %v %v", set.RetentionForTier(5*time.Second), set.RetentionForDLQ())
	}
}

func TestProvisions(t *testing.T) {
	clearEnv(t)
	c, err := config.Load("../testdata/config/good/full.yaml")
	if err != nil {
		t.Fatal(err)
	}
	ps, err := c.Provisions()
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 2 {
		t.Fatalf("%d provisions, want 2", len(ps))
	}
	if p := ps[0]; p.Ladder.Topic() != "orders" || p.Ladder.DLQ() != "orders.dead" || p.TierRetention != 72*time.Hour || p.DLQRetention != 336*time.Hour {
		t.Errorf("orders: %s %s %v %v", p.Ladder.Topic(), p.Ladder.DLQ(), p.TierRetention, p.DLQRetention)
	}
	if p := ps[1]; p.Ladder.Topic() != "payments" || p.Ladder.DLQ() != "payments.dlq" || p.TierRetention != 0 || p.DLQRetention != 0 {
		t.Errorf("payments: %s %s %v %v, want the defaults (0)", p.Ladder.Topic(), p.Ladder.DLQ(), p.TierRetention, p.DLQRetention)
	}
}

func TestWithBrokers(t *testing.T) {
	t.Setenv(config.EnvBrokers, "env-1:9092")
	t.Setenv(config.EnvGroup, "")
	noBrokers := []byte("group: g\ntopics: [{name: t, tiers: [{delay: 1s}]}]\n")
	withBrokers := []byte("brokers: [file:9092]\ngroup: g\ntopics: [{name: t, tiers: [{delay: 1s}]}]\n")
	cases := []struct {
		name string
		data []byte
		opts []config.Opt
		want []string
	}{
		{"over the file and the environment", withBrokers, []config.Opt{config.WithBrokers("flag-1:9092", " flag-2:9092 ")}, []string{"flag-1:9092", "flag-2:9092"}},
		{"file without brokers", noBrokers, []config.Opt{config.WithBrokers("flag-1:9092")}, []string{"flag-1:9092"}},
		{"empty: no effect", withBrokers, []config.Opt{config.WithBrokers("", " ")}, []string{"env-1:9092"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := config.Parse(tc.data, tc.opts...)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(c.Brokers, tc.want) {
				t.Errorf("brokers %q, want %q", c.Brokers, tc.want)
			}
		})
	}
}
