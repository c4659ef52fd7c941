package ladder_test

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/kretry/kretry/ladder"
)

func TestBackoffTiers(t *testing.T) {
	ms := time.Millisecond
	for _, c := range []struct {
		name string
		b    ladder.Backoff
		want string
	}{
		{"issue example: 8 attempts capped at 1m, 7 topics", ladder.Backoff{Initial: time.Second, Multiplier: 2, Max: time.Minute, Attempts: 8}, "1s 2s 4s 8s 16s 32s 1m×2"},
		{"multiplier 0 is 2", ladder.Backoff{Initial: time.Second, Max: time.Hour, Attempts: 3}, "1s 2s 4s"},
		{"cap reached early", ladder.Backoff{Initial: time.Second, Multiplier: 10, Max: 30 * time.Second, Attempts: 5}, "1s 10s 30s×3"},
		{"max = initial", ladder.Backoff{Initial: 5 * time.Second, Multiplier: 2, Max: 5 * time.Second, Attempts: 4}, "5s×4"},
		{"multiplier 1", ladder.Backoff{Initial: 1500 * time.Microsecond, Multiplier: 1, Max: time.Second, Attempts: 3}, "1500us×3"},
		{"rounded to the millisecond", ladder.Backoff{Initial: 100 * ms, Multiplier: 1.5, Max: time.Second, Attempts: 6}, "100ms 150ms 225ms 338ms 507ms 761ms"},
		{"a rounding that does not grow merges", ladder.Backoff{Initial: ms, Multiplier: 1.2, Max: time.Second, Attempts: 3}, "1ms×3"},
		{"one attempt", ladder.Backoff{Initial: time.Minute, Multiplier: 2, Max: time.Hour, Attempts: 1}, "1m"},
		{"a million attempts at the cap", ladder.Backoff{Initial: time.Second, Multiplier: 2, Max: 4 * time.Second, Attempts: 1 << 20}, fmt.Sprintf("1s 2s 4s×%d", 1<<20-2)},
		{"huge multiplier does not overflow", ladder.Backoff{Initial: time.Hour, Multiplier: 100, Max: 200 * 24 * time.Hour, Attempts: 6}, "1h 100h 4800h×4"},
	} {
		t.Run(c.name, func(t *testing.T) {
			tiers, err := c.b.Tiers()
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			sum := 0
			for _, tr := range tiers {
				s := ladder.FormatDelay(tr.Delay)
				if tr.Attempts > 1 {
					s += fmt.Sprintf("×%d", tr.Attempts)
				}
				got = append(got, s)
				sum += tr.Attempts
			}
			if g := strings.Join(got, " "); g != c.want {
				t.Errorf("tiers %s, want %s", g, c.want)
			}
			if sum != c.b.Attempts {
				t.Errorf("attempts add up to %d, want %d", sum, c.b.Attempts)
			}
			if _, err := ladder.New("orders", "g", tiers, ladder.WithJitter(c.b.Jitter)); err != nil {
				t.Errorf("the generated tiers are not a ladder: %v", err)
			}
		})
	}
}

func TestBackoffProblems(t *testing.T) {
	ok := ladder.Backoff{Initial: time.Second, Multiplier: 2, Max: time.Minute, Attempts: 8, Jitter: 0.2}
	for _, c := range []struct {
		field string
		edit  func(*ladder.Backoff)
		want  string
	}{
		{"initial", func(b *ladder.Backoff) { b.Initial = 0 }, "must be > 0"},
		{"multiplier", func(b *ladder.Backoff) { b.Multiplier = 0.5 }, "from 1 to 100"},
		{"multiplier", func(b *ladder.Backoff) { b.Multiplier = 1e9 }, "from 1 to 100"},
		{"max", func(b *ladder.Backoff) { b.Max = time.Millisecond }, "at least initial 1s"},
		{"attempts", func(b *ladder.Backoff) { b.Attempts = 0 }, "from 1 to"},
		{"jitter", func(b *ladder.Backoff) { b.Jitter = 1 }, "< 1"},
		{"jitter", func(b *ladder.Backoff) { b.Jitter = -0.1 }, "≥ 0"},
	} {
		b := ok
		c.edit(&b)
		field, err := b.Check(1 << 20)
		if field != c.field || err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: field %q, %v; want %s: ...%s...", b, field, err, c.field, c.want)
		}
		if _, err := b.Tiers(); err == nil {
			t.Errorf("%+v: Tiers took it", b)
		}
	}
	if _, err := ladder.New("orders", "g", []ladder.Tier{{Delay: time.Second}}, ladder.WithJitter(1)); err == nil {
		t.Error("New took jitter 1")
	}
}

// The jitter figure of issue 15: 10,000 draws of one 10s tier with jitter
// 0.2, from a seeded source (deterministic: the test cannot flake), all in
// [8s, 10s] and spread evenly over ten 200ms buckets.
func TestJitterSpread(t *testing.T) {
	l, err := ladder.New("orders", "g", []ladder.Tier{{Delay: 10 * time.Second}}, ladder.WithJitter(0.2))
	if err != nil {
		t.Fatal(err)
	}
	s := l.Steps()[0]
	if got := s.Wait(0); got != s.Delay {
		t.Errorf("Wait(0) = %v, want the delay", got)
	}
	if got := s.Wait(0.999999999); got < 8*time.Second {
		t.Errorf("Wait(~1) = %v, below 8s", got)
	}
	rnd := rand.New(rand.NewPCG(15, 2))
	waits := make([]time.Duration, 10000)
	for i := range waits {
		waits[i] = s.Wait(rnd.Float64())
	}
	checkSpread(t, waits, s.Delay, 0.2)
}

// checkSpread checks that every wait is in [delay × (1 − jitter), delay], a
// whole number of milliseconds, and that ten equal buckets of that range
// hold about len(waits)/10 each (chi-square with 9 degrees of freedom below
// 27.88, p = 0.001), and logs the figures.
func checkSpread(t *testing.T, waits []time.Duration, delay time.Duration, jitter float64) {
	t.Helper()
	lo := delay - time.Duration(float64(delay)*jitter)
	var buckets [10]int
	minW, maxW := delay, time.Duration(0)
	for _, w := range waits {
		if w < lo || w > delay || w%time.Millisecond != 0 {
			t.Fatalf("wait %v outside [%v, %v] or not whole milliseconds", w, lo, delay)
		}
		minW, maxW = min(minW, w), max(maxW, w)
		buckets[min(int(float64(w-lo)/float64(delay-lo)*10), 9)]++
	}
	exp := float64(len(waits)) / 10
	chi2 := 0.0
	for _, n := range buckets {
		chi2 += (float64(n) - exp) * (float64(n) - exp) / exp
		if float64(n) < exp*0.85 || float64(n) > exp*1.15 {
			t.Errorf("bucket of %d, want within 15%% of %v", n, exp)
		}
	}
	if chi2 >= 27.88 {
		t.Errorf("chi-square %.2f over 10 buckets, want < 27.88 (p = 0.001)", chi2)
	}
	t.Logf("%d waits of a %v tier, jitter %v: min %v max %v (bounds [%v, %v]); per %v bucket %v; chi-square %.2f (9 df)",
		len(waits), delay, jitter, minW, maxW, lo, delay, (delay-lo)/10, buckets, chi2)
}
