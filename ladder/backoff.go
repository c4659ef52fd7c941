package ladder

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// DefaultMultiplier is Backoff.Multiplier when it is 0.
const DefaultMultiplier = 2

// MaxMultiplier bounds Backoff.Multiplier: a larger one leaves the first
// delay for the cap at once, which max says more plainly.
const MaxMultiplier = 100

// Backoff generates a ladder's tiers: attempt k (from 1) waits
// Initial × Multiplier^(k−1), rounded to the millisecond and capped at Max.
// Attempts with equal delays share one tier (one topic), so Initial 1s,
// Multiplier 2, Max 1m and 8 attempts are the tiers 1s, 2s, 4s, 8s, 16s,
// 32s and 1m ×2: seven topics, not eight.
//
// Jitter (0 ≤ Jitter < 1) is drawn per record and only shortens a delay:
// a record is due at the failure + delay × (1 − Jitter × u), u uniform in
// [0, 1), so never later than its tier's delay nor earlier than
// delay × (1 − Jitter). Pass it to New with WithJitter.
type Backoff struct {
	Initial    time.Duration // the first delay, > 0
	Multiplier float64       // ≥ 1 (1: every attempt waits Initial); 0 means DefaultMultiplier
	Max        time.Duration // the cap, ≥ Initial
	Attempts   int           // the ladder's attempts in all, ≥ 1
	Jitter     float64       // 0 ≤ Jitter < 1; 0: none
}

// Check reports the first problem of b, naming its field as a file does
// (initial, multiplier, max, attempts, jitter); maxAttempts bounds Attempts.
func (b Backoff) Check(maxAttempts int) (field string, err error) {
	switch {
	case b.Initial <= 0:
		return "initial", fmt.Errorf("must be > 0: the first delay, e.g. 1s; got %s", b.Initial)
	case b.Multiplier != 0 && !(b.Multiplier >= 1 && b.Multiplier <= MaxMultiplier):
		return "multiplier", fmt.Errorf("must be from 1 to %d (default %d; 1 waits initial every time), got %v", MaxMultiplier, DefaultMultiplier, b.Multiplier)
	case b.Max < b.Initial:
		return "max", fmt.Errorf("must be at least initial %s: the longest delay, which caps initial × multiplier^(attempt−1); got %s", FormatDelay(b.Initial), FormatDelay(b.Max))
	case b.Attempts < 1 || b.Attempts > maxAttempts:
		return "attempts", fmt.Errorf("must be a whole number from 1 to %d: the retries before the DLQ; got %d", maxAttempts, b.Attempts)
	case !(b.Jitter >= 0 && b.Jitter < 1):
		return "jitter", fmt.Errorf("must be ≥ 0 and < 1 (0.2 makes a delay 80%% to 100%% of the tier's; default 0, none), got %v", b.Jitter)
	}
	return "", nil
}

// Tiers returns the tiers b generates, in order, equal delays merged into
// one tier with their attempts.
func (b Backoff) Tiers() ([]Tier, error) {
	if field, err := b.Check(math.MaxInt32 - 1); err != nil {
		return nil, fmt.Errorf("backoff %s: %w", field, err)
	}
	m := b.Multiplier
	if m == 0 {
		m = DefaultMultiplier
	}
	var tiers []Tier
	d := b.Initial
	for k := 0; k < b.Attempts; k++ {
		if k > 0 && d < b.Max {
			next := float64(d) * m
			switch {
			case next >= float64(b.Max):
				d = b.Max
			case m != 1:
				d = max(d, time.Duration(math.Round(next/float64(time.Millisecond)))*time.Millisecond)
			}
		}
		if n := len(tiers); n > 0 && tiers[n-1].Delay == d {
			if d == b.Max {
				// Capped: every attempt left waits Max.
				tiers[n-1].Attempts += b.Attempts - k
				break
			}
			tiers[n-1].Attempts++
			continue
		}
		tiers = append(tiers, Tier{Delay: d, Attempts: 1})
	}
	return tiers, nil
}

var errJitter = errors.New("jitter must be ≥ 0 and < 1")
