package kretrytest_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/config"
	"github.com/kretry/kretry/consumer"
	"github.com/kretry/kretry/headers"
	"github.com/kretry/kretry/kretrytest"
)

const ladderYAML = `
brokers: ["127.0.0.1:9092"]   # replaced by the cluster's
group: orders-service
topics:
  - name: orders
    tiers:
      - delay: 5s
      - delay: 1m
      - delay: 10m
        attempts: 2
`

func parse(t *testing.T) *config.Config {
	t.Helper()
	t.Setenv(config.EnvBrokers, "")
	t.Setenv(config.EnvGroup, "")
	cfg, err := config.Parse([]byte(ladderYAML))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

var errDown = errors.New("gateway down")

// The fates a handler can give a record, each in virtual time: the whole
// ladder (5s, 1m, 2 × 10m) passes in a blink.
func TestFates(t *testing.T) {
	cases := []struct {
		name string
		// handle is the handler's answer to its nth call (1-based).
		handle      func(n int) error
		wantHandled bool
		wantTiers   []string
		wantReason  headers.Reason
	}{
		{"handled at once", func(int) error { return nil }, true, nil, ""},
		{"handled at the third attempt", func(n int) error {
			if n < 3 {
				return errDown
			}
			return nil
		}, true, []string{"retry-5s", "retry-1m"}, ""},
		{"exhausted", func(int) error { return errDown }, false,
			[]string{"retry-5s", "retry-1m", "retry-10m", "retry-10m"}, headers.ReasonExhausted},
		{"permanent", func(int) error { return consumer.Permanent(errDown) }, false, nil, headers.ReasonPermanent},
		{"panic", func(int) error { panic("nil map") }, false, nil, headers.ReasonPanic},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := parse(t)
			synctest.Test(t, func(t *testing.T) {
				start := time.Now()
				k := kretrytest.New(t, cfg)
				var mu sync.Mutex
				calls := 0
				err := k.Run(consumer.HandlerFunc(func(context.Context, *kgo.Record) error {
					mu.Lock()
					calls++
					n := calls
					mu.Unlock()
					return tc.handle(n)
				}))
				if err != nil {
					t.Fatal(err)
				}
				rec := &kgo.Record{Key: []byte("order-1"), Value: []byte(`{"amount_cents": 1200}`)}
				if err := k.Produce(t.Context(), rec); err != nil {
					t.Fatal(err)
				}
				fate, err := k.Fate(t.Context(), rec)
				if err != nil {
					t.Fatal(err)
				}
				if fate.Handled != tc.wantHandled || !slices.Equal(fate.Tiers(), tc.wantTiers) || fate.Reason != tc.wantReason {
					t.Errorf("fate: handled %v, tiers %v, reason %q; want %v, %v, %q",
						fate.Handled, fate.Tiers(), fate.Reason, tc.wantHandled, tc.wantTiers, tc.wantReason)
				}
				if want := len(tc.wantTiers) + 1; len(fate.Attempts) != want {
					t.Errorf("%d attempts, want %d: %+v", len(fate.Attempts), want, fate.Attempts)
				}
				if (fate.DeadLetter != nil) != (tc.wantReason != "") {
					t.Errorf("dead letter %v with reason %q", fate.DeadLetter, tc.wantReason)
				} else if fate.DeadLetter != nil && (fate.DeadLetter.Topic != "orders.dlq" || string(fate.DeadLetter.Key) != "order-1") {
					t.Errorf("dead letter in %s with key %q, want orders.dlq and order-1", fate.DeadLetter.Topic, fate.DeadLetter.Key)
				}
				// Never early: the ladder's delays passed, in virtual time.
				var least time.Duration
				for _, tier := range fate.Tiers() {
					d, _ := time.ParseDuration(strings.TrimPrefix(tier, "retry-"))
					least += d
				}
				if took := time.Since(start); took < least {
					t.Errorf("the ladder took %v of virtual time, less than its delays %v", took, least)
				}
			})
		})
	}
}

// Records are told apart: two records, one handled and one dead-lettered.
func TestFateOfEachRecord(t *testing.T) {
	cfg := parse(t)
	synctest.Test(t, func(t *testing.T) {
		k := kretrytest.New(t, cfg, kretrytest.Partitions(3))
		if err := k.Run(consumer.HandlerFunc(func(_ context.Context, r *kgo.Record) error {
			if string(r.Value) == "bad" {
				return consumer.Permanent(errDown)
			}
			return nil
		})); err != nil {
			t.Fatal(err)
		}
		good, bad := &kgo.Record{Key: []byte("a"), Value: []byte("good")}, &kgo.Record{Key: []byte("b"), Value: []byte("bad")}
		if err := k.Produce(t.Context(), good, bad); err != nil {
			t.Fatal(err)
		}
		if f, err := k.Fate(t.Context(), bad); err != nil || f.Reason != headers.ReasonPermanent {
			t.Errorf("bad record: %+v, %v", f, err)
		}
		if f, err := k.Fate(t.Context(), good); err != nil || !f.Handled || f.DeadLetter != nil {
			t.Errorf("good record: %+v, %v", f, err)
		}
	})
}

