package config_test

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/kretry/kretry/config"
	"github.com/kretry/kretry/ladder"
)

var update = flag.Bool("update", false, "rewrite testdata/config/bad/*.err from the current messages (review the diff!)")

// clearEnv keeps the overrides of the environment the tests run in (a
// KRETRY_BROKERS exported for integration tests) out of these tests.
func clearEnv(t *testing.T) {
	t.Setenv(config.EnvBrokers, "")
	t.Setenv(config.EnvGroup, "")
	t.Setenv(config.EnvInstanceID, "")
}

func tiers(ts ...any) []ladder.Tier {
	var out []ladder.Tier
	for i := 0; i < len(ts); i += 2 {
		out = append(out, ladder.Tier{Delay: ts[i].(time.Duration), Attempts: ts[i+1].(int)})
	}
	return out
}

const day = 24 * time.Hour

func TestGoodConfigs(t *testing.T) {
	clearEnv(t)
	dir := filepath.Join("..", "testdata", "config", "good")
	cases := map[string]config.Config{
		"minimal.yaml": {
			Brokers:  []string{"127.0.0.1:9092"},
			ClientID: "kretry",
			Group:    "orders-service",
			Topics: []config.Topic{{
				Name: "orders", Tiers: tiers(5*time.Second, 1),
				DLQ: "orders.dlq", Naming: "{topic}.retry-{delay}",
			}},
			Relay: config.Relay{Group: "orders-service-relay", FetchMaxWait: 100 * time.Millisecond, HoldBytes: new(config.DefaultHoldBytes)},
		},
		"full.yaml": {
			Brokers:  []string{"broker-1:9093", "broker-2:9093"},
			ClientID: "orders-service",
			Group:    "orders-service",
			TLS: &config.TLS{
				CAFile:   filepath.Join(dir, "ca.pem"),
				CertFile: filepath.Join(dir, "client.pem"),
				KeyFile:  filepath.Join(dir, "client-key.pem"),
			},
			SASL: &config.SASL{Mechanism: "SCRAM-SHA-512", Username: "orders", PasswordEnv: "KRETRY_SASL_PASSWORD"},
			Topics: []config.Topic{{
				Name:   "orders",
				Tiers:  tiers(5*time.Second, 1, time.Minute, 1, 10*time.Minute, 2),
				DLQ:    "orders.dead",
				Naming: "{topic}.retry-{delay}",
				MaxAge: day, TierRetention: 72 * time.Hour, DLQRetention: 336 * time.Hour,
			}, {
				Name:   "payments",
				Tiers:  tiers(500*time.Millisecond, 1, 90*time.Minute, 3),
				DLQ:    "payments.dlq",
				Naming: "{topic}.retry-{delay}",
			}},
			Relay: config.Relay{Group: "orders-relay", FetchMaxWait: 250 * time.Millisecond, HoldBytes: new(32 << 20)},
		},
		"naming-index.yaml": {
			Brokers:  []string{"kafka-0:9092", "kafka-1:9092"},
			ClientID: "kretry",
			Group:    "billing",
			Topics: []config.Topic{{
				Name:   "invoices",
				Tiers:  tiers(30*time.Second, 3, 2*time.Hour, 1),
				DLQ:    "billing.invoices.dead",
				Naming: "{group}.{topic}.r{index}",
			}},
			Relay: config.Relay{Group: "billing-relay", FetchMaxWait: 100 * time.Millisecond, HoldBytes: new(config.DefaultHoldBytes)},
		},
		// The annotated example of the README, kept valid here.
		"readme.yaml": {
			Brokers:  []string{"kafka-1:9093", "kafka-2:9093"},
			ClientID: "orders-service",
			Group:    "orders-service",
			TLS: &config.TLS{
				CAFile:   filepath.Join(dir, "ca.pem"),
				CertFile: filepath.Join(dir, "client.pem"),
				KeyFile:  filepath.Join(dir, "client-key.pem"),
			},
			SASL: &config.SASL{Mechanism: "SCRAM-SHA-512", Username: "orders", PasswordEnv: "KRETRY_SASL_PASSWORD"},
			Topics: []config.Topic{{
				Name:   "orders",
				Tiers:  tiers(5*time.Second, 1, time.Minute, 1, 10*time.Minute, 2),
				DLQ:    "orders.dlq",
				Naming: "{topic}.retry-{delay}",
				MaxAge: day, TierRetention: 72 * time.Hour, DLQRetention: 14 * day,
			}, {
				Name:   "payments",
				Tiers:  tiers(30*time.Second, 3, 90*time.Minute, 1),
				DLQ:    "payments.dlq",
				Naming: "{topic}.retry-{delay}",
			}},
			Relay:           config.Relay{Group: "orders-service-relay", FetchMaxWait: 100 * time.Millisecond, HoldBytes: new(config.DefaultHoldBytes)},
			CommitInterval:  time.Second,
			SessionTimeout:  10 * time.Second,
			InstanceID:      "orders-0",
			GroupProtocol:   "classic",
			DeliveryTimeout: 30 * time.Second,
		},
		"tls.yaml": {
			Brokers:  []string{"kafka.example.com:9093"},
			ClientID: "kretry",
			Group:    "g",
			TLS:      &config.TLS{},
			Topics: []config.Topic{{
				Name: "t", Tiers: tiers(time.Second, 1), DLQ: "t.dlq", Naming: "{topic}.retry-{delay}",
			}},
			Relay: config.Relay{Group: "g-relay", FetchMaxWait: 100 * time.Millisecond, HoldBytes: new(config.DefaultHoldBytes)},
		},
		"sasl-plain.yaml": {
			Brokers:  []string{"127.0.0.1:9092"},
			ClientID: "kretry",
			Group:    "g",
			SASL:     &config.SASL{Mechanism: "PLAIN", Username: "svc", PasswordEnv: "SVC_KAFKA_PASSWORD"},
			Topics: []config.Topic{{
				Name: "t", Tiers: tiers(time.Second, 1), DLQ: "t.dlq", Naming: "{topic}.retry-{delay}",
			}},
			Relay: config.Relay{Group: "g-relay", FetchMaxWait: 100 * time.Millisecond, HoldBytes: new(config.DefaultHoldBytes)},
		},
		// A UTF-8 byte order mark does not make the first key unknown.
		"bom.yaml": {
			Brokers:  []string{"127.0.0.1:9092"},
			ClientID: "kretry",
			Group:    "g",
			Topics: []config.Topic{{
				Name: "t", Tiers: tiers(time.Second, 1), DLQ: "t.dlq", Naming: "{topic}.retry-{delay}",
			}},
			Relay: config.Relay{Group: "g-relay", FetchMaxWait: 100 * time.Millisecond, HoldBytes: new(config.DefaultHoldBytes)},
		},
		"backoff.yaml": {
			Brokers:  []string{"127.0.0.1:9092"},
			ClientID: "kretry",
			Group:    "orders-service",
			Topics: []config.Topic{{
				Name: "orders", Backoff: &ladder.Backoff{Initial: time.Second, Multiplier: 2, Max: time.Minute, Attempts: 8, Jitter: 0.2},
				DLQ: "orders.dlq", Naming: "{topic}.retry-{delay}",
			}},
			Relay: config.Relay{Group: "orders-service-relay", FetchMaxWait: 100 * time.Millisecond, HoldBytes: new(config.DefaultHoldBytes)},
		},
		"retry-in-place.yaml": {
			Brokers:  []string{"127.0.0.1:9092"},
			ClientID: "kretry",
			Group:    "orders-service",
			Topics: []config.Topic{{
				Name: "orders", Tiers: tiers(5*time.Second, 1, time.Minute, 1), DLQ: "orders.dlq", Naming: "{topic}.retry-{delay}",
				RetryInPlace: &config.RetryInPlace{Attempts: 3, Backoff: 100 * time.Millisecond, MaxBackoff: time.Second},
			}, {
				Name: "payments", Tiers: tiers(5*time.Second, 1), DLQ: "payments.dlq", Naming: "{topic}.retry-{delay}",
				RetryInPlace: &config.RetryInPlace{Attempts: 2, Backoff: 100 * time.Millisecond, MaxBackoff: time.Second},
			}},
			Relay: config.Relay{Group: "orders-service-relay", FetchMaxWait: 100 * time.Millisecond, HoldBytes: new(config.DefaultHoldBytes)},
		},
		"circuit-breaker.yaml": {
			Brokers:  []string{"127.0.0.1:9092"},
			ClientID: "kretry",
			Group:    "orders-service",
			Topics: []config.Topic{{
				Name: "orders", Tiers: tiers(5*time.Second, 1, time.Minute, 1), DLQ: "orders.dlq", Naming: "{topic}.retry-{delay}",
				CircuitBreaker: &config.CircuitBreaker{FailureRatio: 0.5, MinRecords: 100, Window: 30 * time.Second, OpenFor: time.Minute, HalfOpenRecords: 3},
			}, {
				Name: "payments", Tiers: tiers(5*time.Second, 1), DLQ: "payments.dlq", Naming: "{topic}.retry-{delay}",
				CircuitBreaker: &config.CircuitBreaker{FailureRatio: 0.25, MinRecords: 20, Window: 10 * time.Second, OpenFor: 30 * time.Second},
			}},
			Relay: config.Relay{Group: "orders-service-relay", FetchMaxWait: 100 * time.Millisecond, HoldBytes: new(config.DefaultHoldBytes)},
		},
		"days-and-anchors.yaml": {
			Brokers:  []string{"127.0.0.1:9092"},
			ClientID: "kretry",
			Group:    "g",
			Topics: []config.Topic{{
				Name: "a", Tiers: tiers(time.Hour, 1, day, 2), DLQ: "a.dlq", Naming: "{topic}.retry-{delay}",
				MaxAge: 7 * day, TierRetention: 60 * time.Hour, DLQRetention: 30 * day,
			}, {
				Name: "b", Tiers: tiers(time.Hour, 1, day, 2), DLQ: "b.dlq", Naming: "{topic}.retry-{delay}",
			}},
			Relay: config.Relay{Group: "g-relay", FetchMaxWait: 100 * time.Millisecond, HoldBytes: new(config.DefaultHoldBytes)},
		},
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if len(files) != len(cases) {
		t.Errorf("%d good configs in %s, %d cases here: give every file its expected value", len(files), dir, len(cases))
	}
	for name, want := range cases {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(dir, name)
			got, err := config.Load(path)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			want.Source = path
			assertConfig(t, got, &want)
		})
	}
}

