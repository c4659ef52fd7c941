package headers_test

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/headers"
)

func hdr(kv ...string) []kgo.RecordHeader {
	var hs []kgo.RecordHeader
	for i := 0; i < len(kv); i += 2 {
		hs = append(hs, kgo.RecordHeader{Key: kv[i], Value: []byte(kv[i+1])})
	}
	return hs
}

func sampleMetadata() headers.Metadata {
	at := time.Date(2026, 11, 25, 10, 0, 0, 123_000_000, time.UTC)
	return headers.Metadata{
		Group:             "orders-service",
		Attempts:          2,
		Tier:              "retry-1m",
		DueAt:             at.Add(time.Minute),
		OriginalTopic:     "orders",
		OriginalPartition: 3,
		OriginalOffset:    42,
		OriginalTimestamp: at.Add(-time.Second),
		FirstFailureAt:    at.Add(-5 * time.Second),
		LastFailureAt:     at,
		Error:             "payment service: 503",
		Replays:           1,
	}
}

// sampleHeaders is sampleMetadata as headers, written out by hand.
func sampleHeaders() []kgo.RecordHeader {
	return hdr(
		"kretry-version", "1",
		"kretry-group", "orders-service",
		"kretry-attempts", "2",
		"kretry-tier", "retry-1m",
		"kretry-due-at", "2026-11-25T10:01:00.123Z",
		"kretry-original-topic", "orders",
		"kretry-original-partition", "3",
		"kretry-original-offset", "42",
		"kretry-original-timestamp", "2026-11-25T09:59:59.123Z",
		"kretry-first-failure-at", "2026-11-25T09:59:55.123Z",
		"kretry-last-failure-at", "2026-11-25T10:00:00.123Z",
		"kretry-error", "payment service: 503",
		"kretry-replays", "1",
	)
}

func TestEncode(t *testing.T) {
	user := hdr("trace-id", "abc", "content-type", "application/json", "trace-id", "second")
	// Old kretry headers, known and unknown, anywhere among the user's.
	in := append(hdr("kretry-attempts", "1"), user[0])
	in = append(in, hdr("kretry-future", "x")...)
	in = append(in, user[1:]...)
	in = append(in, hdr("kretry-group", "old")...)

	got := headers.Encode(in, sampleMetadata())
	want := append(append([]kgo.RecordHeader(nil), user...), sampleHeaders()...)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Encode =\n%s\nwant\n%s", show(got), show(want))
	}
	// Encoding again replaces, never appends.
	again := headers.Encode(got, sampleMetadata())
	if !reflect.DeepEqual(again, want) {
		t.Errorf("Encode(Encode(...)) =\n%s\nwant\n%s", show(again), show(want))
	}
}

func TestEncodeOmitsEmptyOptionals(t *testing.T) {
	md := sampleMetadata()
	md.Error, md.Replays = "", 0
	got := headers.Encode(nil, md)
	for _, h := range got {
		if h.Key == headers.HeaderErrorText || h.Key == headers.HeaderReason || h.Key == headers.HeaderReplays {
			t.Errorf("Encode wrote %s=%q; want it left out", h.Key, h.Value)
		}
	}
	if len(got) != 11 {
		t.Errorf("Encode wrote %d headers, want 11:\n%s", len(got), show(got))
	}

	md.Reason = headers.ReasonExhausted
	if v := value(headers.Encode(nil, md), headers.HeaderReason); v != "exhausted" {
		t.Errorf("kretry-reason = %q, want exhausted", v)
	}
}

func TestEncodeReplayOnly(t *testing.T) {
	in := append(hdr("a", "1"), sampleHeaders()...)
	got := headers.Encode(in, headers.Metadata{Replays: 3})
	if want := hdr("a", "1", "kretry-replays", "3"); !reflect.DeepEqual(got, want) {
		t.Errorf("Encode =\n%s\nwant\n%s", show(got), show(want))
	}
	if got := headers.Encode(in, headers.Metadata{}); !reflect.DeepEqual(got, hdr("a", "1")) {
		t.Errorf("Encode of empty metadata = %s; want the user headers only", show(got))
	}
}

