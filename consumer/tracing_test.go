package consumer_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/kretry/kretry/config"
	"github.com/kretry/kretry/consumer"
	"github.com/kretry/kretry/headers"
)

// traced is a handler that fails the first two attempts of every record and
// starts a span of its own in each, to check that it nests.
type traced struct {
	tp    *sdktrace.TracerProvider
	mu    sync.Mutex
	calls map[string]int
}

func newTraced() (*traced, *tracetest.SpanRecorder) {
	rec := tracetest.NewSpanRecorder()
	return &traced{tp: sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)), calls: map[string]int{}}, rec
}

func (h *traced) Handle(ctx context.Context, r *kgo.Record) error {
	_, span := h.tp.Tracer("user").Start(ctx, "user.work")
	span.End()
	h.mu.Lock()
	defer h.mu.Unlock()
	h.calls[string(r.Key)]++
	if n := h.calls[string(r.Key)]; n <= 2 {
		return fmt.Errorf("attempt %d of %s: %w", n, r.Key, errTransient)
	}
	return nil
}

// producerHeader starts a producer span and returns it with the W3C
// traceparent header a traced producer writes.
func producerHeader(tp trace.TracerProvider) (trace.SpanContext, kgo.RecordHeader) {
	_, span := tp.Tracer("producer").Start(context.Background(), "send")
	span.End()
	c := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(trace.ContextWithSpanContext(context.Background(), span.SpanContext()), c)
	return span.SpanContext(), kgo.RecordHeader{Key: "traceparent", Value: []byte(c["traceparent"])}
}

func attr(s sdktrace.ReadOnlySpan, k attribute.Key) attribute.Value {
	for _, kv := range s.Attributes() {
		if kv.Key == k {
			return kv.Value
		}
	}
	return attribute.Value{}
}

// checkThreeAttempts checks the spans of a record that failed twice and was
// then handled, on topic in group, through the tiers of tiers (its first
// two): three "kretry.handle" spans with attempts 1, 2, 3, tiers main,
// tiers[0], tiers[1], outcomes retry, retry, ok, the second and third linked
// to the first's context, each with a child span of the handler; with a
// producer context, all three are its children. It returns the first
// attempt's span context.
func checkThreeAttempts(t *testing.T, spans []sdktrace.ReadOnlySpan, topic, group, key string, tiers [2]string, producer trace.SpanContext) trace.SpanContext {
	t.Helper()
	byAttempt := map[int64]sdktrace.ReadOnlySpan{}
	for _, s := range spans {
		if s.Name() != "kretry.handle "+topic {
			continue
		}
		if producer.IsValid() && s.Parent().TraceID() != producer.TraceID() {
			continue
		}
		if !producer.IsValid() && s.Parent().IsValid() {
			continue
		}
		byAttempt[attr(s, consumer.AttrAttempt).AsInt64()] = s
	}
	if len(byAttempt) != 3 {
		t.Fatalf("%s: %d handler attempt spans by attempt (%v), want 3", key, len(byAttempt), byAttempt)
	}
	first := byAttempt[1].SpanContext()
	for n, want := range []struct {
		tier, outcome, next string
	}{
		{consumer.TierMain, consumer.OutcomeRetry, tiers[0]},
		{tiers[0], consumer.OutcomeRetry, tiers[1]},
		{tiers[1], consumer.OutcomeOK, ""},
	} {
		s := byAttempt[int64(n+1)]
		if s.SpanKind() != trace.SpanKindConsumer {
			t.Errorf("%s attempt %d: kind %v, want consumer", key, n+1, s.SpanKind())
		}
		for k, v := range map[attribute.Key]string{
			consumer.AttrTier: want.tier, consumer.AttrOutcome: want.outcome, consumer.AttrNextTier: want.next,
			"messaging.system": "kafka", "messaging.destination.name": topic, "messaging.consumer.group.name": group,
			"messaging.operation.type": "process",
		} {
			if got := attr(s, k).AsString(); got != v {
				t.Errorf("%s attempt %d: %s = %q, want %q", key, n+1, k, got, v)
			}
		}
		wantStatus := codes.Error
		if want.outcome == consumer.OutcomeOK {
			wantStatus = codes.Unset
		}
		if s.Status().Code != wantStatus {
			t.Errorf("%s attempt %d: status %v, want %v", key, n+1, s.Status(), wantStatus)
		}
		if producer.IsValid() && (s.Parent().SpanID() != producer.SpanID() || s.SpanContext().TraceID() != producer.TraceID()) {
			t.Errorf("%s attempt %d: parent %v, want the producer's span %v", key, n+1, s.Parent(), producer)
		}
		switch {
		case n == 0 && len(s.Links()) != 0:
			t.Errorf("%s attempt 1 has links %v, want none", key, s.Links())
		case n > 0 && (len(s.Links()) != 1 || s.Links()[0].SpanContext.TraceID() != first.TraceID() || s.Links()[0].SpanContext.SpanID() != first.SpanID()):
			t.Errorf("%s attempt %d: links %v, want one to the first attempt %v", key, n+1, s.Links(), first)
		}
		nested := false
		for _, c := range spans {
			nested = nested || c.Name() == "user.work" && c.Parent().SpanID() == s.SpanContext().SpanID()
		}
		if !nested {
			t.Errorf("%s attempt %d: no handler span under it: the handler's ctx lacks the span", key, n+1)
		}
	}
	return first
}