func assertConfig(t *testing.T, got, want *config.Config) {
	t.Helper()
	check := func(field string, g, w any) {
		if !reflect.DeepEqual(g, w) {
			t.Errorf("%s = %+v, want %+v", field, g, w)
		}
	}
	check("Source", got.Source, want.Source)
	check("Brokers", got.Brokers, want.Brokers)
	check("ClientID", got.ClientID, want.ClientID)
	check("Group", got.Group, want.Group)
	check("TLS", got.TLS, want.TLS)
	check("SASL", got.SASL, want.SASL)
	check("Topics", got.Topics, want.Topics)
	check("Relay", got.Relay, want.Relay)
	// The keys of the group members: a zero in want is the default.
	type members struct {
		ExactlyOnce                                     bool
		CommitInterval, SessionTimeout, DeliveryTimeout time.Duration
		InstanceID, GroupProtocol                       string
	}
	or := func(v, def time.Duration) time.Duration {
		if v == 0 {
			return def
		}
		return v
	}
	protocol := want.GroupProtocol
	if protocol == "" {
		protocol = config.GroupProtocolClassic
	}
	check("members", members{got.ExactlyOnce, got.CommitInterval, got.SessionTimeout, got.DeliveryTimeout, got.InstanceID, got.GroupProtocol},
		members{want.ExactlyOnce, or(want.CommitInterval, time.Second), or(want.SessionTimeout, 10*time.Second), or(want.DeliveryTimeout, 30*time.Second), want.InstanceID, protocol})
}

