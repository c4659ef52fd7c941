package headers

import (
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// appendTime and parseTime agree with time.Format and time.Parse of
// TimeLayout, including on the values time.Parse rejects.
func TestFastTimeMatchesTimePackage(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 200_000 {
		tm := time.Unix(r.Int64N(253402300800+62167219200)-62167219200, r.Int64N(1e9)).UTC()
		want := tm.Format(TimeLayout)
		if got := string(appendTime(nil, tm)); got != want {
			t.Fatalf("appendTime(%v) = %q, want %q", tm, got, want)
		}
		pt, ok := parseTime(want)
		ref, err := time.Parse(TimeLayout, want)
		if !ok || err != nil || !pt.Equal(ref) {
			t.Fatalf("parseTime(%q) = %v, %v; time.Parse = %v, %v", want, pt, ok, ref, err)
		}
	}
	for _, v := range []string{
		"", "2026-11-25T10:00:05.123", "2026-11-25T10:00:05.123Z ", "2026-11-25 10:00:05.123Z",
		"2026-13-25T10:00:05.123Z", "2026-00-25T10:00:05.123Z", "2026-02-30T10:00:05.123Z", "2026-11-31T10:00:05.123Z",
		"2026-11-25T24:00:05.123Z", "2026-11-25T10:60:05.123Z", "2026-11-25T10:00:60.123Z", "2026-11-25T10:00:05.12xZ",
		"+026-11-25T10:00:05.123Z", "2026-11-25T10:00:05,123Z", "2024-02-29T10:00:05.123Z", "2023-02-29T10:00:05.123Z",
		"0000-01-01T00:00:00.000Z", "9999-12-31T23:59:59.999Z",
	} {
		pt, ok := parseTime(v)
		ref, err := time.Parse(TimeLayout, v)
		refOK := err == nil && ref.Format(TimeLayout) == v
		if ok != refOK || (ok && !pt.Equal(ref)) {
			t.Errorf("parseTime(%q) = %v, %v; time.Parse agrees: %v (%v)", v, pt, ok, refOK, err)
		}
	}
}

// parseTime agrees with time.Parse on valid times with one byte changed to
// any other: each digit and separator is checked, not only the ones the
// fixed cases change. So does timeFieldsOn with the date of the time before
// (of a few dates, so that it is often the same): a date remembered is only
// reused for the same ten bytes.
func TestFastTimeRefusesAsTimePackage(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	var day aDay
	days := []int64{0, 1, 59, 60, 365, 20_000, 20_430, -1, 2_932_896}
	for range 400_000 {
		sec := r.Int64N(253402300800+62167219200) - 62167219200
		if r.IntN(2) == 0 {
			sec = days[r.IntN(len(days))]*86400 + r.Int64N(86400)
		}
		tm := time.Unix(sec, r.Int64N(1e9)).UTC()
		b := []byte(tm.Format(TimeLayout))
		if r.IntN(3) > 0 {
			i := r.IntN(len(b))
			b[i] = byte(r.IntN(256))
			if r.IntN(4) == 0 {
				b[i] = "0123456789:-.TZ/;"[r.IntN(17)] // near misses
			}
		}
		v := string(b)
		ref, err := time.Parse(TimeLayout, v)
		refOK := err == nil && ref.Format(TimeLayout) == v
		pt, ok := parseTime(v)
		if ok != refOK || (ok && !pt.Equal(ref)) {
			t.Fatalf("parseTime(%q) = %v, %v; time.Parse agrees: %v (%v)", v, pt, ok, refOK, err)
		}
		before := day
		sec, nsec, ok := timeFieldsOn(b, &day)
		if ok != refOK || (ok && !time.Unix(sec, nsec).Equal(ref)) {
			t.Fatalf("timeFieldsOn(%q) after a time of day %d = %v, %v; time.Parse agrees: %v (%v)", v, before.days, time.Unix(sec, nsec).UTC(), ok, refOK, err)
		}
	}
}

// An Encoder writes every time as time.Format does, whether it reuses the
// date of the time before (the same day) or not, and out of the years
// 0000-9999 too.
func TestEncoderTimeMatchesTimePackage(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	var e Encoder
	at := time.Date(2026, 11, 25, 23, 59, 59, 999_000_000, time.UTC)
	for i := range 200_000 {
		switch i % 4 {
		case 0: // anywhere, often another day
			at = time.Unix(r.Int64N(253402300800+62167219200)-62167219200, r.Int64N(1e9))
		case 1: // a few ms to a day later: often the same day, sometimes across midnight
			at = at.Add(time.Duration(r.Int64N(int64(24 * time.Hour))))
		case 2: // just across midnight
			at = at.Truncate(24 * time.Hour).Add(24*time.Hour - time.Duration(r.Int64N(2e6)))
		case 3: // out of the 4-digit years
			if r.IntN(20) == 0 {
				at = time.Unix(-62167219200-r.Int64N(1e12), 0)
			}
		}
		tm := at.In(time.FixedZone("x", 3600*(r.IntN(27)-12)))
		want := tm.UTC().Format(TimeLayout)
		if got := string(e.appendTime(nil, tm)); got != want {
			t.Fatalf("Encoder.appendTime(%v) = %q, want %q", tm, got, want)
		}
	}
}

func BenchmarkEncodeDecode(b *testing.B) {
	now := time.Now()
	md := Metadata{Group: "orders-service", Attempts: 1, Tier: "retry-5s", DueAt: now, OriginalTopic: "orders",
		OriginalPartition: 3, OriginalOffset: 123456, OriginalTimestamp: now, FirstFailureAt: now, LastFailureAt: now,
		Error: "bench: every first delivery fails"}
	b.ReportAllocs()
	for b.Loop() {
		hs := Encode(nil, md)
		if _, _, err := Decode(hs); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReEncode is the relay's and a retried record's path: Decode and
// Encode of a record that already carries the kretry headers.
func BenchmarkReEncode(b *testing.B) {
	now := time.Now()
	md := Metadata{Group: "orders-service", Attempts: 1, Tier: "retry-5s", DueAt: now, OriginalTopic: "orders",
		OriginalPartition: 3, OriginalOffset: 123456, OriginalTimestamp: now, FirstFailureAt: now, LastFailureAt: now,
		Error: "bench: every first delivery fails"}
	hs := Encode(nil, md)
	b.ReportAllocs()
	for b.Loop() {
		got, _, err := Decode(hs)
		if err != nil {
			b.Fatal(err)
		}
		_ = Encode(hs, got)
	}
}

// BenchmarkDecode is what the relay and the consumer do with every re-fed
// record: read its kretry headers.
func BenchmarkDecode(b *testing.B) {
	now := time.Now()
	md := Metadata{Group: "orders-service", Attempts: 1, Tier: "retry-5s", DueAt: now, OriginalTopic: "orders",
		OriginalPartition: 3, OriginalOffset: 123456, OriginalTimestamp: now, FirstFailureAt: now, LastFailureAt: now,
		Error: "bench: every first delivery fails"}
	hs := Encode([]kgo.RecordHeader{{Key: "trace", Value: []byte("abc")}}, md)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := Decode(hs); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEncode is what the consumer does for every forward to a tier:
// encode the next hop's headers for a first delivery with a user header.
func BenchmarkEncode(b *testing.B) {
	now := time.Now()
	md := Metadata{Group: "orders-service", Attempts: 1, Tier: "retry-5s", DueAt: now, OriginalTopic: "orders",
		OriginalPartition: 3, OriginalOffset: 123456, OriginalTimestamp: now, FirstFailureAt: now, LastFailureAt: now,
		Error: "bench: every first delivery fails"}
	user := []kgo.RecordHeader{{Key: "trace", Value: []byte("abc")}}
	b.ReportAllocs()
	for b.Loop() {
		_ = Encode(user, md)
	}
}

// BenchmarkEncoder is BenchmarkEncode with an Encoder reused, as the
// consumer's forwards use it.
func BenchmarkEncoder(b *testing.B) {
	now := time.Now()
	md := Metadata{Group: "orders-service", Attempts: 1, Tier: "retry-5s", DueAt: now, OriginalTopic: "orders",
		OriginalPartition: 3, OriginalOffset: 123456, OriginalTimestamp: now, FirstFailureAt: now, LastFailureAt: now,
		Error: "bench: every first delivery fails"}
	user := []kgo.RecordHeader{{Key: "trace", Value: []byte("abc")}}
	var e Encoder
	b.ReportAllocs()
	for b.Loop() {
		_ = e.Encode(user, md)
	}
}

// Reset drops every reference an Encoder holds to user headers, also those
// of a call before the last one, beyond what the last call returned.
func TestEncoderResetDropsUserHeaders(t *testing.T) {
	var e Encoder
	md := Metadata{Group: "g", Attempts: 1, Tier: "retry-5s", OriginalTopic: "t"}
	many := make([]kgo.RecordHeader, 20)
	for i := range many {
		many[i] = kgo.RecordHeader{Key: "u", Value: []byte("v")}
	}
	e.Encode(many, md)
	e.Encode(many[:2], Metadata{Replays: 1})
	e.Reset()
	for i, h := range e.out[:cap(e.out)] {
		if h.Key == "u" || len(h.Value) > 0 && &h.Value[0] == &many[0].Value[0] {
			t.Fatalf("after Reset, entry %d still holds a user header", i)
		}
		for _, u := range many {
			if len(h.Value) > 0 && &h.Value[0] == &u.Value[0] {
				t.Fatalf("after Reset, entry %d still points into a user header's value", i)
			}
		}
	}
}

// BenchmarkDecoder is BenchmarkDecode with a Decoder reused, as the
// consumer's workers use it for the records re-fed to them.
func BenchmarkDecoder(b *testing.B) {
	now := time.Now()
	md := Metadata{Group: "orders-service", Attempts: 1, Tier: "retry-5s", DueAt: now, OriginalTopic: "orders",
		OriginalPartition: 3, OriginalOffset: 123456, OriginalTimestamp: now, FirstFailureAt: now, LastFailureAt: now,
		Error: "bench: every first delivery fails"}
	hs := Encode([]kgo.RecordHeader{{Key: "trace", Value: []byte("abc")}}, md)
	var d Decoder
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := d.Decode(hs); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEncoderRing is BenchmarkEncoder over 4,096 Encoders used in
// turn, as the forwards in flight of a busy consumer use theirs: each one's
// storage is out of the CPU's caches when it is used again.
func BenchmarkEncoderRing(b *testing.B) {
	now := time.Now()
	md := Metadata{Group: "orders-service", Attempts: 1, Tier: "retry-5s", DueAt: now, OriginalTopic: "orders",
		OriginalPartition: 3, OriginalOffset: 123456, OriginalTimestamp: now, FirstFailureAt: now, LastFailureAt: now,
		Error: "bench: every first delivery fails"}
	es := make([]Encoder, 4096)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		md.OriginalOffset++
		md.DueAt = md.DueAt.Add(time.Millisecond)
		_ = es[i%len(es)].Encode(nil, md)
		i++
	}
}

// A reused Encoder writes each error text as a new one would: cut at
// MaxErrorLen on a UTF-8 boundary and with invalid bytes replaced, whatever
// the text of its call before (the same, another, or one too long to keep).
func TestEncoderReusedErrorText(t *testing.T) {
	long := strings.Repeat("é", MaxErrorLen)
	texts := []string{"", "boom", "boom", "bang", "bad \xff byte", "bad \xff byte", "bad \xfe byte", long, long, "boom", "", long[:MaxErrorLen-1] + "\xc3", "boom"}
	var e Encoder
	for i, text := range texts {
		md := Metadata{Group: "g", Attempts: 1, Tier: "retry-5s", OriginalTopic: "t", Error: text}
		got, want := e.Encode(nil, md), Encode(nil, md)
		if len(got) != len(want) {
			t.Fatalf("call %d (%.20q): %d headers, want %d", i, text, len(got), len(want))
		}
		for j := range got {
			if got[j].Key != want[j].Key || string(got[j].Value) != string(want[j].Value) {
				t.Fatalf("call %d (%.20q): header %s = %.40q, want %s = %.40q", i, text, got[j].Key, got[j].Value, want[j].Key, want[j].Value)
			}
		}
		e.Reset()
	}
}
