package dlq_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/dlq"
	"github.com/kretry/kretry/headers"
)

func TestParseTimeBound(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Time
	}{
		{"2026-11-25T10:00:00Z", time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)},
		{"2026-11-25T10:00:00+02:00", time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC)},
		{"2026-11-25T10:00:00.5Z", time.Date(2026, 11, 25, 10, 0, 0, 5e8, time.UTC)},
		{"2026-11-25T10:00", time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)},
		{"2026-11-25 10:00:30", time.Date(2026, 11, 25, 10, 0, 30, 0, time.UTC)},
		{"2026-11-25", time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)},
		{"90s", now.Add(-90 * time.Second)},
		{"2h", now.Add(-2 * time.Hour)},
		{"1h30m", now.Add(-90 * time.Minute)},
		{"3d", now.Add(-72 * time.Hour)},
		{"0.5d", now.Add(-12 * time.Hour)},
	} {
		b, err := dlq.ParseTimeBound(tc.in)
		if err != nil {
			t.Errorf("ParseTimeBound(%q): %v", tc.in, err)
			continue
		}
		if got := b.Resolve(now); !got.Equal(tc.want) {
			t.Errorf("ParseTimeBound(%q) = %v, want %v", tc.in, got, tc.want)
		}
		// The canonical form parses back to the same bound.
		if b2, err := dlq.ParseTimeBound(b.String()); err != nil || !b2.Resolve(now).Equal(tc.want) {
			t.Errorf("ParseTimeBound(%q).String() = %q does not parse back: %v", tc.in, b.String(), err)
		}
	}
	for _, in := range []string{"", "yesterday", "-2h", "0s", "2x", "2026-13-01", "25/11/2026", "d", "-1d"} {
		_, err := dlq.ParseTimeBound(in)
		if err == nil {
			t.Errorf("ParseTimeBound(%q) = nil error, want one", in)
			continue
		}
		if !strings.Contains(err.Error(), "duration ago (90s, 30m, 2h, 3d)") {
			t.Errorf("ParseTimeBound(%q) error %q does not say what is allowed", in, err)
		}
	}
}

func TestParseOffsets(t *testing.T) {
	for _, tc := range []struct {
		in       string
		want     dlq.OffsetRange
		in1, out []int64
	}{
		{"5-9", dlq.OffsetRange{From: 5, To: 9, HasTo: true}, []int64{5, 7, 9}, []int64{0, 4, 10}},
		{"5-", dlq.OffsetRange{From: 5}, []int64{5, 1 << 40}, []int64{4}},
		{"-9", dlq.OffsetRange{To: 9, HasTo: true}, []int64{0, 9}, []int64{10}},
		{"7", dlq.OffsetRange{From: 7, To: 7, HasTo: true}, []int64{7}, []int64{6, 8}},
		{"0", dlq.OffsetRange{From: 0, To: 0, HasTo: true}, []int64{0}, []int64{1}},
		{" 3 - 3 ", dlq.OffsetRange{From: 3, To: 3, HasTo: true}, []int64{3}, []int64{2, 4}},
	} {
		got, err := dlq.ParseOffsets(tc.in)
		if err != nil {
			t.Errorf("ParseOffsets(%q): %v", tc.in, err)
			continue
		}
		if got != tc.want {
			t.Errorf("ParseOffsets(%q) = %+v, want %+v", tc.in, got, tc.want)
		}
		for _, o := range tc.in1 {
			if !got.Contains(o) {
				t.Errorf("ParseOffsets(%q) does not contain %d", tc.in, o)
			}
		}
		for _, o := range tc.out {
			if got.Contains(o) {
				t.Errorf("ParseOffsets(%q) contains %d", tc.in, o)
			}
		}
	}
	for _, in := range []string{"5-2", "", "-", "a-b", "-5-", "1.5", "5--9", "x"} {
		_, err := dlq.ParseOffsets(in)
		if err == nil {
			t.Errorf("ParseOffsets(%q) = nil error, want one", in)
			continue
		}
		if !strings.Contains(err.Error(), "FROM-TO") {
			t.Errorf("ParseOffsets(%q) error %q does not say what is allowed", in, err)
		}
	}
	if _, err := dlq.ParseOffsets("5-2"); !strings.Contains(err.Error(), "FROM 5 is after TO 2") {
		t.Errorf("ParseOffsets(5-2) error %q does not say what is wrong", err)
	}
}

func TestParseReason(t *testing.T) {
	for _, r := range dlq.Reasons() {
		if got, err := dlq.ParseReason(strings.ToUpper(string(r))); err != nil || got != r {
			t.Errorf("ParseReason(%q) = %q, %v", strings.ToUpper(string(r)), got, err)
		}
	}
	rs := dlq.Reasons()
	rs[0] = "changed"
	if dlq.Reasons()[0] != headers.ReasonExhausted {
		t.Errorf("Reasons shares its slice: a caller's change shows in the next call")
	}
	_, err := dlq.ParseReason("timeout")
	if err == nil || !strings.Contains(err.Error(), "exhausted, permanent, panic, expired, too-large, invalid-metadata, unknown") {
		t.Errorf("ParseReason(timeout) error = %v, want the list of reasons", err)
	}
}

