package main

import (
	"strings"
	"testing"
)

// TestBadFlagValuesExit2 are the CLI reproductions of issue 14 for the
// non-dlq commands: a bad or empty flag value is bad usage (exit 2) caught
// before anything starts, not a failure (exit 1) or a broker that starts
// anyway.
func TestBadFlagValuesExit2(t *testing.T) {
	noEnvOverrides(t)
	good := writeConfig(t, []string{"127.0.0.1:9092"}, "orders", "")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"relay", "-c", good, "--metrics", "127.0.0.1:99999"},
			`kretry: --metrics "127.0.0.1:99999": the port must be a number from 0 to 65535 (0 picks a free one), e.g. 127.0.0.1:9100: see "kretry relay --help"`},
		{[]string{"relay", "-c", good, "--metrics", "9100"},
			`kretry: --metrics "9100": give host:port, e.g. 127.0.0.1:9100 (:9100 listens on every interface)`},
		{[]string{"relay", "-c", good, "--metrics", "bad host:9100"},
			`kretry: --metrics "bad host:9100": the host must be an IP address or a host name`},
		{[]string{"relay", "-c", good, "--metrics", ""},
			`kretry: --metrics "": give an address such as 127.0.0.1:9100, or leave --metrics out`},
		{[]string{"broker", "--topic", "bad/topic"},
			`kretry: --topic "bad/topic": must be a Kafka topic name: letters, digits, '.', '_' and '-', at most 249 characters, not "." or "..": see "kretry broker --help"`},
		{[]string{"broker", "--topic", "..:3"}, `kretry: --topic "..:3": must be a Kafka topic name`},
		{[]string{"broker", "--topic", ""}, `kretry: --topic "": use NAME or NAME:PARTITIONS`},
		{[]string{"topics", "plan", "-c", good, "--brokers", ""},
			`kretry: --brokers has an empty value: give one or more host:port separated by commas, e.g. --brokers 127.0.0.1:9092, or leave it out: see "kretry topics plan --help"`},
		{[]string{"topics", "apply", "-c", good, "--brokers", "127.0.0.1:9092,,x:1"},
			`kretry: --brokers has an empty value: give one or more host:port separated by commas`},
		{[]string{"relay", "-c", good, "--brokers", "localhost"},
			`kretry: --brokers: must be a broker address "host:port" with a port from 1 to 65535, e.g. "127.0.0.1:9092": the port is missing, got "localhost"`},
		{[]string{"config", "check", "-c", good, "--brokers", "http://x:1"},
			`kretry: --brokers: must be a broker address "host:port" with a port from 1 to 65535, e.g. "127.0.0.1:9092": no scheme (http://), got "http://x:1"`},
		{[]string{"config", "check", "-c", ""}, `kretry: --config is empty: give the config file, e.g. -c kretry.yaml, or leave it out for kretry.yaml`},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			r := kretry(t, tc.args...)
			if r.code != 2 || !strings.HasPrefix(r.stderr, tc.want) || strings.Count(r.stderr, "\n") != 1 || r.stdout != "" {
				t.Errorf("want exit 2 and stderr starting %q; got %v", tc.want, r)
			}
		})
	}
}

func TestGoodFlagValues(t *testing.T) {
	noEnvOverrides(t)
	good := writeConfig(t, []string{"127.0.0.1:9092"}, "orders", "")
	for _, addr := range []string{"127.0.0.1:0", ":9100", "[::1]:9100", "localhost:9100"} {
		if err := checkListenAddr(addr); err != nil {
			t.Errorf("--metrics %s: %v", addr, err)
		}
	}
	r := kretry(t, "config", "check", "-c", good, "--brokers", "10.0.0.1:9092, kafka-2:9093")
	if r.code != 0 || !strings.Contains(r.stdout, "brokers  10.0.0.1:9092,kafka-2:9093\n") {
		t.Errorf("config check --brokers: %v", r)
	}
}
