package main

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/config"
	"github.com/kretry/kretry/consumer"
	"github.com/kretry/kretry/headers"
	"github.com/kretry/kretry/kretrytest"
)

// kretry.yaml parses, every policy as its comments say, and the backoff
// generates the ladder 1s, 2s, 4s, 8s, 16s, 32s, 1m ×2 with jitter 0.2.
func TestConfig(t *testing.T) {
	t.Setenv("KRETRY_BROKERS", "")
	t.Setenv("KRETRY_GROUP", "")
	cfg, err := config.Load("kretry.yaml")
	if err != nil {
		t.Fatal(err)
	}
	tp := cfg.Topics[0]
	if tp.RetryInPlace == nil || *tp.RetryInPlace != (config.RetryInPlace{Attempts: 2, Backoff: 100 * time.Millisecond, MaxBackoff: time.Second}) {
		t.Errorf("retry_in_place %+v, want 2 attempts, 100ms, 1s", tp.RetryInPlace)
	}
	if b := tp.CircuitBreaker; b == nil || *b != (config.CircuitBreaker{FailureRatio: 0.5, MinRecords: 100, Window: 30 * time.Second, OpenFor: time.Minute, HalfOpenRecords: 5}) {
		t.Errorf("circuit_breaker %+v", b)
	}
	ladders, err := cfg.Ladders()
	if err != nil {
		t.Fatal(err)
	}
	l := ladders[0]
	var got []string
	for _, s := range l.Steps() {
		got = append(got, s.Topic+"×"+string(rune('0'+s.Attempts)))
	}
	want := []string{"orders.retry-1s×1", "orders.retry-2s×1", "orders.retry-4s×1", "orders.retry-8s×1",
		"orders.retry-16s×1", "orders.retry-32s×1", "orders.retry-1m×2"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("ladder %v, want %v", got, want)
	}
	if l.Jitter() != 0.2 || l.MaxRetries() != 8 || l.DLQ() != "orders.dlq" {
		t.Errorf("jitter %v, retries %d, DLQ %s; want 0.2, 8, orders.dlq", l.Jitter(), l.MaxRetries(), l.DLQ())
	}
	if rt, ok := l.Route("invalid"); !ok || rt != "orders.invalid" {
		t.Errorf("route invalid -> %q (%v), want orders.invalid", rt, ok)
	}
}

// fakeInventory answers by SKU: FLAKY fails twice with a 503, LIMITED once
// with a 429 and Retry-After 10s, REFUSED with a 422; the rest succeed.
type fakeInventory struct {
	mu    sync.Mutex
	calls map[string][]time.Time
}

func (f *fakeInventory) Reserve(_ context.Context, o order) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls[o.SKU] = append(f.calls[o.SKU], time.Now())
	n := len(f.calls[o.SKU])
	switch {
	case o.SKU == "FLAKY" && n <= 2:
		return &statusError{Code: 503}
	case o.SKU == "LIMITED" && n == 1:
		return &statusError{Code: 429, RetryAfter: 10 * time.Second}
	case o.SKU == "REFUSED":
		return &statusError{Code: 422}
	}
	return nil
}

func (f *fakeInventory) times(sku string) []time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]time.Time(nil), f.calls[sku]...)
}

