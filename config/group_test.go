package config_test

import (
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/config"
)

const membersBase = "brokers: [\"127.0.0.1:9092\"]\ngroup: g\ntopics: [{name: t, tiers: [{delay: 5s}]}]\n"

// TestMemberKeys reads the top-level keys of issue 13: exactly_once,
// commit_interval, session_timeout, instance_id, group_protocol and
// delivery_timeout, with their defaults, bounds and KRETRY_INSTANCE_ID.
func TestMemberKeys(t *testing.T) {
	type want struct {
		eos      bool
		commit   time.Duration
		session  time.Duration
		instance string
		protocol string
		delivery time.Duration
	}
	def := want{false, time.Second, 10 * time.Second, "", "classic", 30 * time.Second}
	with := func(f func(*want)) want { w := def; f(&w); return w }
	cases := []struct {
		name    string
		yaml    string // after membersBase
		env     string // KRETRY_INSTANCE_ID
		want    want
		wantErr string // the whole error when not ""
	}{
		{name: "defaults", want: def},
		{name: "all set", yaml: "exactly_once: true\ncommit_interval: 250ms\nsession_timeout: 45s\ninstance_id: orders-0\ngroup_protocol: consumer\ndelivery_timeout: 2m\n",
			want: want{true, 250 * time.Millisecond, 45 * time.Second, "orders-0", "consumer", 2 * time.Minute}},
		{name: "exactly_once false", yaml: "exactly_once: false\n", want: def},
		{name: "group_protocol any case", yaml: "group_protocol: Classic\n", want: def},
		{name: "session_timeout at the bounds", yaml: "session_timeout: 6s\n", want: with(func(w *want) { w.session = 6 * time.Second })},
		{name: "session_timeout 30m", yaml: "session_timeout: 30m\n", want: with(func(w *want) { w.session = 30 * time.Minute })},
		{name: "KRETRY_INSTANCE_ID overrides", yaml: "instance_id: from-file\n", env: "pod-7", want: with(func(w *want) { w.instance = "pod-7" })},
		{name: "KRETRY_INSTANCE_ID alone", env: " pod-7 ", want: with(func(w *want) { w.instance = "pod-7" })},
		{name: "instance_id a number", yaml: "instance_id: 7\n", want: with(func(w *want) { w.instance = "7" })},

		{name: "exactly_once not a bool", yaml: "exactly_once: yes please\n",
			wantErr: `line 4: exactly_once: must be true or false (default false), got "yes please"`},
		{name: "commit_interval zero", yaml: "commit_interval: 0s\n",
			wantErr: "line 4: commit_interval: must be > 0 (default 1s), got 0s"},
		{name: "commit_interval absurdly short", yaml: "commit_interval: 1ns\n",
			wantErr: "line 4: commit_interval: must be between 100ms and 10m (default 1s): how often marked offsets are committed, which bounds the work a crash repeats; got 1ns"},
		{name: "commit_interval absurdly long", yaml: "commit_interval: 365d\n",
			wantErr: "line 4: commit_interval: must be between 100ms and 10m (default 1s): how often marked offsets are committed, which bounds the work a crash repeats; got 365d"},
		{name: "commit_interval under franz-go's 100ms", yaml: "commit_interval: 50ms\n",
			wantErr: "line 4: commit_interval: must be between 100ms and 10m (default 1s): how often marked offsets are committed, which bounds the work a crash repeats; got 50ms"},
		{name: "commit_interval not a duration", yaml: "commit_interval: often\n",
			wantErr: "line 4: commit_interval: must be a duration such as 500ms, 5s, 1m, 1h30m or 14d, got often"},
		{name: "session_timeout under the broker minimum", yaml: "session_timeout: 3s\n",
			wantErr: "line 4: session_timeout: must be between 6s and 30m (default 10s): Kafka brokers refuse a session timeout outside group.min.session.timeout.ms and group.max.session.timeout.ms, 6s and 30m by default; got 3s"},
		{name: "session_timeout over the broker maximum", yaml: "session_timeout: 31m\n",
			wantErr: "line 4: session_timeout: must be between 6s and 30m (default 10s): Kafka brokers refuse a session timeout outside group.min.session.timeout.ms and group.max.session.timeout.ms, 6s and 30m by default; got 31m"},
		{name: "delivery_timeout negative", yaml: "delivery_timeout: -5s\n",
			wantErr: "line 4: delivery_timeout: must be > 0 (default 30s), got -5s"},
		{name: "delivery_timeout too long", yaml: "delivery_timeout: 2h\n",
			wantErr: "line 4: delivery_timeout: must be between 1ms and 1h (default 30s): how long a produced record waits for its acknowledgement before it fails; got 2h"},
		{name: "group_protocol unknown", yaml: "group_protocol: kip848\n",
			wantErr: `line 4: group_protocol: must be classic (the default, assignment by the clients) or consumer (KIP-848 assignment by the broker, Kafka 4.0+), got "kip848"`},
		{name: "instance_id empty", yaml: "instance_id: \"\"\n",
			wantErr: `line 4: instance_id: must be a Kafka group instance id: 1 to 249 letters, digits, '.', '_' and '-', not "." or ".."; give each instance its own, e.g. the pod name in KRETRY_INSTANCE_ID, got ""`},
		{name: "instance_id with a control character", yaml: "instance_id: \"a\\x1b[2Jb\"\n",
			wantErr: `line 4: instance_id: must be a Kafka group instance id: 1 to 249 letters, digits, '.', '_' and '-', not "." or ".."; give each instance its own, e.g. the pod name in KRETRY_INSTANCE_ID, got "a\x1b[2Jb"`},
		{name: "instance_id too long, cut in the message", yaml: "instance_id: " + strings.Repeat("x", 250) + "\n",
			wantErr: `line 4: instance_id: must be a Kafka group instance id: 1 to 249 letters, digits, '.', '_' and '-', not "." or ".."; give each instance its own, e.g. the pod name in KRETRY_INSTANCE_ID, got "` + strings.Repeat("x", 128) + `"… (250 bytes)`},
		{name: "KRETRY_INSTANCE_ID bad", env: "pod/7",
			wantErr: `KRETRY_INSTANCE_ID: must be a Kafka group instance id: 1 to 249 letters, digits, '.', '_' and '-', not "." or ".."; give each instance its own, e.g. the pod name in KRETRY_INSTANCE_ID, got "pod/7"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			clearEnv(t)
			t.Setenv(config.EnvInstanceID, tc.env)
			c, err := config.Parse([]byte(membersBase + tc.yaml))
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("error:\n%v\nwant:\n%s", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			got := want{c.ExactlyOnce, c.CommitInterval, c.SessionTimeout, c.InstanceID, c.GroupProtocol, c.DeliveryTimeout}
			if got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestHeartbeatInterval(t *testing.T) {
	for _, tc := range []struct{ session, want time.Duration }{
		{0, time.Second}, // a Config built by hand: the 10s default
		{6 * time.Second, 600 * time.Millisecond},
		{10 * time.Second, time.Second},
		{30 * time.Second, 3 * time.Second},
		{30 * time.Minute, 3 * time.Second},
	} {
		c := &config.Config{SessionTimeout: tc.session}
		if got := c.HeartbeatInterval(); got != tc.want {
			t.Errorf("session %v: heartbeat %v, want %v", tc.session, got, tc.want)
		}
	}
}

// TestTransactionTimeout: three times the session timeout, at least the
// commit interval plus MinTransactionMargin.
func TestTransactionTimeout(t *testing.T) {
	for _, tc := range []struct{ session, commit, want time.Duration }{
		{0, 0, 30 * time.Second}, // a Config built by hand: the 10s and 1s defaults
		{6 * time.Second, time.Second, 18 * time.Second},
		{6 * time.Second, 10 * time.Second, 20 * time.Second},
		{30 * time.Second, time.Second, 90 * time.Second},
		{10 * time.Second, time.Minute, 70 * time.Second},
	} {
		c := &config.Config{SessionTimeout: tc.session, CommitInterval: tc.commit}
		if got := c.TransactionTimeout(); got != tc.want {
			t.Errorf("session %v, commit %v: transaction timeout %v, want %v", tc.session, tc.commit, got, tc.want)
		}
	}
}

// TestGroupOpts checks what the options set on a real franz-go client.
func TestGroupOpts(t *testing.T) {
	cases := []struct {
		name string
		cfg  config.Config
		want map[string]any // kgo option name → value as OptValue reports it
	}{
		{"a Config built by hand gets the defaults", config.Config{}, map[string]any{
			"SessionTimeout": 10 * time.Second, "HeartbeatInterval": time.Second, "AutoCommitInterval": time.Second,
			"InstanceID": "", "ServerSideBalancer": false, "TransactionTimeout": 30 * time.Second,
		}},
		{"all set", config.Config{SessionTimeout: 20 * time.Second, CommitInterval: 200 * time.Millisecond, InstanceID: "pod-1", GroupProtocol: config.GroupProtocolConsumer}, map[string]any{
			"SessionTimeout": 20 * time.Second, "HeartbeatInterval": 2 * time.Second, "AutoCommitInterval": 200 * time.Millisecond,
			"InstanceID": "pod-1", "ServerSideBalancer": true, "TransactionTimeout": time.Minute,
		}},
		{"the shortest commit_interval", config.Config{CommitInterval: config.MinCommitInterval}, map[string]any{
			"AutoCommitInterval": config.MinCommitInterval,
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			opts := append([]kgo.Opt{kgo.SeedBrokers("127.0.0.1:1"), kgo.ConsumerGroup("g"), kgo.ConsumeTopics("t")}, tc.cfg.GroupOpts()...)
			opts = append(opts, tc.cfg.ProducerOpts()...)
			cl, err := kgo.NewClient(opts...)
			if err != nil {
				t.Fatalf("kgo.NewClient: %v", err)
			}
			defer cl.Close()
			for name, want := range tc.want {
				got := cl.OptValue(name)
				if p, ok := got.(*string); ok { // InstanceID: nil is dynamic membership
					got = ""
					if p != nil {
						got = *p
					}
				}
				if got != want {
					t.Errorf("%s = %v (%T), want %v", name, got, got, want)
				}
			}
			if got := cl.OptValue("RecordDeliveryTimeout"); got != 30*time.Second {
				t.Errorf("RecordDeliveryTimeout = %v, want 30s", got)
			}
			bal := cl.OptValue("Balancers").([]kgo.GroupBalancer)
			if tc.cfg.GroupProtocol == config.GroupProtocolConsumer && (len(bal) != 1 || bal[0].ProtocolName() != "sticky") {
				t.Errorf("balancers %v: KIP-848 needs the sticky or range balancer first", bal)
			}
		})
	}
}