// traceparentOf is the W3C form of sc.
func traceparentOf(sc trace.SpanContext) string {
	c := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(trace.ContextWithSpanContext(context.Background(), sc), c)
	return c["traceparent"]
}

// A record that fails twice and is then handled yields three linked spans;
// the producer's traceparent is their parent and is kept byte for byte, and
// kretry's kretry-traceparent carries the first attempt's context.
func TestTracingThreeAttempts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCluster(t, 1, 1)
		h, spans := newTraced()
		producer, tp := producerHeader(h.tp)
		c.produce(&kgo.Record{Key: []byte("k"), Headers: []kgo.RecordHeader{{Key: "idx", Value: []byte("1")}, tp}})
		r := c.start(h, consumer.WithTracerProvider(h.tp))
		waitFor(t, "the third attempt", func() bool {
			h.mu.Lock()
			defer h.mu.Unlock()
			return h.calls["k"] == 3
		})
		if err := r.stop(); err != nil {
			t.Fatal(err)
		}
		steps := c.ladder.Steps()
		first := checkThreeAttempts(t, spans.Ended(), testTopic, testGroup, "k", [2]string{steps[0].Name, steps[1].Name}, producer)
		for _, topic := range []string{steps[0].Topic, steps[1].Topic} {
			recs := c.read(topic)
			if len(recs) != 1 {
				t.Fatalf("%s holds %d records, want 1", topic, len(recs))
			}
			if v, _ := header(recs[0], headers.HeaderTraceParent); v != traceparentOf(first) {
				t.Errorf("%s: kretry-traceparent %q, want the first attempt's %q", topic, v, traceparentOf(first))
			}
			if v, _ := header(recs[0], "traceparent"); v != string(tp.Value) {
				t.Errorf("%s: traceparent %q, want the producer's %q byte for byte", topic, v, tp.Value)
			}
		}
	})
}

// Without a producer's traceparent the first attempt is a root span and the
// retries link to it; a permanent error is a dead-letter outcome.
func TestTracingWithoutProducerContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCluster(t, 1, 1)
		h, spans := newTraced()
		perm := consumer.HandlerFunc(func(ctx context.Context, r *kgo.Record) error {
			if string(r.Key) == "bad" {
				return consumer.Permanent(errors.New("no such order"))
			}
			return h.Handle(ctx, r)
		})
		c.produce(&kgo.Record{Key: []byte("k")}, &kgo.Record{Key: []byte("bad")})
		r := c.start(perm, consumer.WithTracerProvider(h.tp))
		waitFor(t, "the third attempt and the DLQ record", func() bool {
			h.mu.Lock()
			defer h.mu.Unlock()
			return h.calls["k"] == 3 && len(c.read(c.ladder.DLQ())) == 1
		})
		if err := r.stop(); err != nil {
			t.Fatal(err)
		}
		var bad, roots int
		for _, s := range spans.Ended() {
			if s.Name() != "kretry.handle "+testTopic {
				continue
			}
			if attr(s, consumer.AttrOutcome).AsString() == consumer.OutcomeDeadLetter {
				bad++
				if got := attr(s, consumer.AttrDeadLetter).AsString(); got != string(headers.ReasonPermanent) {
					t.Errorf("dead-letter span: reason %q, want permanent", got)
				}
			} else if !s.Parent().IsValid() && attr(s, consumer.AttrAttempt).AsInt64() == 1 {
				roots++
			}
		}
		if bad != 1 || roots != 1 {
			t.Errorf("%d dead-letter spans and %d first attempts of k as roots, want 1 and 1", bad, roots)
		}
		steps := c.ladder.Steps()
		var kSpans []sdktrace.ReadOnlySpan
		for _, s := range spans.Ended() {
			if attr(s, consumer.AttrOutcome).AsString() != consumer.OutcomeDeadLetter {
				kSpans = append(kSpans, s)
			}
		}
		checkThreeAttempts(t, kSpans, testTopic, testGroup, "k", [2]string{steps[0].Name, steps[1].Name}, trace.SpanContext{})
	})
}

// The handler calls of retry_in_place within one delivery are one span:
// two failures in place, then success, is one attempt with
// kretry.in_place_retries 2 and outcome ok.
func TestTracingInPlaceRetries(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCluster(t, 1, 1)
		c.cfg.Topics[0].RetryInPlace = &config.RetryInPlace{Attempts: 3, Backoff: 100 * time.Millisecond}
		h, spans := newTraced()
		c.produce(&kgo.Record{Key: []byte("k")})
		r := c.start(h, consumer.WithTracerProvider(h.tp))
		waitFor(t, "the span", func() bool { return len(spans.Ended()) >= 4 }) // 3 user spans and the attempt
		if err := r.stop(); err != nil {
			t.Fatal(err)
		}
		var attempts []sdktrace.ReadOnlySpan
		for _, s := range spans.Ended() {
			if s.Name() == "kretry.handle "+testTopic {
				attempts = append(attempts, s)
			}
		}
		if len(attempts) != 1 {
			t.Fatalf("%d attempt spans, want 1", len(attempts))
		}
		s := attempts[0]
		if n, o := attr(s, consumer.AttrInPlaceRetries).AsInt64(), attr(s, consumer.AttrOutcome).AsString(); n != 2 || o != consumer.OutcomeOK {
			t.Errorf("attempt span: in-place retries %d, outcome %q; want 2 and ok", n, o)
		}
	})
}
