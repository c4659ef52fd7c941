package relay

import (
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/headers"
	"github.com/kretry/kretry/ladder"
)

// decode calls headers canonical exactly when headers.Encode would write the
// same headers again (up to order), so that the relay may pass them on.
func TestDecodeCanonical(t *testing.T) {
	now := time.Date(2026, 11, 25, 10, 0, 5, 123e6, time.UTC)
	md := headers.Metadata{Group: "g", Attempts: 2, Tier: "retry-5s", DueAt: now, OriginalTopic: "orders",
		OriginalPartition: 3, OriginalOffset: 42, OriginalTimestamp: now, FirstFailureAt: now, LastFailureAt: now,
		Error: "boom", Replays: 1}
	user := []kgo.RecordHeader{{Key: "trace", Value: []byte("t1")}, {Key: "x", Value: nil}}
	enc := headers.Encode(user, md)
	with := func(hs []kgo.RecordHeader, extra ...kgo.RecordHeader) []kgo.RecordHeader {
		return append(slices.Clone(hs), extra...)
	}
	without := func(hs []kgo.RecordHeader, key string) []kgo.RecordHeader {
		return slices.DeleteFunc(slices.Clone(hs), func(h kgo.RecordHeader) bool { return h.Key == key })
	}
	set := func(hs []kgo.RecordHeader, key, value string) []kgo.RecordHeader {
		out := without(hs, key)
		return append(out, kgo.RecordHeader{Key: key, Value: []byte(value)})
	}
	noErr := md
	noErr.Error, noErr.Replays = "", 0
	interleaved := append([]kgo.RecordHeader{enc[2], user[0]}, enc[3:]...)
	interleaved = append(interleaved, user[1], enc[0], enc[1])
	for _, tc := range []struct {
		name string
		hs   []kgo.RecordHeader
		want bool
	}{
		{"as headers.Encode writes them", enc, true},
		{"without the optional headers", headers.Encode(user, noErr), true},
		{"user and kretry headers interleaved", interleaved, true},
		{"an unknown kretry header", with(enc, kgo.RecordHeader{Key: "kretry-future", Value: []byte("1")}), false},
		{"an empty kretry-error", set(enc, headers.HeaderErrorText, ""), false},
		{"kretry-replays 0", set(enc, headers.HeaderReplays, "0"), false},
		{"kretry-error over headers.MaxErrorLen", set(enc, headers.HeaderErrorText, strings.Repeat("e", headers.MaxErrorLen+1)), false},
		{"a DLQ replay's count", []kgo.RecordHeader{{Key: headers.HeaderReplays, Value: []byte("2")}}, true},
		{"a DLQ replay's count of 0", []kgo.RecordHeader{{Key: headers.HeaderReplays, Value: []byte("0")}}, false},
		{"no kretry header", user, true},
	} {
		got, ok, canonical, err := decode(tc.hs)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if canonical != tc.want {
			t.Errorf("%s: canonical = %v, want %v", tc.name, canonical, tc.want)
		}
		if canonical && ok {
			if a, b := sortedHeaders(tc.hs), sortedHeaders(headers.Encode(tc.hs, got)); !slices.Equal(a, b) {
				t.Errorf("%s: canonical, but headers.Encode writes\n%q\nfor\n%q", tc.name, b, a)
			}
		}
	}
}

func sortedHeaders(hs []kgo.RecordHeader) []string {
	out := make([]string, len(hs))
	for i, h := range hs {
		out[i] = h.Key + "=" + string(h.Value)
	}
	slices.Sort(out)
	return out
}

