package headers_test

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/headers"
)

const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

func TestValidTraceParent(t *testing.T) {
	for v, want := range map[string]bool{
		tp: true,
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00": true,
		"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01": false, // another version
		"00-00000000000000000000000000000000-00f067aa0ba902b7-01": false, // zero trace id
		"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01": false, // zero span id
		"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01": false, // upper case
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7":    false,
		"": false,
	} {
		if got := headers.ValidTraceParent(v); got != want {
			t.Errorf("ValidTraceParent(%q) = %v, want %v", v, got, want)
		}
	}
}

// kretry-traceparent travels with a retry's metadata (Encode, Decode,
// Failed) and a malformed or repeated one is dropped, never an error.
func TestTraceParentRoundTrip(t *testing.T) {
	at := time.Date(2026, 12, 7, 1, 0, 0, 0, time.UTC)
	rec := &kgo.Record{Topic: "orders", Timestamp: at}
	md := headers.Metadata{}.Failed("g", rec, at, "boom").InTier("retry-5s", at.Add(5*time.Second))
	md.TraceParent = tp
	hs := headers.Encode([]kgo.RecordHeader{{Key: "traceparent", Value: []byte("user's")}}, md)
	got, ok, err := headers.Decode(hs)
	if err != nil || !ok || got.TraceParent != tp {
		t.Fatalf("Decode(Encode) = %q, %v, %v; want %q", got.TraceParent, ok, err, tp)
	}
	if next := got.Failed("g", rec, at, "again"); next.TraceParent != tp {
		t.Errorf("Failed dropped TraceParent: %q", next.TraceParent)
	}
	if hs[0].Key != "traceparent" || string(hs[0].Value) != "user's" {
		t.Errorf("the user's traceparent header is not kept first and as it was: %v", hs[0])
	}
	for name, extra := range map[string][]kgo.RecordHeader{
		"malformed": {{Key: headers.HeaderTraceParent, Value: []byte("00-xyz")}},
		"repeated":  {{Key: headers.HeaderTraceParent, Value: []byte(tp)}, {Key: headers.HeaderTraceParent, Value: []byte(tp)}},
	} {
		md.TraceParent = ""
		hs := append(headers.Encode(nil, md), extra...)
		got, ok, err := headers.Decode(hs)
		if err != nil || !ok || got.TraceParent != "" {
			t.Errorf("%s kretry-traceparent: Decode = %q, %v, %v; want it dropped, no error", name, got.TraceParent, ok, err)
		}
	}
}

// A Decoder reads kretry-traceparent as Decode does, and gives the last
// one again, without copying it, when the next record carries it too.
func TestDecoderTraceParent(t *testing.T) {
	at := time.Date(2026, 12, 7, 1, 0, 0, 0, time.UTC)
	rec := &kgo.Record{Topic: "orders", Timestamp: at}
	md := headers.Metadata{}.Failed("g", rec, at, "boom").InTier("retry-5s", at.Add(5*time.Second))
	md.TraceParent = tp
	hs := headers.Encode(nil, md)
	var d headers.Decoder
	if got, ok, err := d.Decode(hs); err != nil || !ok || got.TraceParent != tp {
		t.Fatalf("Decoder.Decode = %q, %v, %v; want %q", got.TraceParent, ok, err, tp)
	}
	var got headers.Metadata
	if n := testing.AllocsPerRun(100, func() { got, _, _ = d.Decode(hs) }); n != 0 || got.TraceParent != tp {
		t.Errorf("Decoder.Decode of the same kretry-traceparent again: %v allocations, %q; want 0, %q", n, got.TraceParent, tp)
	}
	md.TraceParent = ""
	for name, extra := range map[string][]kgo.RecordHeader{
		"malformed": {{Key: headers.HeaderTraceParent, Value: []byte("00-xyz")}},
		"repeated":  {{Key: headers.HeaderTraceParent, Value: []byte(tp)}, {Key: headers.HeaderTraceParent, Value: []byte(tp)}},
		"absent":    nil,
	} {
		got, ok, err := d.Decode(append(headers.Encode(nil, md), extra...))
		if err != nil || !ok || got.TraceParent != "" {
			t.Errorf("%s kretry-traceparent after a valid one: Decoder.Decode = %q, %v, %v; want it dropped, no error", name, got.TraceParent, ok, err)
		}
	}
}
