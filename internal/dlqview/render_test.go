package dlqview_test

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/dlq"
	"github.com/kretry/kretry/headers"
	"github.com/kretry/kretry/internal/dlqview"
	"github.com/kretry/kretry/internal/safetext"
)

// hostile is a DLQ record whose header values try to drive the terminal:
// clear the screen, colour, forge a table row with \r and \n, reorder text
// with a bidi override.
func hostile() *kgo.Record {
	md := testMeta("orders\x1b[31m", 0, 5, headers.ReasonPermanent, "boom\x1b[2J\x1b[31m\r0/9  11-25 10:00:00  k  orders/0@1  1  permanent  forged\nrow")
	md.Tier = "retry-1m\u202e"
	md.Group = "svc\x07"
	hs := headers.Encode([]kgo.RecordHeader{{Key: "user\x1b]0;title\x07", Value: []byte("a\rb\x9bc")}}, md)
	return &kgo.Record{Topic: "orders.dlq", Partition: 0, Offset: 3, Timestamp: base,
		Key: []byte("k\x1b"), Value: []byte("line 1\n\u202eline 2\r\n"), Headers: hs}
}

// controls returns the control and format characters of s other than '\n',
// and RuneError for bytes that are not UTF-8 (a U+FFFD written as such is
// shown as it is).
func controls(s string) []rune {
	var out []rune
	for i, r := range s {
		if r == utf8.RuneError {
			if _, n := utf8.DecodeRuneInString(s[i:]); n == 1 {
				out = append(out, r)
			}
			continue
		}
		if r != '\n' && (unicode.IsControl(r) || unicode.Is(unicode.Cf, r)) {
			out = append(out, r)
		}
	}
	return out
}

func TestRenderingEscapesControlCharacters(t *testing.T) {
	rec := dlq.NewRecord(hostile())
	var table, show, js bytes.Buffer
	if err := dlqview.WriteTable(&table, []*dlq.Record{rec}, 1<<20); err != nil {
		t.Fatal(err)
	}
	if err := dlqview.WriteRecord(&show, rec); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(dlqview.Record(rec))
	if err != nil {
		t.Fatal(err)
	}
	js.Write(b)
	for name, out := range map[string]string{"ls": table.String(), "show": show.String(), "ls --json": js.String()} {
		if c := controls(out); len(c) > 0 {
			t.Errorf("%s prints control characters %q:\n%s", name, c, out)
		}
	}
	if lines := strings.Split(strings.TrimSuffix(table.String(), "\n"), "\n"); len(lines) != 2 ||
		!strings.Contains(lines[1], `boom\x1b[2J\x1b[31m 0/9`) || !strings.Contains(lines[1], `orders\x1b[31m/0@5`) {
		t.Errorf("ls: want the header row and one row with the escapes shown:\n%s", table.String())
	}
	for _, want := range []string{`error                boom\x1b[2J\x1b[31m\r0/9`, `forged\nrow`, `group                svc\a`,
		`(last tier retry-1m\u202e)`, `  user\x1b]0;title\a: 0x`, "line 1\n\\u202eline 2\\r\n"} {
		if !strings.Contains(show.String(), want) {
			t.Errorf("show lacks %q:\n%s", want, show.String())
		}
	}
	var back map[string]any
	if err := json.Unmarshal(js.Bytes(), &back); err != nil || !strings.Contains(back["error"].(string), "\x1b[2J") {
		t.Errorf("ls --json: %v; error %q, want it whole once decoded", err, back["error"])
	}

	var s dlq.Stats
	s.Add(rec)
	var st bytes.Buffer
	if err := json.NewEncoder(&st).Encode(dlqview.Stats("orders.dlq", &s)); err != nil {
		t.Fatal(err)
	}
	if c := controls(string(safetext.JSON(st.Bytes()))); len(c) > 0 {
		t.Errorf("stats --json prints %q", c)
	}
}

