package headers_test

import (
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/headers"
)

// kretryHeaders is the kretry headers of hs by key; false when one repeats.
func kretryHeaders(hs []kgo.RecordHeader) (map[string]string, bool) {
	m := map[string]string{}
	for _, h := range hs {
		if strings.HasPrefix(h.Key, headers.HeaderPrefix) {
			if _, dup := m[h.Key]; dup {
				return nil, false
			}
			m[h.Key] = string(h.Value)
		}
	}
	return m, true
}

// checkBrief fails t unless ReadBrief of hs, when it reads them, agrees with
// Decode and with what Encode writes back.
func checkBrief(t *testing.T, hs []kgo.RecordHeader, group, tier, topic string) bool {
	t.Helper()
	b, ok := headers.ReadBrief(hs, group, tier, topic)
	if !ok {
		return false
	}
	md, mdOK, err := headers.Decode(hs)
	if err != nil || !mdOK {
		t.Fatalf("ReadBrief read headers Decode refuses: %v, %v\n%s", mdOK, err, show(hs))
	}
	want := headers.Brief{Attempts: md.Attempts, Replays: md.Replays, OriginalTopic: md.OriginalTopic,
		OriginalPartition: md.OriginalPartition, OriginalOffset: md.OriginalOffset,
		DueAt: md.DueAt.UnixNano(), LastFailureAt: md.LastFailureAt.UnixNano()}
	if b != want || md.Group != group || md.Tier != tier {
		t.Fatalf("ReadBrief = %+v; Decode = %+v", b, md)
	}
	got, _ := kretryHeaders(hs)
	back, _ := kretryHeaders(headers.Encode(hs, md))
	if !maps.Equal(got, back) {
		t.Fatalf("ReadBrief read headers Encode rewrites:\n%s→\n%s", show(hs), show(headers.Encode(hs, md)))
	}
	return true
}

