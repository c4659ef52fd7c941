package config_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/kretry/kretry/config"
	"github.com/kretry/kretry/ladder"
)

// goodYAML and goodConfig are the same configuration, in a file and in Go.
const goodYAML = `
brokers: ["127.0.0.1:9092"]
group: orders-service
topics:
  - name: orders
    tiers: [{delay: 5s}, {delay: 1m, attempts: 2}]
`

func goodConfig() *config.Config {
	return &config.Config{
		Brokers: []string{"127.0.0.1:9092"},
		Group:   "orders-service",
		Topics: []config.Topic{{
			Name:  "orders",
			Tiers: []ladder.Tier{{Delay: 5 * time.Second}, {Delay: time.Minute, Attempts: 2}},
		}},
	}
}

// TestSetDefaultsAgreesWithParse: a Config built in Go with SetDefaults holds
// the values Parse gives the same configuration in a file.
func TestSetDefaultsAgreesWithParse(t *testing.T) {
	clearEnv(t)
	cases := []struct {
		name string
		yaml string
		go_  func(*config.Config)
	}{
		{"minimal", goodYAML, func(*config.Config) {}},
		{"everything set", goodYAML + `
client_id: orders-svc
tls: {ca_file: /etc/ca.pem, cert_file: /etc/c.pem, key_file: /etc/k.pem}
sasl: {mechanism: SCRAM-SHA-512, username: orders, password_env: ORDERS_PW}
relay: {group: orders-relay, fetch_max_wait: 250ms, hold_bytes: 0}
exactly_once: true
commit_interval: 5s
session_timeout: 45s
instance_id: orders-0
group_protocol: consumer
delivery_timeout: 1m
`, func(c *config.Config) {
			c.ClientID = "orders-svc"
			c.TLS = &config.TLS{CAFile: "/etc/ca.pem", CertFile: "/etc/c.pem", KeyFile: "/etc/k.pem"}
			c.SASL = &config.SASL{Mechanism: "SCRAM-SHA-512", Username: "orders", PasswordEnv: "ORDERS_PW"}
			c.Relay = config.Relay{Group: "orders-relay", FetchMaxWait: 250 * time.Millisecond, HoldBytes: new(0)}
			c.ExactlyOnce = true
			c.CommitInterval = 5 * time.Second
			c.SessionTimeout = 45 * time.Second
			c.InstanceID = "orders-0"
			c.GroupProtocol = config.GroupProtocolConsumer
			c.DeliveryTimeout = time.Minute
		}},
		{"topic keys", `
brokers: ["127.0.0.1:9092"]
group: orders-service
topics:
  - name: orders
    tiers: [{delay: 5s}, {delay: 1m, attempts: 2}]
    dlq: "{topic}-{group}.dead"
    naming: "{group}.{topic}.r{index}"
    max_age: 1h
    retention: {tiers: 72h, dlq: 30d}
`, func(c *config.Config) {
			c.Topics[0].DLQ = "{topic}-{group}.dead"
			c.Topics[0].Naming = "{group}.{topic}.r{index}"
			c.Topics[0].MaxAge = time.Hour
			c.Topics[0].TierRetention = 72 * time.Hour
			c.Topics[0].DLQRetention = 30 * 24 * time.Hour
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			want, err := config.Parse([]byte(tc.yaml))
			if err != nil {
				t.Fatal(err)
			}
			got := goodConfig()
			tc.go_(got)
			if err := got.Validate(); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			got.SetDefaults()
			assertConfig(t, got, want)
			if err := got.Validate(); err != nil {
				t.Fatalf("Validate after SetDefaults: %v", err)
			}
		})
	}
}

// TestSetDefaultsKeepsTheCallersSlices: the topics and tiers of a Config
// built in Go may be shared; SetDefaults writes copies.
func TestSetDefaultsKeepsTheCallersSlices(t *testing.T) {
	tiers := []ladder.Tier{{Delay: time.Second}}
	topics := []config.Topic{{Name: "orders", Tiers: tiers}}
	c := &config.Config{Brokers: []string{"k:9092"}, Group: "g", Topics: topics}
	c.SetDefaults()
	if tiers[0].Attempts != 0 || topics[0].DLQ != "" || topics[0].Naming != "" {
		t.Errorf("SetDefaults wrote the caller's slices: %+v %+v", topics[0], tiers[0])
	}
	if c.Topics[0].Tiers[0].Attempts != 1 || c.Topics[0].DLQ != "orders.dlq" {
		t.Errorf("SetDefaults: %+v", c.Topics[0])
	}
}