// A DLQ record with a kretry header missing or malformed is listed with what
// can be read: its reason (so --reason finds it), attempts, original, error,
// and the problem next to it.
func TestLenientReading(t *testing.T) {
	seeds := newFake(t)
	md := testMeta("orders", 1, 40, headers.ReasonExhausted, "payments API: 503")
	var hs []kgo.RecordHeader
	for _, h := range headers.Encode(nil, md) {
		if h.Key != headers.HeaderDueAt {
			hs = append(hs, h)
		}
	}
	cl := producer(t, seeds)
	if err := cl.ProduceSync(context.Background(), &kgo.Record{Topic: "orders.dlq", Partition: 0, Key: []byte("k"), Value: []byte("v"),
		Timestamp: base, Headers: hs}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	r := newReader(t, seeds)
	recs, err := r.List(context.Background(), dlq.Filter{Reasons: []headers.Reason{"exhausted"}})
	if err != nil || len(recs) != 1 {
		t.Fatalf("--reason exhausted found %d records (%v), want the one without kretry-due-at", len(recs), err)
	}
	rec := recs[0]
	if rec.MetaErr == nil || !strings.Contains(rec.MetaErr.Error(), headers.HeaderDueAt) || rec.Meta.Attempts != 3 || rec.Meta.Tier != "retry-1m" {
		t.Errorf("read as %+v", rec)
	}
	var table, show bytes.Buffer
	_ = dlqview.WriteTable(&table, recs, 1<<20)
	if got := strings.Join(strings.Fields(strings.Split(table.String(), "\n")[1]), " "); got !=
		"0/0 11-25 10:00:00 k orders/1@40 3 exhausted payments API: 503 [metadata: kretry header kretry-due-at: missing: a record with kretry-group must carry it]" {
		t.Errorf("ls row %q", got)
	}
	_ = dlqview.WriteRecord(&show, rec)
	for _, want := range []string{"reason               exhausted\n", "metadata error       kretry header kretry-due-at: missing",
		"original             orders partition 1 offset 40 at 2026-11-25T08:59:00.000Z", "attempts             3 (last tier retry-1m)", "error                payments API: 503\n"} {
		if !strings.Contains(show.String(), want) {
			t.Errorf("show lacks %q:\n%s", want, show.String())
		}
	}
	j := dlqview.Record(rec)
	if j.Reason != "exhausted" || j.Attempts != 3 || j.OriginalTopic != "orders" || j.Error != "payments API: 503" || !strings.Contains(j.MetadataError, "kretry-due-at") {
		t.Errorf("JSON %+v", j)
	}
	if s, err := r.Stats(context.Background(), dlq.Filter{}); err != nil || s.ByReason["exhausted"] != 1 || s.ByError["payments API: <n>"] != 1 {
		t.Errorf("stats %+v %v", s, err)
	}
}

// FuzzRender feeds arbitrary header values, keys and values to every DLQ
// rendering (ls, show, --json, stats): none panics, none prints a control
// character other than a newline, and ls prints one line per record.
func FuzzRender(f *testing.F) {
	f.Add("boom\x1b[2J\r\nrow", "orders\x1b", "retry-1m\u202e", "3", "exhausted", []byte("k\r"), []byte("v\x1b"), "x\x9b", "\xff")
	f.Add("", "", "", "", "", []byte(nil), []byte(nil), "", "")
	f.Add("e", "o", "t", "1", "panic", []byte("k\u202e1"), []byte("v\u2066"), "h\u200f", "v\ufeff")
	f.Add("e", "orders", "retry-5s", "2147483648", "too-large", []byte{0xff}, []byte(`{"a":"\u202e"}`), "h", "v")
	f.Fuzz(func(t *testing.T, errText, origTopic, tier, attempts, reason string, key, value []byte, hk, hv string) {
		at := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
		hs := []kgo.RecordHeader{
			{Key: hk, Value: []byte(hv)},
			{Key: headers.HeaderVersion, Value: []byte("1")},
			{Key: headers.HeaderGroup, Value: []byte("svc")},
			{Key: headers.HeaderAttempts, Value: []byte(attempts)},
			{Key: headers.HeaderTier, Value: []byte(tier)},
			{Key: headers.HeaderOriginalTopic, Value: []byte(origTopic)},
			{Key: headers.HeaderOriginalPartition, Value: []byte("0")},
			{Key: headers.HeaderOriginalOffset, Value: []byte("1")},
			{Key: headers.HeaderOriginalTimestamp, Value: []byte(headers.FormatTime(at))},
			{Key: headers.HeaderErrorText, Value: []byte(errText)},
			{Key: headers.HeaderReason, Value: []byte(reason)},
		}
		rec := dlq.NewRecord(&kgo.Record{Topic: "orders.dlq", Key: key, Value: value, Timestamp: at, Headers: hs})
		var table, show bytes.Buffer
		if err := dlqview.WriteTable(&table, []*dlq.Record{rec, rec}, 100); err != nil {
			t.Fatal(err)
		}
		if err := dlqview.WriteRecord(&show, rec); err != nil {
			t.Fatal(err)
		}
		js, err := json.Marshal(dlqview.Record(rec))
		if err != nil {
			t.Fatal(err)
		}
		var s dlq.Stats
		s.Add(rec)
		sj, err := json.Marshal(dlqview.Stats("orders.dlq", &s))
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, e := range s.Errors() {
			out = append(out, safetext.Text(e.Value))
		}
		for _, e := range s.OriginalTopics() {
			out = append(out, safetext.Text(e.Value))
		}
		for name, o := range map[string]string{"ls": table.String(), "show": show.String(), "json": string(js),
			"stats json": string(safetext.JSON(sj)), "stats": strings.Join(out, "\n")} {
			if c := controls(o); len(c) > 0 {
				t.Fatalf("%s prints %q:\n%s", name, c, o)
			}
		}
		if n := strings.Count(table.String(), "\n"); n != 3 {
			t.Fatalf("ls printed %d lines for 2 records:\n%s", n, table.String())
		}
		if !json.Valid(js) {
			t.Fatalf("ls --json printed invalid JSON: %s", js)
		}
	})
}

// A record whose timestamp JSON cannot hold (a producer set year 20000) is
// written with a null timestamp, not an error that ends the listing.
func TestJSONOfATimestampPastYear9999(t *testing.T) {
	far := time.UnixMilli(1 << 59).UTC()
	rec := dlq.NewRecord(&kgo.Record{Topic: "orders.dlq", Timestamp: far, Key: []byte("k"), Value: []byte("v")})
	b, err := json.Marshal(dlqview.Record(rec))
	if err != nil || !strings.Contains(string(b), `"timestamp":null`) {
		t.Errorf("ls --json of a record of year %d: %s, %v", far.Year(), b, err)
	}
	var s dlq.Stats
	s.Add(rec)
	if b, err := json.Marshal(dlqview.Stats("orders.dlq", &s)); err != nil || !strings.Contains(string(b), `"by_hour":[{"hour":null,"count":1}]`) {
		t.Errorf("stats --json: %s, %v", b, err)
	}
	var table bytes.Buffer
	if err := dlqview.WriteTable(&table, []*dlq.Record{rec}, 100); err != nil || strings.Count(table.String(), "\n") != 2 {
		t.Errorf("ls: %v\n%s", err, table.String())
	}
}