func TestReadBrief(t *testing.T) {
	md := sampleMetadata()
	md.TraceParent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	canonical := headers.Encode(hdr("user", "v"), md)
	if !checkBrief(t, canonical, md.Group, md.Tier, md.OriginalTopic) {
		t.Fatalf("ReadBrief refuses the headers Encode writes:\n%s", show(canonical))
	}
	if b, _ := headers.ReadBrief(canonical, md.Group, md.Tier, md.OriginalTopic); b.OriginalTopic != md.OriginalTopic {
		t.Fatalf("OriginalTopic = %q", b.OriginalTopic)
	}
	with := func(key, value string) []kgo.RecordHeader {
		hs := append([]kgo.RecordHeader(nil), canonical...)
		for i := range hs {
			if hs[i].Key == key {
				if value == "\x00drop" {
					return append(hs[:i:i], hs[i+1:]...)
				}
				hs[i].Value = []byte(value)
				return hs
			}
		}
		return append(hs, kgo.RecordHeader{Key: key, Value: []byte(value)})
	}
	for _, tc := range []struct {
		name string
		hs   []kgo.RecordHeader
	}{
		{"another group", with(headers.HeaderGroup, "billing")},
		{"another tier", with(headers.HeaderTier, "retry-5s")},
		{"version 2", with(headers.HeaderVersion, "2")},
		{"no due time", with(headers.HeaderDueAt, "\x00drop")},
		{"no version", with(headers.HeaderVersion, "\x00drop")},
		{"attempts 0", with(headers.HeaderAttempts, "0")},
		{"attempts 02", with(headers.HeaderAttempts, "02")},
		{"attempts +2", with(headers.HeaderAttempts, "+2")},
		{"attempts past int32", with(headers.HeaderAttempts, "2147483648")},
		{"offset past int64", with(headers.HeaderOriginalOffset, "9223372036854775808")},
		{"partition -1", with(headers.HeaderOriginalPartition, "-1")},
		{"February 30th", with(headers.HeaderOriginalTimestamp, "2026-02-30T10:00:00.000Z")},
		{"due in the year 9999", with(headers.HeaderDueAt, "9999-01-01T10:00:00.000Z")},
		{"last failure in 1600", with(headers.HeaderLastFailureAt, "1600-01-01T10:00:00.000Z")},
		{"a time without Z", with(headers.HeaderFirstFailureAt, "2026-11-25T09:59:55.123+")},
		{"empty error", with(headers.HeaderErrorText, "")},
		{"long error", with(headers.HeaderErrorText, strings.Repeat("x", headers.MaxErrorLen+1))},
		{"invalid UTF-8 error", with(headers.HeaderErrorText, "\xff")},
		{"empty topic", with(headers.HeaderOriginalTopic, "")},
		{"replays 0", with(headers.HeaderReplays, "0")},
		{"a reason", with(headers.HeaderReason, "panic")},
		{"a route", with(headers.HeaderRoute, "fraud")},
		{"in-place retries", with(headers.HeaderInPlaceRetries, "2")},
		{"bad traceparent", with(headers.HeaderTraceParent, "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01")},
		{"unknown kretry header", with("kretry-future", "1")},
		{"repeated group", append(append([]kgo.RecordHeader(nil), canonical...), kgo.RecordHeader{Key: headers.HeaderGroup, Value: []byte(md.Group)})},
	} {
		if checkBrief(t, tc.hs, md.Group, md.Tier, md.OriginalTopic) {
			t.Errorf("%s: ReadBrief reads headers it must leave to Decode:\n%s", tc.name, show(tc.hs))
		}
	}
	// Optional headers may be absent; another main topic gets its own string.
	hs := with(headers.HeaderErrorText, "\x00drop")
	hs = append(hs[:0:0], hs...)
	for _, k := range []string{headers.HeaderReplays, headers.HeaderTraceParent} {
		for i := range hs {
			if hs[i].Key == k {
				hs = append(hs[:i], hs[i+1:]...)
				break
			}
		}
	}
	if !checkBrief(t, hs, md.Group, md.Tier, "payments") {
		t.Fatalf("ReadBrief refuses headers without kretry-error, -replays and -traceparent:\n%s", show(hs))
	}
}

// FuzzReadBrief checks that whatever ReadBrief reads, Decode reads the same
// way and Encode writes back as it is. `go test -fuzz FuzzReadBrief ./headers`
// explores further.
func FuzzReadBrief(f *testing.F) {
	md := sampleMetadata()
	f.Add(pack(headers.Encode(nil, md)))
	md.Replays, md.Error = 0, ""
	f.Add(pack(headers.Encode(hdr("a", "b"), md)))
	md.DueAt = time.Date(2200, 12, 31, 23, 59, 59, 999e6, time.UTC)
	md.LastFailureAt = time.Date(1700, 1, 1, 0, 0, 0, 0, time.UTC)
	f.Add(pack(headers.Encode(nil, md)))
	f.Fuzz(func(t *testing.T, packed []byte) {
		checkBrief(t, unpack(packed), md.Group, md.Tier, md.OriginalTopic)
	})
}

// BenchmarkReadBrief reads the headers Encode writes, with user headers
// first: "constants" with the package's constants as keys, as a relay
// holds them; "fetched" with keys of their own, as kgo hands them over.
func BenchmarkReadBrief(b *testing.B) {
	md := sampleMetadata()
	md.TraceParent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	hs := headers.Encode(hdr("trace", "abc"), md)
	fetched := append([]kgo.RecordHeader(nil), hs...)
	for i := range fetched {
		fetched[i].Key = strings.Clone(fetched[i].Key)
	}
	for _, bc := range []struct {
		name string
		hs   []kgo.RecordHeader
	}{{"constants", hs}, {"fetched", fetched}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, ok := headers.ReadBrief(bc.hs, md.Group, md.Tier, md.OriginalTopic); !ok {
					b.Fatal("not read")
				}
			}
		})
	}
}