// TestEncodeSaturatesCounts: a count past the int32 range that the
// headers hold is written as MaxAttempts, which Decode reads back, never as
// a number Decode rejects (kretry-attempts 2147483648 made kretry's own DLQ
// reader call a record invalid-metadata).
func TestEncodeSaturatesCounts(t *testing.T) {
	for _, n := range []int{headers.MaxAttempts, headers.MaxAttempts + 1, 1 << 40} {
		md := sampleMetadata()
		md.Attempts, md.Replays = n, n
		hs := headers.Encode(nil, md)
		if a, r := value(hs, headers.HeaderAttempts), value(hs, headers.HeaderReplays); a != "2147483647" || r != "2147483647" {
			t.Errorf("Encode with attempts and replays %d wrote kretry-attempts %s, kretry-replays %s; want 2147483647", n, a, r)
		}
		got, ok, err := headers.Decode(hs)
		if err != nil || !ok || got.Attempts != headers.MaxAttempts || got.Replays != headers.MaxAttempts {
			t.Errorf("Decode(Encode(attempts %d)) = attempts %d, replays %d, %v, %v", n, got.Attempts, got.Replays, ok, err)
		}
	}
	if v := value(headers.Encode(nil, headers.Metadata{Replays: 1 << 40}), headers.HeaderReplays); v != "2147483647" {
		t.Errorf("Encode of a replay-only record wrote kretry-replays %s; want 2147483647", v)
	}
}

// TestHeaderErrorEscapesControlCharacters: an error about a forged header
// value escapes what a terminal or a log reader would act on.
func TestHeaderErrorEscapesControlCharacters(t *testing.T) {
	_, _, err := headers.Decode(hdr("kretry-version", "1", "kretry-group", "g", "kretry-attempts", "\x1b[2J\x1b[31m\r\nlevel=ERROR forged\xff"))
	if err == nil {
		t.Fatal("Decode accepted a forged kretry-attempts")
	}
	msg := err.Error()
	if strings.ContainsFunc(msg, func(r rune) bool { return r < 0x20 || r == 0x7f || r == utf8.RuneError }) {
		t.Errorf("error %q holds control characters or invalid bytes", msg)
	}
	if !strings.Contains(msg, `"\x1b[2J\x1b[31m\r\nlevel=ERROR forged\xff"`) {
		t.Errorf("error %q does not show the value quoted and escaped", msg)
	}
}

func TestEncodeCutsError(t *testing.T) {
	for _, tc := range []struct {
		name, err string
		wantLen   int
	}{
		{"short", "boom", 4},
		{"exactly 1 KiB", strings.Repeat("a", 1024), 1024},
		{"ascii over", strings.Repeat("a", 2000), 1024},
		// 'é' is 2 bytes: 1023 'a' then 'é' would end at byte 1025, so the cut falls before it.
		{"multibyte at the edge", strings.Repeat("a", 1023) + "é" + "zzz", 1023},
		// '€' is 3 bytes: 341 of them are 1023 bytes.
		{"all multibyte", strings.Repeat("€", 400), 1023},
		{"invalid UTF-8 is replaced", "bad \xff byte", len("bad \uFFFD byte")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			md := sampleMetadata()
			md.Error = tc.err
			v := value(headers.Encode(nil, md), headers.HeaderErrorText)
			if len(v) != tc.wantLen || !utf8.ValidString(v) {
				t.Errorf("kretry-error is %d bytes (valid UTF-8: %v), want %d", len(v), utf8.ValidString(v), tc.wantLen)
			}
			if !strings.HasPrefix(strings.ToValidUTF8(tc.err, "\uFFFD"), v) {
				t.Errorf("kretry-error %q is not a prefix of the error", v)
			}
			got, ok, err := headers.Decode(headers.Encode(nil, md))
			if err != nil || !ok || got.Error != v {
				t.Errorf("Decode: %v, %v, Error %q", ok, err, got.Error)
			}
		})
	}
}

