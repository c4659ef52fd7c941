package config_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kretry/kretry/config"
	"github.com/kretry/kretry/ladder"
)

// backoff: generates the ladder, in a file and in Go alike: 8 attempts from
// 1s doubling, capped at 1m, are seven topics, the last taking two attempts,
// with the jitter on every step.
func TestBackoffLadder(t *testing.T) {
	clearEnv(t)
	c, err := config.Load("../testdata/config/good/backoff.yaml")
	if err != nil {
		t.Fatal(err)
	}
	goCfg := &config.Config{Brokers: []string{"127.0.0.1:9092"}, Group: "orders-service", Topics: []config.Topic{{
		Name: "orders", Backoff: &ladder.Backoff{Initial: time.Second, Max: time.Minute, Attempts: 8, Jitter: 0.2},
	}}}
	goBackoff := *goCfg.Topics[0].Backoff
	goCfg.SetDefaults()
	if err := goCfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if *goCfg.Topics[0].Backoff != *c.Topics[0].Backoff || c.Topics[0].Backoff.Multiplier != 2 {
		t.Errorf("Go %+v, file %+v: want the same backoff, multiplier 2", *goCfg.Topics[0].Backoff, *c.Topics[0].Backoff)
	}
	if goBackoff.Multiplier != 0 {
		t.Error("SetDefaults wrote the caller's Backoff")
	}
	for _, cfg := range []*config.Config{c, goCfg} {
		ls, err := cfg.Ladders()
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, s := range ls[0].Steps() {
			got = append(got, s.Topic+"×"+string(rune('0'+s.Attempts)))
			if s.Jitter != 0.2 {
				t.Errorf("step %s: jitter %v, want 0.2", s.Name, s.Jitter)
			}
		}
		want := "orders.retry-1s×1 orders.retry-2s×1 orders.retry-4s×1 orders.retry-8s×1 orders.retry-16s×1 orders.retry-32s×1 orders.retry-1m×2"
		if strings.Join(got, " ") != want {
			t.Errorf("ladder %s, want %s", strings.Join(got, " "), want)
		}
		if ls[0].MaxRetries() != 8 {
			t.Errorf("MaxRetries %d, want 8", ls[0].MaxRetries())
		}
		ps, err := cfg.Provisions()
		if err != nil || len(ps[0].Ladder.Steps()) != 7 {
			t.Errorf("Provisions: %v, %v: want the seven generated tier topics", ps, err)
		}
	}
}

// A Config built in Go is held to the file's backoff rules.
func TestBackoffValidate(t *testing.T) {
	b := func(edit func(*ladder.Backoff)) *ladder.Backoff {
		x := &ladder.Backoff{Initial: time.Second, Max: time.Minute, Attempts: 8}
		edit(x)
		return x
	}
	for _, c := range []struct {
		topic config.Topic
		field string
		want  string
	}{
		{config.Topic{Name: "o", Tiers: []ladder.Tier{{Delay: time.Second}}, Backoff: b(func(*ladder.Backoff) {})}, "topics[0].backoff", "both tiers and backoff"},
		{config.Topic{Name: "o", Backoff: b(func(x *ladder.Backoff) { x.Jitter = 1.5 })}, "topics[0].backoff.jitter", "< 1"},
		{config.Topic{Name: "o", Backoff: b(func(x *ladder.Backoff) { x.Max = time.Millisecond })}, "topics[0].backoff.max", "at least initial"},
		{config.Topic{Name: "o", Backoff: b(func(x *ladder.Backoff) { x.Attempts = config.MaxTierAttempts + 1 })}, "topics[0].backoff.attempts", "from 1 to 1048576"},
		{config.Topic{Name: "o", Backoff: b(func(*ladder.Backoff) {}), MaxAge: time.Second}, "topics[0].max_age", "longer than the first tier's delay 1s"},
		{config.Topic{Name: "o", Backoff: b(func(*ladder.Backoff) {}), TierRetention: time.Minute}, "topics[0].retention.tiers", "2 × 1m"},
		{config.Topic{Name: "o"}, "topics[0].tiers", "or generate them with backoff"},
	} {
		cfg := &config.Config{Brokers: []string{"127.0.0.1:9092"}, Group: "g", Topics: []config.Topic{c.topic}}
		err := cfg.Validate()
		var fe *config.FieldError
		if !errors.As(err, &fe) || fe.Field != c.field || !strings.Contains(fe.Problem, c.want) {
			t.Errorf("%+v: %v; want %s: ...%s...", c.topic, err, c.field, c.want)
		}
		if _, err := cfg.Ladders(); err == nil && (c.field == "topics[0].backoff" || c.field == "topics[0].backoff.jitter" || c.field == "topics[0].backoff.max") {
			t.Errorf("%+v: Ladders took it", c.topic)
		}
	}
}

// retry_in_place in Go: Validate holds the worst case of the waits to
// MaxInPlaceWait, SetDefaults fills the waits without writing the caller's.
func TestRetryInPlaceValidate(t *testing.T) {
	r := config.RetryInPlace{Attempts: 3, Backoff: 100 * time.Millisecond, MaxBackoff: time.Second}
	if got := []time.Duration{r.Wait(1), r.Wait(2), r.Wait(3), r.Wait(5), r.WorstCase()}; !slices.Equal(got,
		[]time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, time.Second, 700 * time.Millisecond}) {
		t.Errorf("waits and worst case %v", got)
	}
	for _, c := range []struct {
		r     config.RetryInPlace
		field string
		want  string
	}{
		{config.RetryInPlace{Attempts: 31, Backoff: time.Second, MaxBackoff: time.Second}, "topics[0].retry_in_place", "up to 31s together"},
		{config.RetryInPlace{Attempts: 4, Backoff: 5 * time.Second, MaxBackoff: 20 * time.Second}, "topics[0].retry_in_place", "up to 55s together"},
		{config.RetryInPlace{Attempts: 0}, "topics[0].retry_in_place.attempts", "from 1 to 100"},
		{config.RetryInPlace{Attempts: 1, Backoff: 2 * time.Second, MaxBackoff: time.Second}, "topics[0].retry_in_place.max_backoff", "at least backoff 2s"},
	} {
		cfg := &config.Config{Brokers: []string{"127.0.0.1:9092"}, Group: "g", Topics: []config.Topic{{
			Name: "o", Tiers: []ladder.Tier{{Delay: time.Second}}, RetryInPlace: &c.r}}}
		var fe *config.FieldError
		if err := cfg.Validate(); !errors.As(err, &fe) || fe.Field != c.field || !strings.Contains(fe.Problem, c.want) {
			t.Errorf("%+v: %v; want %s: ...%s...", c.r, err, c.field, c.want)
		}
	}
	ok := config.RetryInPlace{Attempts: 30} // 100ms, 200ms, 400ms, 800ms, then 1s: 28.5s
	cfg := &config.Config{Brokers: []string{"127.0.0.1:9092"}, Group: "g", Topics: []config.Topic{{
		Name: "o", Tiers: []ladder.Tier{{Delay: time.Second}}, RetryInPlace: &ok}}}
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		t.Errorf("30 attempts at the defaults (%v): %v", ok.WorstCase(), err)
	}
	if got := *cfg.Topics[0].RetryInPlace; got.Backoff != 100*time.Millisecond || got.MaxBackoff != time.Second || ok.Backoff != 0 {
		t.Errorf("SetDefaults: %+v (the caller's %+v)", got, ok)
	}
}
