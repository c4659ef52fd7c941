package demo

import (
	"bytes"
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestComputeTally(t *testing.T) {
	tiers := []string{"retry-1s", "retry-3s"}
	for _, tc := range []struct {
		name     string
		produced []string
		ok       []accepted
		dlq      []deadLetter
		want     Tally
	}{{
		name:     "every key once",
		produced: []string{"a", "b", "c", "d"},
		ok:       []accepted{{Key: "a"}, {Key: "b", Tier: "retry-1s"}, {Key: "c", Tier: "retry-3s"}},
		dlq:      []deadLetter{{Key: "d", Reason: "panic"}},
		want: Tally{Produced: 4, OKFirstTry: 1, OKAfterRetry: map[string]int{"retry-1s": 1, "retry-3s": 1},
			DeadLettered: map[string]int{"panic": 1}},
	}, {
		name:     "a key neither accepted nor dead-lettered is lost",
		produced: []string{"a", "b", "c"},
		ok:       []accepted{{Key: "a"}},
		want: Tally{Produced: 3, OKFirstTry: 1, OKAfterRetry: map[string]int{"retry-1s": 0, "retry-3s": 0},
			DeadLettered: map[string]int{}, Lost: 2, LostKeys: []string{"b", "c"}},
	}, {
		name:     "accepted twice, and accepted and dead-lettered, are duplicates",
		produced: []string{"a", "b"},
		ok:       []accepted{{Key: "a"}, {Key: "a", Tier: "retry-1s"}, {Key: "b", Tier: "retry-3s"}},
		dlq:      []deadLetter{{Key: "b", Reason: "exhausted"}},
		want: Tally{Produced: 2, OKFirstTry: 1, OKAfterRetry: map[string]int{"retry-1s": 0, "retry-3s": 1},
			DeadLettered: map[string]int{}, Duplicates: 2},
	}, {
		name:     "a key twice in the DLQ is one dead letter and one duplicate",
		produced: []string{"a"},
		dlq:      []deadLetter{{Key: "a", Reason: "permanent"}, {Key: "a", Reason: "permanent"}},
		want: Tally{Produced: 1, OKAfterRetry: map[string]int{"retry-1s": 0, "retry-3s": 0},
			DeadLettered: map[string]int{"permanent": 1}, Duplicates: 1},
	}, {
		name:     "outcomes of keys never produced are not counted",
		produced: []string{"a"},
		ok:       []accepted{{Key: "a"}, {Key: "zz"}},
		dlq:      []deadLetter{{Key: "yy", Reason: "panic"}},
		want: Tally{Produced: 1, OKFirstTry: 1, OKAfterRetry: map[string]int{"retry-1s": 0, "retry-3s": 0},
			DeadLettered: map[string]int{}},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			got := computeTally(tc.produced, tc.ok, tc.dlq, nil, tiers)
			if got.Produced != tc.want.Produced || got.OKFirstTry != tc.want.OKFirstTry ||
				got.Lost != tc.want.Lost || got.Duplicates != tc.want.Duplicates ||
				!maps.Equal(got.OKAfterRetry, tc.want.OKAfterRetry) ||
				!maps.Equal(got.DeadLettered, tc.want.DeadLettered) ||
				!slices.Equal(got.LostKeys, tc.want.LostKeys) {
				t.Errorf("computeTally =\n%+v\nwant\n%+v", got, tc.want)
			}
		})
	}
}

func TestPercentileMS(t *testing.T) {
	ms := func(f float64) time.Duration { return time.Duration(f * float64(time.Millisecond)) }
	var hundred []time.Duration
	for i := 100; i >= 1; i-- { // unsorted on purpose
		hundred = append(hundred, ms(float64(i)))
	}
	for _, tc := range []struct {
		name string
		ds   []time.Duration
		q    float64
		want float64
	}{
		{"empty", nil, 0.5, 0},
		{"one", []time.Duration{ms(7.25)}, 0.99, 7.3},
		{"p50 of 1..100", hundred, 0.50, 50},
		{"p99 of 1..100", hundred, 0.99, 99},
		{"p100 of 1..100", hundred, 1, 100},
	} {
		if got := percentileMS(tc.ds, tc.q); got != tc.want {
			t.Errorf("%s: percentileMS(q=%v) = %v, want %v", tc.name, tc.q, got, tc.want)
		}
	}
}

func TestTallyJSONHasTheDocumentedKeys(t *testing.T) {
	tl := computeTally([]string{"a", "b"}, []accepted{{Key: "a", Tier: "retry-1s"}},
		[]deadLetter{{Key: "b", Reason: "panic"}}, []time.Duration{3 * time.Millisecond}, []string{"retry-1s"})
	var buf bytes.Buffer
	if err := tl.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(buf.String(), "\n"); n != 1 {
		t.Errorf("WriteJSON wrote %d lines, want one object on one line: %s", n, buf.String())
	}
	var got map[string]any
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	want := []string{"produced", "ok_first_try", "ok_after_retry", "dead_lettered", "lost", "duplicates", "lateness_p50_ms", "lateness_p99_ms"}
	if keys := slices.Sorted(maps.Keys(got)); !slices.Equal(keys, slices.Sorted(slices.Values(want))) {
		t.Errorf("keys = %v, want %v", keys, want)
	}
	if got["ok_after_retry"].(map[string]any)["retry-1s"] != 1.0 || got["dead_lettered"].(map[string]any)["panic"] != 1.0 {
		t.Errorf("by-kind objects wrong: %s", buf.String())
	}
	if got["lateness_p99_ms"] != 3.0 {
		t.Errorf("lateness_p99_ms = %v, want 3", got["lateness_p99_ms"])
	}
}

func TestPlanForMixesEveryOutcome(t *testing.T) {
	counts := make(map[Kind]int)
	heal := make(map[int]int)
	for i := range 3000 {
		k := []byte(Key(i))
		p := PlanFor(k)
		if again := PlanFor(k); again != p {
			t.Fatalf("PlanFor(%s) not deterministic: %+v then %+v", k, p, again)
		}
		counts[p.Kind]++
		if p.Kind == Heal {
			if p.Failures < 1 || p.Failures > 3 {
				t.Errorf("PlanFor(%s) heals after %d failures, want 1–3", k, p.Failures)
			}
			heal[p.Failures]++
		}
	}
	for _, k := range []Kind{OK, Heal, Permanent, Panic, Exhausted} {
		if counts[k] == 0 {
			t.Errorf("no %s record among 3000 keys: %v", k, counts)
		}
	}
	for f := 1; f <= 3; f++ {
		if heal[f] == 0 {
			t.Errorf("no record heals after %d failures: %v", f, heal)
		}
	}
	if counts[OK] < 3000/2 {
		t.Errorf("%d of 3000 succeed at once; the demo should mostly succeed", counts[OK])
	}
}
