package consumer

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/config"
	"github.com/kretry/kretry/internal/healthtrack"
)

// The consumer's producer does not linger (kgo's default waits 10 ms), and
// a user's WithClientOpts may still set a linger of its own.
func TestClientProducerLinger(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []kgo.Opt
		want time.Duration
	}{
		{"default", nil, 0},
		{"the user's", []kgo.Opt{kgo.ProducerLinger(5 * time.Millisecond)}, 5 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := &config.Config{Group: "g", Topics: []config.Topic{{Name: "t"}}}
			c := &Consumer{cfg: cfg, opts: defaultOptions(), health: healthtrack.New("consumer", "g"),
				clientOpts: append([]kgo.Opt{kgo.SeedBrokers("127.0.0.1:1")}, tc.opts...)}
			s := &session{c: c, log: c.opts.logger}
			cl, _, err := s.newClient()
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			if got := cl.OptValue(kgo.ProducerLinger); got != tc.want {
				t.Errorf("ProducerLinger = %v, want %v", got, tc.want)
			}
		})
	}
}
