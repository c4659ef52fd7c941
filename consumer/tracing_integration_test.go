//go:build integration

package consumer_test

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/consumer"
	"github.com/kretry/kretry/headers"
)

// TestTracingOnRealBroker: on the real broker, with the in-process relay
// re-feeding, a record that fails twice and is then handled yields three
// spans, children of the producer's, the second and third linked to the
// first; the tier records carry the first attempt's kretry-traceparent and
// the producer's traceparent byte for byte.
func TestTracingOnRealBroker(t *testing.T) {
	b := newRealBroker(t, 1)
	h, spans := newTraced()
	producer, tp := producerHeader(h.tp)
	cons, err := consumer.New(b.cfg, h, consumer.WithTracerProvider(h.tp))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- cons.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-errc; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	rec := &kgo.Record{Topic: b.ladder.Topic(), Key: []byte("k"), Headers: []kgo.RecordHeader{tp}}
	if err := b.cl.ProduceSync(context.Background(), rec).FirstErr(); err != nil {
		t.Fatal(err)
	}
	waitReal(t, 60*time.Second, "the third attempt", func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		return h.calls["k"] == 3
	})
	steps := b.ladder.Steps()
	// The third attempt's span ends once its mark is taken: wait for it.
	waitReal(t, 10*time.Second, "the third attempt's span", func() bool {
		n := 0
		for _, s := range spans.Ended() {
			if s.Name() == "kretry.handle "+b.ladder.Topic() {
				n++
			}
		}
		return n == 3
	})
	for _, s := range spans.Ended() {
		if s.Name() != "kretry.handle "+b.ladder.Topic() {
			continue
		}
		var links []string
		for _, l := range s.Links() {
			links = append(links, l.SpanContext.SpanID().String())
		}
		t.Logf("%s span %s parent %s: attempt=%d tier=%s outcome=%s next_tier=%s links=%v",
			s.Name(), s.SpanContext().SpanID(), s.Parent().SpanID(), attr(s, consumer.AttrAttempt).AsInt64(),
			attr(s, consumer.AttrTier).AsString(), attr(s, consumer.AttrOutcome).AsString(), attr(s, consumer.AttrNextTier).AsString(), links)
	}
	first := checkThreeAttempts(t, spans.Ended(), b.ladder.Topic(), b.cfg.Group, "k", [2]string{steps[0].Name, steps[1].Name}, producer)
	for _, topic := range []string{steps[0].Topic, steps[1].Topic} {
		recs := b.readAll(topic)
		if len(recs) != 1 {
			t.Fatalf("%s holds %d records, want 1", topic, len(recs))
		}
		if v, _ := header(recs[0], headers.HeaderTraceParent); v != traceparentOf(first) {
			t.Errorf("%s: kretry-traceparent %q, want the first attempt's %q", topic, v, traceparentOf(first))
		}
		if v, _ := header(recs[0], "traceparent"); v != string(tp.Value) {
			t.Errorf("%s: traceparent %q, want the producer's %q", topic, v, tp.Value)
		}
	}
}