// TestValidateAgreesWithParse: every bad value a file can hold is refused by
// Validate in a Config built in Go, naming the same field.
func TestValidateAgreesWithParse(t *testing.T) {
	clearEnv(t)
	top := func(line string) string { return goodYAML + line + "\n" }
	topic := func(keys string) string {
		return "brokers: [\"127.0.0.1:9092\"]\ngroup: orders-service\ntopics:\n  - name: orders\n" + keys + "\n"
	}
	cases := []struct {
		name  string
		yaml  string
		go_   func(*config.Config)
		field string
	}{
		{"no brokers", "group: g\ntopics: [{name: orders, tiers: [{delay: 5s}]}]\n",
			func(c *config.Config) { c.Brokers = nil }, "brokers"},
		{"broker without port", `brokers: ["kafka"]` + "\ngroup: g\ntopics: [{name: orders, tiers: [{delay: 5s}]}]\n",
			func(c *config.Config) { c.Brokers = []string{"kafka"} }, "brokers[0]"},
		{"broker with a scheme", `brokers: ["k:9092", "tcp://kafka:9092"]` + "\ngroup: g\ntopics: [{name: orders, tiers: [{delay: 5s}]}]\n",
			func(c *config.Config) { c.Brokers = []string{"k:9092", "tcp://kafka:9092"} }, "brokers[1]"},
		{"blank client_id", top(`client_id: " "`),
			func(c *config.Config) { c.ClientID = " " }, "client_id"},
		{"no group", "brokers: [\"k:9092\"]\ntopics: [{name: orders, tiers: [{delay: 5s}]}]\n",
			func(c *config.Config) { c.Group = "" }, "group"},
		{"cert without key", top("tls: {cert_file: c.pem}"),
			func(c *config.Config) { c.TLS = &config.TLS{CertFile: "c.pem"} }, "tls.cert_file"},
		{"key without cert", top("tls: {key_file: k.pem}"),
			func(c *config.Config) { c.TLS = &config.TLS{KeyFile: "k.pem"} }, "tls.key_file"},
		{"SASL mechanism", top("sasl: {mechanism: GSSAPI, username: u, password_env: PW}"),
			func(c *config.Config) { c.SASL = &config.SASL{Mechanism: "GSSAPI", Username: "u", PasswordEnv: "PW"} }, "sasl.mechanism"},
		{"SASL user", top("sasl: {mechanism: PLAIN, password_env: PW}"),
			func(c *config.Config) { c.SASL = &config.SASL{Mechanism: "PLAIN", PasswordEnv: "PW"} }, "sasl.username"},
		{"SASL password in password_env", top("sasl: {mechanism: PLAIN, username: u, password_env: hunter2!}"),
			func(c *config.Config) {
				c.SASL = &config.SASL{Mechanism: "PLAIN", Username: "u", PasswordEnv: "hunter2!"}
			}, "sasl.password_env"},
		{"no topics", "brokers: [\"k:9092\"]\ngroup: g\n",
			func(c *config.Config) { c.Topics = nil }, "topics"},
		{"bad topic name", "brokers: [\"k:9092\"]\ngroup: g\ntopics: [{name: 'or ders', tiers: [{delay: 5s}]}]\n",
			func(c *config.Config) { c.Topics[0].Name = "or ders" }, "topics[0].name"},
		{"duplicate topic", "brokers: [\"k:9092\"]\ngroup: g\ntopics: [{name: orders, tiers: [{delay: 5s}]}, {name: orders, tiers: [{delay: 5s}]}]\n",
			func(c *config.Config) { c.Topics = append(c.Topics, c.Topics[0]) }, "topics[1].name"},
		{"no tiers", topic("    tiers: []"),
			func(c *config.Config) { c.Topics[0].Tiers = nil }, "topics[0].tiers"},
		{"delay zero", topic("    tiers: [{delay: 5s}, {delay: 0s}]"),
			func(c *config.Config) { c.Topics[0].Tiers[1].Delay = 0 }, "topics[0].tiers[1].delay"},
		{"delays not increasing", topic("    tiers: [{delay: 5s}, {delay: 5s}]"),
			func(c *config.Config) { c.Topics[0].Tiers[1].Delay = 5 * time.Second }, "topics[0].tiers[1].delay"},
		{"negative attempts", topic("    tiers: [{delay: 5s, attempts: -1}]"),
			func(c *config.Config) { c.Topics[0].Tiers[0].Attempts = -1 }, "topics[0].tiers[0].attempts"},
		{"too many attempts", topic("    tiers: [{delay: 5s, attempts: 2000000}]"),
			func(c *config.Config) { c.Topics[0].Tiers[0].Attempts = 2_000_000 }, "topics[0].tiers[0].attempts"},
		{"DLQ route named dlq", topic("    tiers: [{delay: 5s}]\n    dlq_routes: {dlq: orders.other}"),
			func(c *config.Config) { c.Topics[0].DLQRoutes = map[string]string{"dlq": "orders.other"} }, "topics[0].dlq_routes.dlq"},
		{"DLQ route per tier", topic("    tiers: [{delay: 5s}]\n    dlq_routes: {fraud: '{topic}.{delay}'}"),
			func(c *config.Config) { c.Topics[0].DLQRoutes = map[string]string{"fraud": "{topic}.{delay}"} }, "topics[0].dlq_routes.fraud"},
		{"DLQ route on the DLQ", topic("    tiers: [{delay: 5s}]\n    dlq_routes: {late: orders.dlq}"),
			func(c *config.Config) { c.Topics[0].DLQRoutes = map[string]string{"late": "orders.dlq"} }, "topics[0]"},
		{"DLQ placeholder", topic("    tiers: [{delay: 5s}]\n    dlq: '{topic}.{delay}'"),
			func(c *config.Config) { c.Topics[0].DLQ = "{topic}.{delay}" }, "topics[0].dlq"},
		{"naming without the tier", topic("    tiers: [{delay: 5s}]\n    naming: '{topic}.retry'"),
			func(c *config.Config) { c.Topics[0].Naming = "{topic}.retry" }, "topics[0].naming"},
		{"max_age under the first delay", topic("    tiers: [{delay: 5s}]\n    max_age: 5s"),
			func(c *config.Config) { c.Topics[0].MaxAge = 5 * time.Second }, "topics[0].max_age"},
		{"negative max_age", topic("    tiers: [{delay: 5s}]\n    max_age: -1h"),
			func(c *config.Config) { c.Topics[0].MaxAge = -time.Hour }, "topics[0].max_age"},
		{"retry_after_max under the last delay", topic("    tiers: [{delay: 5s}, {delay: 1h}]\n    retry_after_max: 30m"),
			func(c *config.Config) { c.Topics[0].RetryAfterMax = time.Millisecond }, "topics[0].retry_after_max"},
		{"retry_after_max over 7 days", topic("    tiers: [{delay: 5s}]\n    retry_after_max: 8d"),
			func(c *config.Config) { c.Topics[0].RetryAfterMax = 8 * 24 * time.Hour }, "topics[0].retry_after_max"},
		{"negative retry_after_max", topic("    tiers: [{delay: 5s}]\n    retry_after_max: -1h"),
			func(c *config.Config) { c.Topics[0].RetryAfterMax = -time.Hour }, "topics[0].retry_after_max"},
		{"tier retention too short", topic("    tiers: [{delay: 5s}, {delay: 1h}]\n    retention: {tiers: 1h}"),
			func(c *config.Config) { c.Topics[0].TierRetention = time.Minute }, "topics[0].retention.tiers"},
		{"negative DLQ retention", topic("    tiers: [{delay: 5s}]\n    retention: {dlq: -1h}"),
			func(c *config.Config) { c.Topics[0].DLQRetention = -time.Hour }, "topics[0].retention.dlq"},
		{"a tier named as another topic's DLQ", "brokers: [\"k:9092\"]\ngroup: g\ntopics:\n" +
			"  - {name: a, tiers: [{delay: 5s}], dlq: shared}\n  - {name: b, tiers: [{delay: 5s}], naming: 'shared{index}x', dlq: b.dlq}\n" +
			"  - {name: c, tiers: [{delay: 5s}], dlq: shared}\n",
			func(c *config.Config) {
				c.Topics = []config.Topic{
					{Name: "a", Tiers: []ladder.Tier{{Delay: 5 * time.Second}}, DLQ: "shared"},
					{Name: "c", Tiers: []ladder.Tier{{Delay: 5 * time.Second}}, DLQ: "shared"},
				}
			}, ""},
		{"relay group is the group", top("relay: {group: orders-service}"),
			func(c *config.Config) { c.Relay.Group = "orders-service" }, "relay.group"},
		{"negative fetch_max_wait", top("relay: {fetch_max_wait: -1s}"),
			func(c *config.Config) { c.Relay.FetchMaxWait = -time.Second }, "relay.fetch_max_wait"},
		{"fetch_max_wait below 1ms", top("relay: {fetch_max_wait: 500us}"),
			func(c *config.Config) { c.Relay.FetchMaxWait = 500 * time.Microsecond }, "relay.fetch_max_wait"},
		{"negative hold_bytes", top("relay: {hold_bytes: -1}"),
			func(c *config.Config) { c.Relay.HoldBytes = new(-1) }, "relay.hold_bytes"},
		{"commit_interval too short", top("commit_interval: 1ms"),
			func(c *config.Config) { c.CommitInterval = time.Millisecond }, "commit_interval"},
		{"commit_interval too long", top("commit_interval: 1h"),
			func(c *config.Config) { c.CommitInterval = time.Hour }, "commit_interval"},
		{"session_timeout too short", top("session_timeout: 1s"),
			func(c *config.Config) { c.SessionTimeout = time.Second }, "session_timeout"},
		{"delivery_timeout too long", top("delivery_timeout: 2h"),
			func(c *config.Config) { c.DeliveryTimeout = 2 * time.Hour }, "delivery_timeout"},
		{"negative delivery_timeout", top("delivery_timeout: -1s"),
			func(c *config.Config) { c.DeliveryTimeout = -time.Second }, "delivery_timeout"},
		{"instance_id", top("instance_id: 'pod 0'"),
			func(c *config.Config) { c.InstanceID = "pod 0" }, "instance_id"},
		{"group_protocol", top("group_protocol: eager"),
			func(c *config.Config) { c.GroupProtocol = "eager" }, "group_protocol"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := config.Parse([]byte(tc.yaml)); err == nil {
				t.Fatalf("Parse accepted:\n%s", tc.yaml)
			} else if tc.field != "" && !hasField(err, tc.field) {
				t.Fatalf("Parse's error does not name %s:\n%v", tc.field, err)
			}
			c := goodConfig()
			tc.go_(c)
			err := c.Validate()
			if err == nil {
				t.Fatalf("Validate accepted %+v", c)
			}
			if tc.field != "" && !hasField(err, tc.field) {
				t.Fatalf("Validate's error does not name %s:\n%v", tc.field, err)
			}
			for _, line := range strings.Split(err.Error(), "\n") {
				if strings.HasPrefix(line, "line ") {
					t.Errorf("an error of a Config built in Go has a line: %s", line)
				}
			}
			if tc.field != "" && !strings.HasPrefix(err.Error(), tc.field+": ") {
				t.Errorf("error %q does not start with the field %s", err, tc.field)
			}
		})
	}
}