// TestBadConfigs loads every testdata/config/bad/NAME.yaml and wants exactly
// the message in NAME.err.
func TestBadConfigs(t *testing.T) {
	clearEnv(t)
	t.Setenv("KRETRY_SASL_PASSWORD", "")
	dir := filepath.Join("..", "testdata", "config", "bad")
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no bad configs in %s: %v", dir, err)
	}
	errFiles, _ := filepath.Glob(filepath.Join(dir, "*.err"))
	if len(errFiles) != len(files) && !*update {
		t.Errorf("%d .yaml and %d .err files in %s: every bad config needs its expected message", len(files), len(errFiles), dir)
	}
	for _, path := range files {
		name := strings.TrimSuffix(filepath.Base(path), ".yaml")
		t.Run(name, func(t *testing.T) {
			c, err := config.Load(path)
			if err == nil {
				t.Fatalf("Load succeeded with %+v, want an error", c)
			}
			if c != nil {
				t.Errorf("Load returned a config with its error")
			}
			errPath := strings.TrimSuffix(path, ".yaml") + ".err"
			if *update {
				if err := os.WriteFile(errPath, []byte(err.Error()+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, rerr := os.ReadFile(errPath)
			if rerr != nil {
				t.Fatalf("expected message: %v", rerr)
			}
			if got := err.Error(); got != strings.TrimSuffix(string(want), "\n") {
				t.Errorf("error:\n%s\nwant:\n%s", got, want)
			}
			// Every line is a *FieldError that names the file.
			var fe *config.FieldError
			if !errors.As(err, &fe) {
				t.Errorf("error %T is not a *config.FieldError", err)
			}
			for _, line := range strings.Split(err.Error(), "\n") {
				if !strings.HasPrefix(line, path+":") {
					t.Errorf("line %q does not start with %q", line, path+":")
				}
			}
		})
	}
}
