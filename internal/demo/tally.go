package demo

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"time"
)

// Tally is what became of the demo's records. Every figure comes from the
// topics read back and from what the handler saw, never from the plan.
type Tally struct {
	Produced      int            `json:"produced"`        // records on the main topic without kretry headers
	OKFirstTry    int            `json:"ok_first_try"`    // keys the handler accepted at their first delivery
	OKAfterRetry  map[string]int `json:"ok_after_retry"`  // keys accepted after a re-feed, by the tier they came from
	DeadLettered  map[string]int `json:"dead_lettered"`   // keys in the DLQ, by kretry-reason
	Lost          int            `json:"lost"`            // produced keys neither accepted nor in the DLQ
	Duplicates    int            `json:"duplicates"`      // outcomes beyond the first of a key (accepted twice, or accepted and dead-lettered, ...)
	LatenessP50MS float64        `json:"lateness_p50_ms"` // re-feed lateness seen by the handler: arrival − kretry-due-at
	LatenessP99MS float64        `json:"lateness_p99_ms"`

	LostKeys []string      `json:"-"` // the first few lost keys, for the report
	Refeeds  int           `json:"-"` // lateness samples
	Elapsed  time.Duration `json:"-"`
}

// accepted is one record the handler returned nil for.
type accepted struct {
	Key  string
	Tier string // kretry-tier of the delivery; "" at the first try
}

// deadLetter is one record read back from the DLQ.
type deadLetter struct {
	Key    string
	Reason string
}

// maxLostKeys bounds the lost keys a Tally names.
const maxLostKeys = 10

// computeTally matches the produced keys against their outcomes. tiers are the
// ladder's tier names: each one appears in OKAfterRetry even when zero.
func computeTally(produced []string, ok []accepted, dlq []deadLetter, lateness []time.Duration, tiers []string) Tally {
	t := Tally{
		Produced:     len(produced),
		OKAfterRetry: make(map[string]int, len(tiers)),
		DeadLettered: make(map[string]int),
		Refeeds:      len(lateness),
	}
	for _, name := range tiers {
		t.OKAfterRetry[name] = 0
	}
	outcomes := make(map[string]int, len(produced))
	for _, k := range produced {
		if _, dup := outcomes[k]; dup {
			t.Duplicates++ // the same key produced twice: the producer duplicated it
			continue
		}
		outcomes[k] = 0
	}
	for _, a := range ok {
		n, known := outcomes[a.Key]
		if !known {
			continue
		}
		outcomes[a.Key] = n + 1
		if n > 0 {
			t.Duplicates++
			continue
		}
		if a.Tier == "" {
			t.OKFirstTry++
		} else {
			t.OKAfterRetry[a.Tier]++
		}
	}
	for _, d := range dlq {
		n, known := outcomes[d.Key]
		if !known {
			continue
		}
		outcomes[d.Key] = n + 1
		if n > 0 {
			t.Duplicates++
			continue
		}
		t.DeadLettered[d.Reason]++
	}
	for _, k := range produced {
		if outcomes[k] == 0 {
			t.Lost++
			if len(t.LostKeys) < maxLostKeys {
				t.LostKeys = append(t.LostKeys, k)
			}
			outcomes[k] = -1 // count a key produced twice as lost once
		}
	}
	t.LatenessP50MS = percentileMS(lateness, 0.50)
	t.LatenessP99MS = percentileMS(lateness, 0.99)
	return t
}

// percentileMS is the nearest-rank percentile q of ds in milliseconds, to
// 0.1 ms; 0 when ds is empty.
func percentileMS(ds []time.Duration, q float64) float64 {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(math.Ceil(q*float64(len(s)))) - 1
	i = max(0, min(i, len(s)-1))
	return math.Round(float64(s[i])/float64(time.Millisecond)*10) / 10
}

// WriteJSON writes t as one JSON object on one line.
func (t Tally) WriteJSON(w io.Writer) error {
	return json.NewEncoder(w).Encode(t)
}

// WriteText writes t for a person to read. tiers orders the tier names.
func (t Tally) WriteText(w io.Writer, tiers []string) error {
	okRetry, dead := 0, 0
	var byTier, byReason []string
	for _, name := range tiers {
		okRetry += t.OKAfterRetry[name]
		byTier = append(byTier, fmt.Sprintf("%s %d", name, t.OKAfterRetry[name]))
	}
	reasons := make([]string, 0, len(t.DeadLettered))
	for r := range t.DeadLettered {
		reasons = append(reasons, r)
	}
	slices.Sort(reasons)
	for _, r := range reasons {
		dead += t.DeadLettered[r]
		byReason = append(byReason, fmt.Sprintf("%s %d", r, t.DeadLettered[r]))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "tally after %s\n", t.Elapsed.Round(100*time.Millisecond))
	fmt.Fprintf(&b, "  produced          %6d\n", t.Produced)
	fmt.Fprintf(&b, "  ok at first try   %6d\n", t.OKFirstTry)
	fmt.Fprintf(&b, "  ok after retry    %6d   (%s)\n", okRetry, strings.Join(byTier, ", "))
	fmt.Fprintf(&b, "  dead-lettered     %6d   (%s)\n", dead, strings.Join(byReason, ", "))
	fmt.Fprintf(&b, "  lost              %6d", t.Lost)
	if len(t.LostKeys) > 0 {
		fmt.Fprintf(&b, "   (%s", strings.Join(t.LostKeys, ", "))
		if t.Lost > len(t.LostKeys) {
			b.WriteString(", ...")
		}
		b.WriteString(")")
	}
	b.WriteString("\n")
	fmt.Fprintf(&b, "  duplicates        %6d\n", t.Duplicates)
	fmt.Fprintf(&b, "  re-feed lateness  p50 %.1f ms, p99 %.1f ms over %d re-feeds\n", t.LatenessP50MS, t.LatenessP99MS, t.Refeeds)
	_, err := io.WriteString(w, b.String())
	return err
}
