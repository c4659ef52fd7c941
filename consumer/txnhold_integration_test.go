//go:build integration

package consumer_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/consumer"
	"github.com/kretry/kretry/internal/kafkatest"
)

// Exactly once on the real broker, while the transaction coordinator does
// not answer (a broker killed, the coordinator failing over): the
// transaction at the fault fails and its records are handled again after
// the outage, once. Before the hold, every transaction of the outage handed
// the same records to the handler again and aborted (a record handled once
// per commit interval and retry budget of the outage: 4 to 6 times in 8s),
// and each failed end was an ERROR line.
func TestExactlyOnceHoldsRecordsWhileTheCoordinatorIsDown(t *testing.T) {
	verifyNoLeaks(t)
	b := newRealBroker(t, 1)
	b.cfg.ExactlyOnce = true
	var mu sync.Mutex
	calls := map[string]int{}
	h := consumer.HandlerFunc(func(_ context.Context, r *kgo.Record) error {
		mu.Lock()
		calls[string(r.Key)]++
		mu.Unlock()
		return nil
	})
	var outage kafkatest.TxnCoordinatorOutage
	outage.Start() // before the consumer has a producer ID
	var logs kafkatest.Buffer
	reg := prometheus.NewRegistry()
	stop := b.run(h, consumer.WithRelay(false), consumer.WithRegisterer(reg),
		consumer.WithLogger(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))),
		// A coordinator that does not answer fails a request within
		// a second, as a dead broker refusing connections does.
		consumer.WithClientOpts(kgo.Dialer(outage.DialContext), kgo.RequestRetries(2),
			kgo.RetryBackoffFn(func(int) time.Duration { return 100 * time.Millisecond })))

	ctx := context.Background()
	produce := func(from, n int) {
		for i := from; i < from+n; i++ {
			if err := b.cl.ProduceSync(ctx, &kgo.Record{Topic: b.ladder.Topic(), Key: []byte(fmt.Sprint("k", i))}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
	}
	handled := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(calls)
	}
	produce(0, 20)
	waitReal(t, 60*time.Second, "the records handled in the outage", func() bool { return handled() == 20 })
	time.Sleep(8 * time.Second) // the outage goes on
	outage.Stop()
	waitReal(t, 90*time.Second, "every record committed after the outage", func() bool {
		return b.committedSum(b.cfg.Group, b.ladder.Topic()) == 20
	})
	if err := stop(); err != nil {
		t.Errorf("Run: %v", err)
	}
	if outage.Cuts() == 0 {
		t.Fatal("the outage broke no request, so this tested nothing")
	}

	mu.Lock()
	for i := range 20 {
		// In the transaction at the fault, then after it.
		if k := fmt.Sprint("k", i); calls[k] > 2 {
			t.Errorf("%s handled %d times, want at most 2", k, calls[k])
		}
	}
	mu.Unlock()

	text := logs.String()
	if n := strings.Count(text, "level=ERROR msg=\"kretry consumer transaction failed"); n != 1 {
		t.Errorf("%d ERROR lines of a failed transaction, want 1 (the first of the outage); the log:\n%s", n, text)
	}
	if !strings.Contains(text, "kretry consumer transactions commit again") {
		t.Errorf("no line that transactions commit again; the log:\n%s", text)
	}
	if n := counterValue(t, reg, "kretry_transactions_failed_total", map[string]string{"component": "consumer", "group": b.cfg.Group}); n < 1 {
		t.Errorf("kretry_transactions_failed_total = %v, want at least 1", n)
	}
}