func TestDecode(t *testing.T) {
	md, ok, err := headers.Decode(append(hdr("x", "y"), sampleHeaders()...))
	if err != nil || !ok {
		t.Fatalf("Decode = _, %v, %v", ok, err)
	}
	if want := sampleMetadata(); !reflect.DeepEqual(md, want) {
		t.Errorf("Decode =\n%+v\nwant\n%+v", md, want)
	}

	for _, tc := range []struct {
		name string
		hs   []kgo.RecordHeader
		want headers.Metadata
		ok   bool
	}{
		{"no headers", nil, headers.Metadata{}, false},
		{"user headers only", hdr("a", "1", "kretry", "2", "Kretry-group", "g"), headers.Metadata{}, false},
		{"unknown kretry header only", hdr("kretry-future", "x"), headers.Metadata{}, false},
		{"replay only", hdr("kretry-replays", "2"), headers.Metadata{Replays: 2}, true},
		{"replay with version", hdr("kretry-version", "1", "kretry-replays", "2"), headers.Metadata{Replays: 2}, true},
		{"replays 0", hdr("kretry-replays", "0"), headers.Metadata{}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			md, ok, err := headers.Decode(tc.hs)
			if err != nil || ok != tc.ok || !reflect.DeepEqual(md, tc.want) {
				t.Errorf("Decode = %+v, %v, %v; want %+v, %v, nil", md, ok, err, tc.want, tc.ok)
			}
			md, ok, err = usedDecoder().Decode(tc.hs)
			if err != nil || ok != tc.ok || !reflect.DeepEqual(md, tc.want) {
				t.Errorf("Decoder.Decode = %+v, %v, %v; want %+v, %v, nil", md, ok, err, tc.want, tc.ok)
			}
		})
	}

	t.Run("reason and unknown header", func(t *testing.T) {
		hs := append(sampleHeaders(), hdr("kretry-reason", "invalid-metadata", "kretry-future", "whatever")...)
		md, ok, err := headers.Decode(hs)
		if err != nil || !ok || md.Reason != headers.ReasonInvalidMetadata {
			t.Errorf("Decode = Reason %q, %v, %v", md.Reason, ok, err)
		}
	})
}

