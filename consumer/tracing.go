package consumer

import (
	"context"
	"strconv"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/kretry/kretry/headers"
)

// The attributes of a handler attempt's span, besides messaging.*.
const (
	AttrAttempt    = attribute.Key("kretry.attempt")     // 1 for the first delivery, n+1 after n failures
	AttrTier       = attribute.Key("kretry.tier")        // "main" for the first delivery, else the tier it waited in ("retry-5s")
	AttrOutcome    = attribute.Key("kretry.outcome")     // OutcomeOK, OutcomeRetry, ...
	AttrNextTier   = attribute.Key("kretry.next_tier")   // with OutcomeRetry: the tier the record went to
	AttrDeadLetter = attribute.Key("kretry.dead_letter") // with OutcomeDeadLetter: the kretry-reason ("exhausted")
	// AttrInPlaceRetries counts the handler calls of retry_in_place within
	// the attempt, when there were any: they are part of its span.
	AttrInPlaceRetries = attribute.Key("kretry.in_place_retries")
)

// The values of AttrOutcome.
const (
	OutcomeOK         = "ok"          // the handler returned nil
	OutcomeRetry      = "retry"       // forwarded to a tier (AttrNextTier)
	OutcomeDeadLetter = "dead-letter" // forwarded to the DLQ (AttrDeadLetter)
	OutcomeDiscarded  = "discarded"   // the classifier discarded it
	OutcomeCancelled  = "cancelled"   // the handler was stopped by a revoke or shutdown; delivered again
)

// TierMain is AttrTier of a record's first delivery.
const TierMain = "main"

// WithTracerProvider traces every handler attempt with a span of tp (an
// OpenTelemetry TracerProvider): "kretry.handle <topic>", of kind consumer,
// with messaging.* attributes (system kafka, operation process, the topic,
// partition, offset and group) and AttrAttempt, AttrTier, AttrOutcome and,
// by outcome, AttrNextTier or AttrDeadLetter; a failed attempt records the
// error and status Error. The handler's ctx carries the span, so spans it
// starts nest under it.
//
// A span's parent is the W3C traceparent (and tracestate) header of the
// record, as its producer wrote it; kretry keeps user headers byte for
// byte, so every attempt of a record is in its producer's trace. The first
// failure writes the failed attempt's span context to kretry's own
// kretry-traceparent header, which every later hop keeps; each retried
// attempt's span links to it. kretry never writes or changes a traceparent
// header itself: it is the producer's.
//
// Default: no tracing, and no cost for it on the handling path.
func WithTracerProvider(tp trace.TracerProvider) Opt {
	return optionFunc(func(o *options) {
		o.tracer = nil
		if tp != nil {
			o.tracer = tp.Tracer("github.com/kretry/kretry/consumer")
		}
	})
}

// attemptTrace is the span of the handler attempt a worker is deciding the
// fate of, and the fate once a forward names it.
type attemptTrace struct {
	ctx      context.Context // the handler's, with span
	span     trace.Span
	outcome  string
	nextTier string
	reason   headers.Reason
}

var traceContext = propagation.TraceContext{}

// startAttempt starts the span of rec's handler attempt, with the
// handler's context (ctx with the span) in w.attempt.
func (w *worker) startAttempt(ctx context.Context, rec *kgo.Record, md headers.Metadata) {
	s := w.s
	ctx = traceContext.Extract(ctx, recordCarrier{rec})
	attempt, tier := 1, TierMain
	var links []trace.Link
	if md.Group == s.c.cfg.Group && md.Attempts > 0 {
		attempt, tier = md.Attempts+1, md.Tier
		first := trace.SpanContextFromContext(traceContext.Extract(context.Background(),
			propagation.MapCarrier{"traceparent": md.TraceParent}))
		if first.IsValid() {
			links = []trace.Link{{SpanContext: first, Attributes: []attribute.KeyValue{AttrAttempt.Int(1)}}}
		}
	}
	ctx, span := s.c.opts.tracer.Start(ctx, "kretry.handle "+rec.Topic,
		trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithLinks(links...),
		trace.WithAttributes(
			semconv.MessagingSystemKafka,
			semconv.MessagingOperationTypeProcess,
			semconv.MessagingOperationName("process"),
			semconv.MessagingDestinationName(rec.Topic),
			semconv.MessagingDestinationPartitionID(strconv.Itoa(int(rec.Partition))),
			semconv.MessagingKafkaOffset(int(rec.Offset)),
			semconv.MessagingConsumerGroupName(s.c.cfg.Group),
			AttrAttempt.Int(attempt),
			AttrTier.String(tier),
		))
	w.attempt = &attemptTrace{ctx: ctx, span: span}
}

// traceForward notes the fate of the traced attempt from the metadata of
// its forward, and gives the first failure the attempt's span context.
func (w *worker) traceForward(md *headers.Metadata) {
	at := w.attempt
	if md.Reason != "" {
		at.outcome, at.reason = OutcomeDeadLetter, md.Reason
	} else {
		at.outcome, at.nextTier = OutcomeRetry, md.Tier
	}
	if md.TraceParent == "" {
		c := propagation.MapCarrier{}
		traceContext.Inject(trace.ContextWithSpanContext(context.Background(), at.span.SpanContext()), c)
		md.TraceParent = c["traceparent"]
	}
}

// endAttempt ends the traced attempt, with herr its handler's error.
func (w *worker) endAttempt(herr error) {
	at := w.attempt
	w.attempt = nil
	outcome := at.outcome
	switch {
	case herr == nil:
		outcome = OutcomeOK
	case outcome != "":
	case w.ctx.Err() != nil:
		outcome = OutcomeCancelled
	default:
		outcome = OutcomeDiscarded
	}
	attrs := []attribute.KeyValue{AttrOutcome.String(outcome)}
	if w.inPlaceRetries > 0 {
		attrs = append(attrs, AttrInPlaceRetries.Int(w.inPlaceRetries))
	}
	switch outcome {
	case OutcomeRetry:
		attrs = append(attrs, AttrNextTier.String(at.nextTier))
	case OutcomeDeadLetter:
		attrs = append(attrs, AttrDeadLetter.String(string(at.reason)))
	}
	at.span.SetAttributes(attrs...)
	if herr != nil {
		at.span.RecordError(herr)
		at.span.SetStatus(codes.Error, herr.Error())
	}
	at.span.End()
}

// recordCarrier reads a record's headers for a TextMapPropagator: the
// first header of a key (W3C keys are lower case).
type recordCarrier struct{ rec *kgo.Record }

func (c recordCarrier) Get(key string) string {
	for _, h := range c.rec.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// Set is never called: kretry does not write the producer's headers.
func (c recordCarrier) Set(string, string) {}

func (c recordCarrier) Keys() []string {
	keys := make([]string, len(c.rec.Headers))
	for i, h := range c.rec.Headers {
		keys[i] = h.Key
	}
	return keys
}
