package config_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/config"
	"github.com/kretry/kretry/ladder"
)

// TestGroupProtocolCase holds a file and a Config built in Go to the same
// rule: group_protocol is classic or consumer in any case, and a consumer in
// any case selects KIP-848; anything else is an error that names the key and
// the allowed values.
func TestGroupProtocolCase(t *testing.T) {
	for _, tc := range []struct {
		value string
		want  string // the protocol; "" for an error
	}{
		{"classic", config.GroupProtocolClassic},
		{"Classic", config.GroupProtocolClassic},
		{"consumer", config.GroupProtocolConsumer},
		{"Consumer", config.GroupProtocolConsumer},
		{"CONSUMER", config.GroupProtocolConsumer},
		{"kip848", ""},
		{"consumers", ""},
	} {
		t.Run(tc.value, func(t *testing.T) {
			check := func(path string, got string, err error) {
				t.Helper()
				if tc.want == "" {
					var fe *config.FieldError
					if !errors.As(err, &fe) || fe.Field != "group_protocol" ||
						!strings.Contains(err.Error(), "must be classic") || !strings.Contains(err.Error(), "or consumer") {
						t.Errorf("%s: error %v, want one on group_protocol naming classic and consumer", path, err)
					}
					return
				}
				if err != nil {
					t.Fatalf("%s: %v", path, err)
				}
				if got != tc.want {
					t.Errorf("%s: GroupProtocol %q, want %q", path, got, tc.want)
				}
			}

			clearEnv(t)
			c, err := config.Parse([]byte(membersBase + "group_protocol: " + tc.value + "\n"))
			var got string
			if err == nil {
				got = c.GroupProtocol
			}
			check("file", got, err)

			built := config.Config{Brokers: []string{"127.0.0.1:9092"}, Group: "g", GroupProtocol: tc.value,
				Topics: []config.Topic{{Name: "t", Tiers: []ladder.Tier{{Delay: time.Second}}}}}
			err = built.Validate()
			if err == nil {
				if serverSide(t, &built) {
					got = config.GroupProtocolConsumer
				} else {
					got = config.GroupProtocolClassic
				}
				if built.SetDefaults(); built.GroupProtocol != tc.want {
					t.Errorf("Go: SetDefaults leaves GroupProtocol %q, want %q", built.GroupProtocol, tc.want)
				}
			}
			check("Go", got, err)
		})
	}
}

// serverSide reports whether c's group options make a franz-go client use
// KIP-848's server-side assignment.
func serverSide(t *testing.T, c *config.Config) bool {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers("127.0.0.1:1"), kgo.ConsumerGroup("g"), kgo.ConsumeTopics("t")}, c.GroupOpts()...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	return cl.OptValue("ServerSideBalancer").(bool)
}