func TestDecodeErrors(t *testing.T) {
	// with returns sampleHeaders with name set to value, or removed when
	// value is "-".
	with := func(name, value string) []kgo.RecordHeader {
		var hs []kgo.RecordHeader
		for _, h := range sampleHeaders() {
			if h.Key == name {
				if value == "-" {
					continue
				}
				h.Value = []byte(value)
			}
			hs = append(hs, h)
		}
		if value != "-" && !has(hs, name) {
			hs = append(hs, kgo.RecordHeader{Key: name, Value: []byte(value)})
		}
		return hs
	}
	for _, tc := range []struct {
		name    string
		hs      []kgo.RecordHeader
		header  string
		value   string
		message string
		is      error
	}{
		{"attempts not a number", with("kretry-attempts", "x"), "kretry-attempts", "x",
			`kretry header kretry-attempts: invalid value "x": want a base-10 integer ≥ 1`, nil},
		{"attempts 0", with("kretry-attempts", "0"), "kretry-attempts", "0", "", nil},
		{"attempts negative", with("kretry-attempts", "-1"), "kretry-attempts", "-1", "", nil},
		{"attempts with plus", with("kretry-attempts", "+2"), "kretry-attempts", "+2", "", nil},
		{"attempts leading zero", with("kretry-attempts", "02"), "kretry-attempts", "02", "", nil},
		{"attempts space", with("kretry-attempts", " 2"), "kretry-attempts", " 2", "", nil},
		{"attempts empty", with("kretry-attempts", ""), "kretry-attempts", "", "", nil},
		{"attempts overflow", with("kretry-attempts", "99999999999999999999"), "kretry-attempts", "99999999999999999999",
			`want a base-10 integer from 1 to 2147483647`, nil},
		{"attempts missing", with("kretry-attempts", "-"), "kretry-attempts", "",
			"kretry header kretry-attempts: missing: a record with kretry-group must carry it", headers.ErrHeaderMissing},
		{"version 2", with("kretry-version", "2"), "kretry-version", "2",
			`kretry header kretry-version: invalid value "2": unsupported version: this kretry reads version 1`, nil},
		{"version missing", with("kretry-version", "-"), "kretry-version", "", "", headers.ErrHeaderMissing},
		{"version 2 without group", hdr("kretry-version", "2", "kretry-replays", "1"), "kretry-version", "2", "", nil},
		{"group empty", with("kretry-group", ""), "kretry-group", "", "want a non-empty value", nil},
		{"group missing", with("kretry-group", "-"), "kretry-group", "",
			"kretry header kretry-group: missing: the record carries kretry-attempts, which needs it", headers.ErrHeaderMissing},
		{"attempts without group", hdr("kretry-attempts", "1"), "kretry-group", "", "", headers.ErrHeaderMissing},
		{"tier missing", with("kretry-tier", "-"), "kretry-tier", "", "", headers.ErrHeaderMissing},
		{"tier empty", with("kretry-tier", ""), "kretry-tier", "", "", nil},
		{"tier not UTF-8", with("kretry-tier", "retry-\xff"), "kretry-tier", "retry-\xff", "want UTF-8 text", nil},
		{"due-at missing", with("kretry-due-at", "-"), "kretry-due-at", "", "", headers.ErrHeaderMissing},
		{"due-at no millis", with("kretry-due-at", "2026-11-25T10:01:00Z"), "kretry-due-at", "2026-11-25T10:01:00Z",
			`kretry header kretry-due-at: invalid value "2026-11-25T10:01:00Z": want an RFC 3339 UTC time with milliseconds, like 2026-11-25T10:00:05.123Z`, nil},
		{"due-at micros", with("kretry-due-at", "2026-11-25T10:01:00.123456Z"), "kretry-due-at", "2026-11-25T10:01:00.123456Z", "", nil},
		{"due-at offset", with("kretry-due-at", "2026-11-25T10:01:00.123+01:00"), "kretry-due-at", "2026-11-25T10:01:00.123+01:00", "", nil},
		{"due-at unix", with("kretry-due-at", "1764064860123"), "kretry-due-at", "1764064860123", "", nil},
		{"due-at bad day", with("kretry-due-at", "2026-02-30T10:01:00.123Z"), "kretry-due-at", "2026-02-30T10:01:00.123Z", "", nil},
		{"original-topic empty", with("kretry-original-topic", ""), "kretry-original-topic", "", "", nil},
		{"original-partition negative", with("kretry-original-partition", "-1"), "kretry-original-partition", "-1", "", nil},
		{"original-partition too big", with("kretry-original-partition", "2147483648"), "kretry-original-partition", "2147483648", "from 0 to 2147483647", nil},
		{"original-offset not a number", with("kretry-original-offset", "4e2"), "kretry-original-offset", "4e2", "want a base-10 integer ≥ 0", nil},
		{"original-offset missing", with("kretry-original-offset", "-"), "kretry-original-offset", "", "", headers.ErrHeaderMissing},
		{"original-timestamp missing", with("kretry-original-timestamp", "-"), "kretry-original-timestamp", "", "", headers.ErrHeaderMissing},
		{"first-failure-at bad", with("kretry-first-failure-at", "yesterday"), "kretry-first-failure-at", "yesterday", "", nil},
		{"last-failure-at missing", with("kretry-last-failure-at", "-"), "kretry-last-failure-at", "", "", headers.ErrHeaderMissing},
		{"reason unknown", with("kretry-reason", "tired"), "kretry-reason", "tired", "want exhausted, permanent, panic, expired, too-large or invalid-metadata", nil},
		{"reason empty", with("kretry-reason", ""), "kretry-reason", "", "", nil},
		{"replays negative", with("kretry-replays", "-1"), "kretry-replays", "-1", "want a base-10 integer ≥ 0", nil},
		{"replays bad without group", hdr("kretry-replays", "many"), "kretry-replays", "many", "", nil},
		{"error not UTF-8", with("kretry-error", "\xff"), "kretry-error", "\xff", "want UTF-8 text", nil},
		{"repeated attempts", append(sampleHeaders(), hdr("kretry-attempts", "3")...), "kretry-attempts", "3",
			"kretry header kretry-attempts: repeated: a record carries each kretry header at most once", headers.ErrHeaderRepeated},
		{"repeated replays", hdr("kretry-replays", "1", "kretry-replays", "1"), "kretry-replays", "1", "", headers.ErrHeaderRepeated},
	} {
		t.Run(tc.name, func(t *testing.T) {
			md, ok, err := headers.Decode(tc.hs)
			var he *headers.HeaderError
			if !errors.As(err, &he) {
				t.Fatalf("Decode = %+v, %v, %v; want a *HeaderError", md, ok, err)
			}
			if ok || md != (headers.Metadata{}) {
				t.Errorf("Decode returned %+v, %v with its error", md, ok)
			}
			if he.Header != tc.header || he.Value != tc.value {
				t.Errorf("HeaderError{Header: %q, Value: %q}, want {%q, %q}", he.Header, he.Value, tc.header, tc.value)
			}
			if tc.message != "" && !strings.Contains(err.Error(), tc.message) {
				t.Errorf("error %q does not contain %q", err, tc.message)
			}
			if !strings.HasPrefix(err.Error(), "kretry header "+tc.header+": ") {
				t.Errorf("error %q does not start by naming the header", err)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("errors.Is(%v, %v) = false", err, tc.is)
			}
			if md, ok, derr := usedDecoder().Decode(tc.hs); ok || md != (headers.Metadata{}) || derr == nil || derr.Error() != err.Error() {
				t.Errorf("Decoder.Decode = %+v, %v, %v; want the error of Decode, %v", md, ok, derr, err)
			}
		})
	}
}