// Misuse is an error that says what to do, not a hang.
func TestMisuse(t *testing.T) {
	cfg := parse(t)
	synctest.Test(t, func(t *testing.T) {
		k := kretrytest.New(t, cfg)
		rec := &kgo.Record{Value: []byte("x")}
		if err := k.Produce(t.Context(), rec); err != nil {
			t.Fatal(err)
		}
		if _, err := k.Fate(t.Context(), rec); err == nil || !strings.Contains(err.Error(), "call Run first") {
			t.Errorf("Fate without Run = %v, want it to say to call Run", err)
		}
		if err := k.Produce(t.Context(), &kgo.Record{Topic: "orders.dlq"}); err == nil {
			t.Error("Produce to a DLQ succeeded, want an error")
		}
		h := consumer.HandlerFunc(func(context.Context, *kgo.Record) error { return nil })
		if err := k.Run(h); err != nil {
			t.Fatal(err)
		}
		if err := k.Run(h); err == nil {
			t.Error("a second Run succeeded, want an error")
		}
	})

	bad := *cfg
	bad.SessionTimeout = time.Second
	if _, err := kretrytest.Start(&bad); err == nil || !strings.Contains(err.Error(), "session_timeout") {
		t.Errorf("Start with a bad config = %v, want the field's error", err)
	}
	if _, err := kretrytest.Start(cfg, kretrytest.Partitions(0)); err == nil {
		t.Error("Start with 0 partitions succeeded")
	}
}

// A handler that never finishes a record makes Fate fail after the ladder's
// delays and a minute, not hang.
func TestFateIsBounded(t *testing.T) {
	cfg := parse(t)
	synctest.Test(t, func(t *testing.T) {
		k := kretrytest.New(t, cfg)
		stuck := make(chan struct{})
		if err := k.Run(consumer.HandlerFunc(func(ctx context.Context, _ *kgo.Record) error {
			select {
			case <-stuck:
			case <-ctx.Done():
			}
			return ctx.Err()
		}), consumer.WithGracePeriod(time.Second)); err != nil {
			t.Fatal(err)
		}
		rec := &kgo.Record{Value: []byte("x")}
		if err := k.Produce(t.Context(), rec); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		_, err := k.Fate(context.Background(), rec)
		if err == nil || !strings.Contains(err.Error(), "neither handled nor dead-lettered") {
			t.Errorf("Fate = %v, want an error", err)
		}
		if took, bound := time.Since(start), 5*time.Second+time.Minute+20*time.Minute+time.Minute; took < bound {
			t.Errorf("Fate gave up after %v, before the ladder's delays and a minute, %v", took, bound)
		}
		close(stuck)
	})
}

// A consumer that stops with an error ends Fate at once with that error,
// and Close returns it.
func TestConsumerErrorEndsFate(t *testing.T) {
	cfg := parse(t)
	synctest.Test(t, func(t *testing.T) {
		k, err := kretrytest.Start(cfg)
		if err != nil {
			t.Fatal(err)
		}
		adm, err := kadm.NewOptClient(k.ClientOpts()...)
		if err != nil {
			t.Fatal(err)
		}
		defer adm.Close()
		if _, err := adm.DeleteTopic(t.Context(), "orders.dlq"); err != nil {
			t.Fatal(err)
		}
		if err := k.Run(consumer.HandlerFunc(func(context.Context, *kgo.Record) error { return nil })); err != nil {
			t.Fatal(err)
		}
		rec := &kgo.Record{Value: []byte("x")}
		if err := k.Produce(t.Context(), rec); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		if _, err := k.Fate(t.Context(), rec); err == nil || !strings.Contains(err.Error(), "orders.dlq") {
			t.Errorf("Fate = %v, want the consumer's error naming the missing DLQ", err)
		}
		if took := time.Since(start); took > time.Minute {
			t.Errorf("Fate took %v of virtual time to see that the consumer stopped", took)
		}
		if err := k.Close(); err == nil || !strings.Contains(err.Error(), "orders.dlq") {
			t.Errorf("Close = %v, want the consumer's error", err)
		}
	})
}
