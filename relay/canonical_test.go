package relay

import (
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

// readHeaders, brief or not, reads what decode reads as far as readOf goes:
// the same read of every record, canonical or not, trusted or not.
func TestReadHeadersAsDecode(t *testing.T) {
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
	for name, m := range variants {
		hs := headers.Encode([]kgo.RecordHeader{{Key: "trace", Value: []byte("t1")}}, m)
		if name == "a due time past its bound" {
			// A re-parked record: never canonical, its bound counts from kretry-parked-at.
			hs = append(hs, kgo.RecordHeader{Key: headers.HeaderParkedAt, Value: []byte(headers.FormatTime(now.Add(time.Second)))})
		}
		want, wok, wcanonical, werr := decode(hs)
		got, ok, canonical, err := readHeaders(tier, hs)
		if ok != wok || canonical != wcanonical || (err == nil) != (werr == nil) || got.Group != want.Group {
			t.Errorf("%s: readHeaders = %v, %v, %v; decode = %v, %v, %v", name, ok, canonical, err, wok, wcanonical, werr)
			continue
		}
		if want.Group == l.Group() {
			if a, b := readOf(tier, got, canonical, hs, now.Add(time.Minute)), readOf(tier, want, wcanonical, hs, now.Add(time.Minute)); a != b {
				t.Errorf("%s: readOf of readHeaders = %+v, of decode = %+v", name, a, b)
			}
		}
	}
}

// BenchmarkReadTierRecord is what reading a tier record's headers costs the
// relay before it re-feeds it: readHeaders, then readOf.
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
		got, ok, canonical, err := readHeaders(tier, hs)
		if !ok || !canonical || err != nil {
			b.Fatal("not read")
		}
		if r := readOf(tier, got, canonical, hs, now); !r.ok {
			b.Fatal("not read")
		}
	}
}