func TestHeaderErrorShortensLongValues(t *testing.T) {
	err := &headers.HeaderError{Header: "kretry-tier", Value: strings.Repeat("t", 100), Err: errors.New("bad")}
	if msg := err.Error(); !strings.Contains(msg, `"`+strings.Repeat("t", 64)+`"...`) || strings.Contains(msg, strings.Repeat("t", 65)) {
		t.Errorf("message %q does not shorten the value to 64 bytes", msg)
	}
	if !errors.Is(err, err.Err) {
		t.Error("HeaderError does not unwrap to its Err")
	}
}

func TestUserHeaders(t *testing.T) {
	hs := append(hdr("a", "1"), sampleHeaders()...)
	hs = append(hs, hdr("b", "2", "kretry-future", "x", "a", "3")...)
	if got, want := headers.UserHeaders(hs), hdr("a", "1", "b", "2", "a", "3"); !reflect.DeepEqual(got, want) {
		t.Errorf("UserHeaders = %s, want %s", show(got), show(want))
	}
	if got := headers.UserHeaders(sampleHeaders()); got != nil {
		t.Errorf("UserHeaders of kretry headers only = %s, want nil", show(got))
	}
}

func TestFormatTime(t *testing.T) {
	at := time.Date(2026, 11, 25, 11, 0, 5, 123_999_999, time.FixedZone("CET", 3600))
	if got := headers.FormatTime(at); got != "2026-11-25T10:00:05.123Z" {
		t.Errorf("FormatTime = %q", got)
	}
	if got := headers.FormatTime(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)); got != "2026-01-02T03:04:05.000Z" {
		t.Errorf("FormatTime = %q", got)
	}
}

// TestReplayedToGroup: a record replayed from the DLQ to the group that failed
// it carries that group, the first delivery and the replay count, and no
// attempt; it reads back as written, and a half-written one is refused.
func TestReplayedToGroup(t *testing.T) {
	at := time.Date(2026, 11, 25, 9, 59, 59, 123_000_000, time.UTC)
	md := headers.Metadata{Group: "svc", OriginalTopic: "orders", OriginalPartition: 1, OriginalOffset: 7, OriginalTimestamp: at, Replays: 2}
	hs := headers.Encode(hdr("trace", "t"), md)
	if got := strings.Join(strings.Fields(show(hs)), " "); got != "trace=t kretry-version=1 kretry-group=svc kretry-original-topic=orders kretry-original-partition=1 "+
		"kretry-original-offset=7 kretry-original-timestamp=2026-11-25T09:59:59.123Z kretry-replays=2" {
		t.Errorf("Encode = %s", got)
	}
	got, ok, err := headers.Decode(hs)
	if err != nil || !ok || got != md {
		t.Errorf("Decode = %+v, %v, %v; want %+v", got, ok, err, md)
	}
	noOrig := headers.Metadata{Group: "svc", Replays: 1}
	if got, ok, err := headers.Decode(headers.Encode(nil, noOrig)); err != nil || !ok || got != noOrig {
		t.Errorf("without the first delivery: %+v, %v, %v", got, ok, err)
	}
	for _, bad := range [][]kgo.RecordHeader{
		hdr("kretry-version", "1", "kretry-group", "svc", "kretry-replays", "1", "kretry-original-topic", "orders"),
		hdr("kretry-version", "1", "kretry-group", "svc", "kretry-replays", "0"),
		hdr("kretry-version", "1", "kretry-group", "svc", "kretry-replays", "1", "kretry-tier", "retry-1m"),
		hdr("kretry-group", "svc", "kretry-replays", "1"),
	} {
		if md, _, err := headers.Decode(bad); err == nil {
			t.Errorf("Decode(%s) = %+v, want an error", show(bad), md)
		}
	}
}