// syncBuffer is a log sink for goroutines (the hook's included).
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) lines(substr string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for l := range strings.Lines(s.b.String()) {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return out
}

// The example's service, run for real over an in-process Kafka (kretrytest)
// with kretry.yaml, in virtual time.
func TestPolicies(t *testing.T) {
	t.Setenv("KRETRY_BROKERS", "")
	t.Setenv("KRETRY_GROUP", "")
	cfg, err := config.Load("kretry.yaml")
	if err != nil {
		t.Fatal(err)
	}
	synctest.Test(t, func(t *testing.T) {
		var logs syncBuffer
		inv := &fakeInventory{calls: map[string][]time.Time{}}
		svc := &service{inv: inv, log: slog.New(slog.NewTextHandler(&logs, nil))}
		// What consumer.Attempt told the handler, per record key.
		var mu sync.Mutex
		attempts := map[string][]int{}
		h := consumer.HandlerFunc(func(ctx context.Context, rec *kgo.Record) error {
			mu.Lock()
			attempts[string(rec.Key)] = append(attempts[string(rec.Key)], consumer.Attempt(rec))
			mu.Unlock()
			return svc.handle(ctx, rec)
		})

		k := kretrytest.New(t, cfg)
		if err := k.Run(h, svc.options()...); err != nil {
			t.Fatal(err)
		}
		rec := func(key, value string) *kgo.Record { return &kgo.Record{Key: []byte(key), Value: []byte(value)} }
		ok := rec("ok", `{"id": "1", "sku": "A", "qty": 1}`)
		flaky := rec("flaky", `{"id": "2", "sku": "FLAKY", "qty": 1}`)
		limited := rec("limited", `{"id": "3", "sku": "LIMITED", "qty": 1}`)
		bad := rec("bad", `{"id": "4", "sku": `)
		refused := rec("refused", `{"id": "5", "sku": "REFUSED", "qty": 1}`)
		if err := k.Produce(t.Context(), ok, flaky, limited, bad, refused); err != nil {
			t.Fatal(err)
		}
		fate := func(r *kgo.Record) kretrytest.Fate {
			f, err := k.Fate(t.Context(), r)
			if err != nil {
				t.Fatalf("%s: %v", r.Key, err)
			}
			return f
		}
		attemptsOf := func(key string) []int {
			mu.Lock()
			defer mu.Unlock()
			return attempts[key]
		}

		if f := fate(ok); !f.Handled || len(f.Attempts) != 1 {
			t.Errorf("ok: %+v, want handled at once", f)
		}

		// retry_in_place: two 503s are retried in the partition's goroutine,
		// no tier, and consumer.Attempt counts those calls: 1, 2, 3.
		if f := fate(flaky); !f.Handled || len(f.Tiers()) != 0 {
			t.Errorf("flaky: handled %v, tiers %v; want handled in place, no tier", f.Handled, f.Tiers())
		}
		if got := attemptsOf("flaky"); len(got) != 3 || got[0] != 1 || got[1] != 2 || got[2] != 3 {
			t.Errorf("flaky: consumer.Attempt %v, want [1 2 3]", got)
		}

		// RetryAfter(10s): no in-place retry (10s > 100ms), the first tier of
		// at least 10s (retry-16s), re-fed 10s after the failure, not 16s.
		f := fate(limited)
		if !f.Handled || strings.Join(f.Tiers(), ",") != "retry-16s" {
			t.Errorf("limited: handled %v, tiers %v; want handled from retry-16s", f.Handled, f.Tiers())
		}
		if at := inv.times("LIMITED"); len(at) != 2 {
			t.Errorf("limited: %d calls of the inventory, want 2", len(at))
		} else if d := at[1].Sub(at[0]); d < 10*time.Second || d >= 16*time.Second {
			t.Errorf("limited: retried %v after the 429, want from 10s (Retry-After) and before 16s (the tier's delay)", d)
		}
		// A RetryAfter counts as an attempt of the tier it picks: retry-16s
		// takes the ladder's 5th failure, so the call from it is attempt 6,
		// though only one call failed (the README's Retry-After table).
		if got := attemptsOf("limited"); len(got) != 2 || got[0] != 1 || got[1] != 6 {
			t.Errorf("limited: consumer.Attempt %v, want [1 6]", got)
		}
		// The handler logged the retry with RecordMetadata's fields.
		if l := logs.lines(`msg="retrying order" key=limited`); len(l) != 1 ||
			!strings.Contains(l[0], "attempt=6 tier=retry-16s") || !strings.Contains(l[0], `last_error="inventory: HTTP 429 Too Many Requests"`) {
			t.Errorf("limited: retry log lines %q, want one with attempt=6 tier=retry-16s and the 429", l)
		}

		// DeadLetterTo("invalid"): bad JSON and a 422 go straight to
		// orders.invalid, reason permanent, with kretry-route: invalid.
		for _, r := range []*kgo.Record{bad, refused} {
			f := fate(r)
			if f.DeadLetter == nil || f.DeadLetter.Topic != "orders.invalid" || f.Reason != headers.ReasonPermanent || len(f.Attempts) != 1 {
				t.Errorf("%s: %+v; want dead-lettered to orders.invalid at once, reason permanent", r.Key, f)
				continue
			}
			route := ""
			for _, hd := range f.DeadLetter.Headers {
				if hd.Key == headers.HeaderRoute {
					route = string(hd.Value)
				}
			}
			if route != "invalid" {
				t.Errorf("%s: kretry-route %q, want invalid", r.Key, route)
			}
		}

		// The dead-letter hook alerted once for each, after the write.
		var alerts []string
		for range 60 {
			if alerts = logs.lines("ALERT order dead-lettered"); len(alerts) >= 2 {
				break
			}
			time.Sleep(time.Second)
		}
		if len(alerts) != 2 || !strings.Contains(strings.Join(alerts, ""), "key=bad topic=orders partition=0") ||
			!strings.Contains(strings.Join(alerts, ""), "key=refused topic=orders") ||
			!strings.Contains(alerts[0], "reason=permanent") {
			t.Errorf("alerts %q, want one per dead letter (bad, refused), reason permanent", alerts)
		}
	})
}
