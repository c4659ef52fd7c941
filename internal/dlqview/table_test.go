package dlqview_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/dlq"
	"github.com/kretry/kretry/headers"
	"github.com/kretry/kretry/internal/dlqview"
)

func TestTable(t *testing.T) {
	seeds := newFake(t)
	put(t, seeds, "orders.dlq", fill...)
	long := entry{1, 0, "\x00\x01binary", headers.ReasonPermanent, "orders", strings.Repeat("very long error ", 20), "v"}
	put(t, seeds, "orders.dlq", long)
	r := newReader(t, seeds)
	recs, err := r.List(context.Background(), dlq.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	for _, width := range []int{0, 100, 160} {
		var b bytes.Buffer
		if err := dlqview.WriteTable(&b, recs, width); err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
		if len(lines) != len(recs)+1 || !strings.HasPrefix(lines[0], "P/OFFSET") {
			t.Fatalf("width %d: %d lines:\n%s", width, len(lines), b.String())
		}
		want := width
		if want == 0 {
			want = dlqview.DefaultWidth
		}
		for _, l := range lines {
			if n := utf8.RuneCountInString(l); n > want {
				t.Errorf("width %d: line of %d characters: %q", width, n, l)
			}
		}
		first := strings.Fields(lines[1])
		if got := strings.Join(first[:7], " "); got != "0/0 11-25 10:00:00 k1 orders/0@100 3 permanent" {
			t.Errorf("first row %q", got)
		}
		if !strings.Contains(lines[3], " - ") || !strings.Contains(lines[3], "unknown") {
			t.Errorf("row without kretry headers: %q", lines[3])
		}
		if width == 100 && !strings.Contains(lines[4], " payments/0@103 ") && !strings.Contains(lines[4], "…/0@103 ") {
			t.Errorf("a cut original keeps its partition and offset: %q", lines[4])
		}
		if !strings.Contains(b.String(), "0x000") || !strings.Contains(lines[len(lines)-1], "…") {
			t.Errorf("binary key in hex, long error cut: %q", lines[len(lines)-1])
		}
	}
}

func TestWriteRecord(t *testing.T) {
	md := testMeta("orders", 2, 40, headers.ReasonPermanent, "boom")
	rec := dlq.NewRecord(&kgo.Record{Topic: "orders.dlq", Partition: 1, Offset: 7, Key: []byte("k"), Value: []byte(`{"id":1,"items":[2]}`),
		Headers: headers.Encode([]kgo.RecordHeader{{Key: "bin", Value: []byte{0xff}}}, md)})
	var b bytes.Buffer
	if err := dlqview.WriteRecord(&b, rec); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"partition            1\n", "original             orders partition 2 offset 40", "error                boom\n",
		"  bin: 0xff\n", "  kretry-reason: permanent\n", "value (JSON, 20 bytes)\n{\n  \"id\": 1,\n  \"items\": [\n    2\n  ]\n}\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("show output lacks %q:\n%s", want, out)
		}
	}
	rec.Value = []byte{0, 1, 2, 'a'}
	b.Reset()
	_ = dlqview.WriteRecord(&b, rec)
	if !strings.Contains(b.String(), "value (binary, 4 bytes)\n00000000  00 01 02 61") {
		t.Errorf("binary value not hex-dumped:\n%s", b.String())
	}
	rec.Value = []byte("plain text")
	b.Reset()
	_ = dlqview.WriteRecord(&b, rec)
	if !strings.Contains(b.String(), "value (text, 10 bytes)\nplain text\n") {
		t.Errorf("text value:\n%s", b.String())
	}
}