// FuzzDecode checks that Decode never panics and that what it accepts
// encodes and decodes back to the same Metadata. The seeds run in every
// `go test`; `go test -fuzz FuzzDecode ./headers` explores further.
func FuzzDecode(f *testing.F) {
	add := func(hs []kgo.RecordHeader) { f.Add(pack(hs)) }
	add(nil)
	add(sampleHeaders())
	add(append(hdr("user", "v"), sampleHeaders()...))
	add(hdr("kretry-replays", "4"))
	add(hdr("kretry-version", "1", "kretry-replays", "0"))
	add(append(sampleHeaders(), hdr("kretry-reason", "panic")...))
	add(append(sampleHeaders(), hdr("kretry-attempts", "3")...))
	add(hdr("kretry-group", "g"))
	add(hdr("kretry-attempts", "x"))
	add(hdr("kretry-version", "1", "kretry-group", "g", "kretry-attempts", "2147483648"))
	add(hdr("kretry-version", "1", "kretry-group", "g", "kretry-attempts", "\x1b[2J\r\n"))
	add(hdr("kretry-version", "1", "kretry-group", "g\x00\xff", "kretry-tier", strings.Repeat("\u202e", 100)))
	add(hdr("kretry-version", "1", "kretry-group", "g", "kretry-replays", "2", "kretry-original-topic", "orders",
		"kretry-original-partition", "1", "kretry-original-offset", "7", "kretry-original-timestamp", "2026-11-25T09:59:59.123Z"))
	add(hdr("kretry-version", "1", "kretry-group", "g", "kretry-replays", "1"))
	md := sampleMetadata()
	md.Error = strings.Repeat("é", 600)
	add(headers.Encode(nil, md))

	f.Fuzz(func(t *testing.T, packed []byte) {
		hs := unpack(packed)
		md, ok, err := headers.Decode(hs)
		dmd, dok, derr := usedDecoder().Decode(hs)
		if dmd != md || dok != ok || fmt.Sprint(derr) != fmt.Sprint(err) {
			t.Fatalf("Decoder.Decode = %+v, %v, %v; Decode = %+v, %v, %v", dmd, dok, derr, md, ok, err)
		}
		if err != nil {
			var he *headers.HeaderError
			if !errors.As(err, &he) || !strings.HasPrefix(he.Header, headers.HeaderPrefix) {
				t.Fatalf("Decode error %v is not a *HeaderError naming a kretry header", err)
			}
			// The message goes to logs and terminals: values quoted, cut and escaped.
			msg := err.Error()
			if strings.ContainsFunc(msg, func(r rune) bool { return r < 0x20 || r == 0x7f || r == utf8.RuneError }) {
				t.Fatalf("Decode error %q holds control characters or invalid UTF-8", msg)
			}
			if len(msg) > 600 {
				t.Fatalf("Decode error is %d bytes long: a value is not cut", len(msg))
			}
			return
		}
		if !ok {
			if md != (headers.Metadata{}) {
				t.Fatalf("Decode = %+v, false, nil", md)
			}
			return
		}
		enc := headers.Encode(hs, md)
		md2, ok2, err := headers.Decode(enc)
		if err != nil {
			t.Fatalf("Decode(Encode(%+v)): %v", md, err)
		}
		want := md
		if len(want.Error) > headers.MaxErrorLen {
			want.Error = md2.Error // checked below
			if len(md2.Error) > headers.MaxErrorLen || !strings.HasPrefix(md.Error, md2.Error) || len(md.Error)-len(md2.Error) > headers.MaxErrorLen {
				t.Fatalf("kretry-error cut to %d bytes from %d", len(md2.Error), len(md.Error))
			}
		}
		if md2 != want {
			t.Fatalf("round trip:\n got %+v\nwant %+v", md2, want)
		}
		if ok2 != (want != headers.Metadata{}) {
			t.Fatalf("round trip of %+v: ok = %v", want, ok2)
		}
		if !reflect.DeepEqual(headers.UserHeaders(enc), headers.UserHeaders(hs)) {
			t.Fatalf("Encode changed the user headers: %s → %s", show(hs), show(enc))
		}
		// An Encoder that wrote other headers before writes the same.
		var e headers.Encoder
		e.Encode(hdr("user", "v"), sampleMetadata())
		if got := e.Encode(hs, md); !reflect.DeepEqual(got, enc) {
			t.Fatalf("Encoder.Encode after another record:\n%s\nEncode:\n%s", show(got), show(enc))
		}
	})
}

// pack and unpack turn a header list into one byte string for the fuzzer:
// each header is "key\x00value\x00".
func pack(hs []kgo.RecordHeader) []byte {
	var b []byte
	for _, h := range hs {
		b = append(b, h.Key...)
		b = append(b, 0)
		b = append(b, h.Value...)
		b = append(b, 0)
	}
	return b
}