// readTier, brief or not, reads what readOf reads of what decode reads:
// the same read of every record, canonical or not, trusted or not, and
// the same group or error.
func TestReadTierAsDecode(t *testing.T) {
	l, err := ladder.New("orders", "g", []ladder.Tier{{Delay: 5 * time.Second, Attempts: 1}})
	if err != nil {
		t.Fatal(err)
	}
	tier := tierOf{ladder: l, step: l.Steps()[0]}
	now := time.Date(2026, 11, 25, 10, 0, 5, 123e6, time.UTC)
	md := headers.Metadata{Group: "g", Attempts: 2, Tier: tier.step.Name, DueAt: now.Add(5 * time.Second), OriginalTopic: "orders",
		OriginalPartition: 3, OriginalOffset: 42, OriginalTimestamp: now, FirstFailureAt: now, LastFailureAt: now,
		Error: "boom", Replays: 1}
	variants := map[string]headers.Metadata{"canonical": md}
	other := md
	other.OriginalTopic = "payments"
	variants["another main topic"] = other
	forged := md
	forged.DueAt = now.Add(time.Hour)
	variants["a due time past its bound"] = forged
	tierName := md
	tierName.Tier = "retry-1m"
	variants["another tier's name"] = tierName
	group := md
	group.Group = "h"
	variants["another group"] = group
	inPlace := md
	inPlace.InPlaceRetries = 2
	variants["in-place retries"] = inPlace
	forged2 := md
	forged2.DueAt = now.Add(48 * time.Hour)
	variants["a due time past the longest RetryAfter"] = forged2
	variants["a due time past its bound, never re-parked"] = forged
	cases := map[string][]kgo.RecordHeader{"no kretry headers": {{Key: "trace", Value: []byte("t1")}}}
	for name, m := range variants {
		hs := headers.Encode([]kgo.RecordHeader{{Key: "trace", Value: []byte("t1")}}, m)
		if name == "a due time past its bound" {
			// A re-parked record: never canonical, its bound counts from kretry-parked-at.
			hs = append(hs, kgo.RecordHeader{Key: headers.HeaderParkedAt, Value: []byte(headers.FormatTime(now.Add(time.Second)))})
		}
		cases[name] = hs
	}
	bad := headers.Encode(nil, md)
	for i := range bad {
		if bad[i].Key == headers.HeaderAttempts {
			bad[i].Value = []byte("x")
		}
	}
	cases["unreadable kretry-attempts"] = bad
	for name, hs := range cases {
		at := now.Add(time.Minute)
		want, wok, wcanonical, werr := decode(hs)
		got, group, err := readTier(tier, hs, at)
		switch {
		case werr != nil || !wok:
			if err == nil {
				t.Errorf("%s: readTier = %+v, %q; decode = %v, %v", name, got, group, wok, werr)
			}
		case err != nil || group != want.Group:
			t.Errorf("%s: readTier: group %q, %v; want %q", name, group, err, want.Group)
		case want.Group != l.Group():
			if got != (read{}) {
				t.Errorf("%s: readTier of another group's record = %+v, want no read", name, got)
			}
		default:
			if w := readOf(tier, want, wcanonical, hs, at); got != w {
				t.Errorf("%s: readTier = %+v, readOf of decode = %+v", name, got, w)
			}
		}
	}
}

// BenchmarkReadTierRecord is what reading a tier record's headers costs the
// relay before it re-feeds it (readTier).
func BenchmarkReadTierRecord(b *testing.B) {
	l, err := ladder.New("orders", "svc", []ladder.Tier{{Delay: time.Second, Attempts: 1}})
	if err != nil {
		b.Fatal(err)
	}
	tier := tierOf{ladder: l, step: l.Steps()[0]}
	now := time.Now().UTC().Truncate(time.Millisecond)
	md := headers.Metadata{Group: "svc", Attempts: 1, Tier: tier.step.Name, DueAt: now.Add(time.Second), OriginalTopic: "orders",
		OriginalPartition: 3, OriginalOffset: 123456, OriginalTimestamp: now, FirstFailureAt: now, LastFailureAt: now,
		Error: "bench: every first delivery fails"}
	hs := headers.Encode(nil, md)
	b.ReportAllocs()
	for b.Loop() {
		if r, _, err := readTier(tier, hs, now); !r.ok || !r.canonical || err != nil {
			b.Fatal("not read")
		}
	}
}

// addNanos saturates instead of wrapping: a tier delay or RetryAfterMax of
// centuries after a last failure in 2200 is later than any due time, not
// before them all.
func TestAddNanos(t *testing.T) {
	for _, tc := range []struct {
		t    int64
		d    time.Duration
		want int64
	}{
		{1, time.Second, 1 + int64(time.Second)},
		{-5, 3, -2},
		{math.MaxInt64 - 10, 10, math.MaxInt64},
		{math.MaxInt64 - 10, 11, math.MaxInt64},
		{7_289_654_400e9, 200 * 365 * 24 * time.Hour, math.MaxInt64},
	} {
		if got := addNanos(tc.t, tc.d); got != tc.want {
			t.Errorf("addNanos(%d, %v) = %d, want %d", tc.t, tc.d, got, tc.want)
		}
	}
}
