package relay_test

import (
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kretry/kretry/internal/kafkatest"
	"github.com/kretry/kretry/relay"
)

// TestRelayJoinsWithSmallFetches: a relay that joins tiers whose heads are
// due in 50s asks for small fetches (256 KiB) until it has paused every
// partition, not for its configured 4 MiB: it needs each partition's head,
// and kgo decompresses a whole fetch into records at once.
func TestRelayJoinsWithSmallFetches(t *testing.T) {
	l := testLadder(t)
	fake, brokers := kafkatest.Fake(t, seedTopics(l, 3, 3, nil)...)
	var mu sync.Mutex
	var asked []int32 // MaxBytes of each fetch request, in order
	fake.ControlKey(int16(kmsg.Fetch), func(req kmsg.Request) (kmsg.Response, error, bool) {
		mu.Lock()
		asked = append(asked, req.(*kmsg.FetchRequest).MaxBytes)
		mu.Unlock()
		return nil, nil, false // observed, handled as usual
	})
	e := newEnvOn(t, fake, []kgo.Opt{kgo.SeedBrokers(brokers...)}, l)
	due := time.Now().Add(50 * time.Second) // the 1m tier: later than the relay holds for
	for p := range int32(3) {
		rec, _ := e.tierRecord(1, p, "k", due)
		e.produce(rec)
	}
	reg := prometheus.NewRegistry()
	m := newMetrics(t, reg)
	e.start(relay.WithRegisterer(reg))
	kafkatest.WaitFor(t, "every partition paused", 20*time.Millisecond, time.Minute, func() bool {
		return gauge(t, m, e.step(1).Name) == 3
	})
	mu.Lock()
	defer mu.Unlock()
	if len(asked) == 0 {
		t.Fatal("no fetch request seen")
	}
	for i, n := range asked {
		if n != 256<<10 {
			t.Errorf("fetch request %d of %d asked for %d bytes; want 256 KiB while nothing is due", i+1, len(asked), n)
		}
	}
}