func unpack(b []byte) []kgo.RecordHeader {
	parts := strings.Split(string(b), "\x00")
	var hs []kgo.RecordHeader
	for i := 0; i+1 < len(parts); i += 2 {
		hs = append(hs, kgo.RecordHeader{Key: parts[i], Value: []byte(parts[i+1])})
	}
	return hs
}

func value(hs []kgo.RecordHeader, key string) string {
	for _, h := range hs {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

func has(hs []kgo.RecordHeader, key string) bool {
	for _, h := range hs {
		if h.Key == key {
			return true
		}
	}
	return false
}

func show(hs []kgo.RecordHeader) string {
	var b strings.Builder
	for _, h := range hs {
		b.WriteString("  " + h.Key + "=" + string(h.Value) + "\n")
	}
	return b.String()
}

func ExampleDecode() {
	hs := []kgo.RecordHeader{
		{Key: "trace-id", Value: []byte("abc")},
		{Key: "kretry-replays", Value: []byte("2")},
	}
	md, ok, err := headers.Decode(hs)
	fmt.Println(md.Replays, ok, err)

	hs = append(hs,
		kgo.RecordHeader{Key: "kretry-version", Value: []byte("1")},
		kgo.RecordHeader{Key: "kretry-group", Value: []byte("orders-service")},
		kgo.RecordHeader{Key: "kretry-attempts", Value: []byte("two")})
	_, _, err = headers.Decode(hs)
	fmt.Println(err)
	// Output:
	// 2 true <nil>
	// kretry header kretry-attempts: invalid value "two": want a base-10 integer ≥ 1
}

// An Encoder writes what Encode writes, record after record, whatever it
// wrote before (more headers, fewer, longer values, other days), and Reset
// keeps that true.
func TestEncoderMatchesEncode(t *testing.T) {
	full := sampleMetadata()
	full.Error, full.Replays, full.InPlaceRetries = strings.Repeat("é", 700), 3, 2
	full.TraceParent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	dead := sampleMetadata().DeadLettered(headers.ReasonPermanent, "retry-1m", time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC))
	dead.Route = "invalid"
	longer := sampleMetadata() // the same headers, some values longer than sampleMetadata's
	longer.OriginalOffset, longer.Attempts, longer.Error = 100042, 12, "payment service: 503 Service Unavailable"
	mds := []headers.Metadata{
		full,
		sampleMetadata(),
		sampleMetadata(),
		longer,
		sampleMetadata(),
		{Replays: 2},
		{Group: "g", Replays: 1, OriginalTopic: "orders", OriginalTimestamp: time.Unix(0, 0)},
		dead,
		{},
		sampleMetadata().InTier("retry-5s", time.Date(2026, 11, 26, 0, 0, 0, 1e6, time.UTC)),
	}
	users := [][]kgo.RecordHeader{nil, hdr("a", "1", "b", "2", "kretry-group", "old"), hdr("trace", strings.Repeat("x", 100))}
	var e headers.Encoder
	for round := range 3 {
		for i, md := range mds {
			hs := users[(i+round)%len(users)]
			want := headers.Encode(hs, md)
			if got := e.Encode(hs, md); !reflect.DeepEqual(got, want) {
				t.Fatalf("round %d, metadata %d: Encoder.Encode:\n%s\nEncode:\n%s", round, i, show(got), show(want))
			}
			if i%2 == 1 {
				e.Reset()
			}
		}
	}
}

// usedDecoder returns a Decoder that decoded the headers of other records
// before: of the same group, tier and error, and of others.
func usedDecoder() *headers.Decoder {
	var d headers.Decoder
	other := sampleMetadata()
	other.Group, other.Tier, other.OriginalTopic, other.Error, other.Reason, other.Route = "g", "t", "o", "e", headers.ReasonPanic, "r"
	for _, md := range []headers.Metadata{other, sampleMetadata()} {
		if _, _, err := d.Decode(headers.Encode(nil, md)); err != nil {
			panic(err)
		}
	}
	return &d
}

// A Decoder gives the text values of the record before, when a record
// repeats them, without copying them again; a value that changes is read
// anew.
func TestDecoderReusesTextValues(t *testing.T) {
	var d headers.Decoder
	first, _, err := d.Decode(sampleHeaders())
	if err != nil {
		t.Fatal(err)
	}
	hs := sampleHeaders()
	var again headers.Metadata
	if n := testing.AllocsPerRun(100, func() { again, _, err = d.Decode(hs) }); n != 0 || err != nil {
		t.Errorf("Decoder.Decode of the same group, tier, topic and error: %v allocations, error %v; want 0, nil", n, err)
	}
	if again != first {
		t.Errorf("Decoder.Decode again = %+v, want %+v", again, first)
	}
	for name, s := range map[string][2]string{"group": {again.Group, first.Group}, "tier": {again.Tier, first.Tier},
		"original topic": {again.OriginalTopic, first.OriginalTopic}, "error": {again.Error, first.Error}} {
		if unsafe.StringData(s[0]) != unsafe.StringData(s[1]) {
			t.Errorf("%s copied again, not reused", name)
		}
	}
	// A header's value changed in place after the call: what Decode returned
	// is a copy, and the next call reads the new value.
	for _, h := range hs {
		if h.Key == headers.HeaderErrorText {
			copy(h.Value, "PAYMENT")
		}
	}
	if again.Error != "payment service: 503" {
		t.Errorf("Error = %q after the header changed, want it unchanged", again.Error)
	}
	if md, _, _ := d.Decode(hs); md.Error != "PAYMENT service: 503" || md.Group != first.Group {
		t.Errorf("Decoder.Decode after the error changed = Error %q, Group %q", md.Error, md.Group)
	}
}

// DecodeReplays reads kretry-replays alone, also next to kretry headers
// that do not read.
func TestDecodeReplays(t *testing.T) {
	for _, tc := range []struct {
		name string
		hs   []kgo.RecordHeader
		want int
		err  bool
	}{
		{"none", hdr("a", "1"), 0, false},
		{"alone", hdr("kretry-replays", "3"), 3, false},
		{"among others", append(sampleHeaders(), hdr("x", "y")...), 1, false},
		{"next to a malformed header", hdr("kretry-attempts", "x", "kretry-replays", "7"), 7, false},
		{"malformed", hdr("kretry-replays", "-1"), 0, true},
		{"repeated", hdr("kretry-replays", "1", "kretry-replays", "2"), 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := headers.DecodeReplays(tc.hs)
			if n != tc.want || (err != nil) != tc.err {
				t.Errorf("DecodeReplays = %d, %v; want %d, error %v", n, err, tc.want, tc.err)
			}
			var he *headers.HeaderError
			if err != nil && (!errors.As(err, &he) || he.Header != headers.HeaderReplays) {
				t.Errorf("DecodeReplays error %v does not name %s", err, headers.HeaderReplays)
			}
		})
	}
}