// hasField reports whether one of the *FieldErrors joined in err is about field.
func hasField(err error, field string) bool {
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	for _, e := range errs {
		var fe *config.FieldError
		if errors.As(e, &fe) && fe.Field == field {
			return true
		}
	}
	return false
}

// TestValidateWithLines: a Config from Parse changed in Go and validated
// again names the line of the field it came from.
func TestValidateWithLines(t *testing.T) {
	clearEnv(t)
	c, err := config.Parse([]byte(goodYAML + "commit_interval: 2s\n"))
	if err != nil {
		t.Fatal(err)
	}
	c.CommitInterval = time.Nanosecond
	err = c.Validate()
	var fe *config.FieldError
	if !errors.As(err, &fe) || fe.Field != "commit_interval" || fe.Line != 7 {
		t.Fatalf("Validate = %v, want commit_interval on line 7", err)
	}
}

func ExampleConfig_Validate() {
	cfg := &config.Config{
		Brokers: []string{"127.0.0.1:9092"},
		Group:   "orders-service",
		Topics: []config.Topic{{
			Name:   "orders",
			Tiers:  []ladder.Tier{{Delay: 5 * time.Second}, {Delay: time.Minute}},
			MaxAge: 5 * time.Second,
		}},
		SessionTimeout: time.Second,
	}
	fmt.Println(cfg.Validate())
	// Output:
	// topics[0].max_age: must be longer than the first tier's delay 5s: a record that fails once would expire before its first retry; got 5s
	// session_timeout: must be between 6s and 30m (default 10s): Kafka brokers refuse a session timeout outside group.min.session.timeout.ms and group.max.session.timeout.ms, 6s and 30m by default; got 1s
}