func TestSelection(t *testing.T) {
	since, _ := dlq.ParseTimeBound("2h")
	a := dlq.Filter{Reasons: []headers.Reason{"panic", "Permanent"}, Since: since, Limit: 5, Partitions: []int32{1}}
	b := dlq.Filter{Reasons: []headers.Reason{"permanent", "panic", "panic"}, Since: since}
	if a.Selection() != b.Selection() {
		t.Errorf("same selection, different text: %q and %q", a.Selection(), b.Selection())
	}
	if got := a.Selection(); got != `since="2h0m0s" reason="panic,permanent"` {
		t.Errorf("Selection() = %s", got)
	}
	if (dlq.Filter{}).Selection() != "all" {
		t.Errorf("empty filter selection = %q, want all", (dlq.Filter{}).Selection())
	}
	c := b
	c.Key = "k"
	if c.Selection() == b.Selection() {
		t.Errorf("a key filter does not change the selection %q", c.Selection())
	}
}

func TestMaskError(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"order 12345 not found", "order <n> not found"},
		{"order 7 not found", "order <n> not found"},
		{"order 12345678 not found", "order <n> not found"},
		{"payment 3f2b1c9e-8d7a-4b6c-9e5f-1a2b3c4d5e6f declined", "payment <uuid> declined"},
		{"payment 3F2B1C9E-8D7A-4B6C-9E5F-1A2B3C4D5E6F declined", "payment <uuid> declined"},
		{"bad pointer 0xc000123abc", "bad pointer <hex>"},
		{"trace 4bf92f3577b34da6a3ce929d0e0e4736 failed", "trace <hex> failed"},
		{"the deadbeefcafe words stay", "the deadbeefcafe words stay"},
		{"dial tcp 10.0.0.12:9092: i/o timeout after 30s", "dial tcp <n>.<n>.<n>.<n>:<n>: i/o timeout after <n>s"},
		{"  two\n lines\t here ", "two lines here"},
		{"", ""},
	} {
		if got := dlq.MaskError(tc.in); got != tc.want {
			t.Errorf("MaskError(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	long := strings.Repeat("x", 500)
	if got := dlq.MaskError(long); len([]rune(got)) != 201 {
		t.Errorf("MaskError of 500 chars kept %d", len([]rune(got)))
	}
}

func TestNewRecord(t *testing.T) {
	md := testMeta("orders", 2, 40, headers.ReasonPermanent, "boom")
	good := dlq.NewRecord(&kgo.Record{Headers: headers.Encode([]kgo.RecordHeader{{Key: "trace", Value: []byte("t1")}}, md)})
	if good.Reason != headers.ReasonPermanent || !good.HasMeta || good.Meta.OriginalTopic != "orders" || good.ErrorText() != "boom" {
		t.Errorf("kretry DLQ record read as %+v", good)
	}
	none := dlq.NewRecord(&kgo.Record{Headers: []kgo.RecordHeader{{Key: "trace", Value: []byte("t1")}}})
	if none.Reason != dlq.ReasonUnknown || none.HasMeta || none.MetaErr != nil {
		t.Errorf("record without kretry headers read as %+v", none)
	}
	hs := headers.Encode(nil, md)
	for i := range hs {
		if hs[i].Key == headers.HeaderAttempts {
			hs[i].Value = []byte("two")
		}
	}
	bad := dlq.NewRecord(&kgo.Record{Headers: hs})
	// Read leniently: the reason, error and original stand; the problem is named.
	if bad.Reason != headers.ReasonPermanent || bad.MetaErr == nil || bad.HasMeta || bad.Meta.OriginalTopic != "orders" || bad.ErrorText() != "boom" {
		t.Fatalf("record with a malformed kretry header read as %+v", bad)
	}
	if !strings.Contains(bad.MetaErr.Error(), headers.HeaderAttempts) {
		t.Errorf("metadata error %q does not name the header", bad.MetaErr)
	}
	noReason := dlq.NewRecord(&kgo.Record{Headers: slices.DeleteFunc(slices.Clone(hs), func(h kgo.RecordHeader) bool { return h.Key == headers.HeaderReason })})
	if noReason.Reason != headers.ReasonInvalidMetadata || !strings.Contains(noReason.ErrorText(), "boom") {
		t.Errorf("record with a malformed header and no reason read as %+v", noReason)
	}
	if n, ok := bad.Replays(); !ok || n != 0 {
		t.Errorf("Replays of a record with readable kretry-replays = %d, %v", n, ok)
	}
	hs = append(hs, kgo.RecordHeader{Key: headers.HeaderReplays, Value: []byte("x")})
	if _, ok := dlq.NewRecord(&kgo.Record{Headers: hs}).Replays(); ok {
		t.Errorf("a malformed kretry-replays reads as known")
	}
}

func testMeta(topic string, p int32, o int64, reason headers.Reason, errText string) headers.Metadata {
	at := time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)
	return headers.Metadata{
		Group: "orders-service", Attempts: 3, Tier: "retry-1m", DueAt: at,
		OriginalTopic: topic, OriginalPartition: p, OriginalOffset: o, OriginalTimestamp: at.Add(-time.Minute),
		FirstFailureAt: at.Add(-time.Minute), LastFailureAt: at, Error: errText, Reason: reason,
	}
}