// An Encoder writes each time header as FormatTime does, whichever times of
// a record are equal to one another: to the millisecond (its first and last
// failure), in the same second but another millisecond, in another second
// with the same milliseconds, or out of the four-digit years; and it writes
// the same for its next record.
func TestEncoderEqualTimes(t *testing.T) {
	at := time.Date(2026, 11, 25, 10, 0, 0, 123_000_000, time.UTC)
	times := []time.Time{
		at,
		at.Add(400 * time.Microsecond), // the same millisecond
		at.Add(time.Millisecond),
		at.Add(time.Second), // the same milliseconds, another second
		at.Add(-time.Second),
		at.Add(24 * time.Hour),
		at.In(time.FixedZone("x", 5*3600)), // the same instant elsewhere
		{},
		time.Date(10000, 1, 1, 0, 0, 0, 123_000_000, time.UTC),
		time.Date(-1, 1, 1, 0, 0, 0, 123_000_000, time.UTC),
	}
	var e headers.Encoder
	for i, due := range times {
		for j, first := range times {
			for k, last := range times {
				md := sampleMetadata()
				md.DueAt, md.OriginalTimestamp, md.FirstFailureAt, md.LastFailureAt = due, times[(i+j+k)%len(times)], first, last
				for _, hs := range [][]kgo.RecordHeader{headers.Encode(nil, md), e.Encode(hdr("u", "1"), md)} {
					for key, want := range map[string]time.Time{headers.HeaderDueAt: md.DueAt,
						headers.HeaderOriginalTimestamp: md.OriginalTimestamp, headers.HeaderFirstFailureAt: first,
						headers.HeaderLastFailureAt: last} {
						if got := value(hs, key); got != want.UTC().Format(headers.TimeLayout) {
							t.Fatalf("times %d, %d, %d: %s = %q, want %q", i, j, k, key, got, want.UTC().Format(headers.TimeLayout))
						}
					}
				}
			}
		}
	}
}
