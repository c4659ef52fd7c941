package dlq

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/headers"
)

// Spring Kafka's dead-letter headers, as its DeadLetterPublishingRecoverer
// writes them (KafkaHeaders.DLT_*). Spring's retryable topics write the same
// without "dlt-" (KafkaHeaders.ORIGINAL_*, EXCEPTION_*), except the consumer
// group, plus the retry_topic-* headers (RetryTopicHeaders).
const (
	springHeaderOriginalTopic         = "kafka_dlt-original-topic"          // UTF-8
	springHeaderOriginalPartition     = "kafka_dlt-original-partition"      // 4-byte big-endian int
	springHeaderOriginalOffset        = "kafka_dlt-original-offset"         // 8-byte big-endian long
	springHeaderOriginalTimestamp     = "kafka_dlt-original-timestamp"      // 8-byte big-endian long, epoch milliseconds
	springHeaderOriginalTimestampType = "kafka_dlt-original-timestamp-type" // CreateTime or LogAppendTime
	springHeaderOriginalGroup         = "kafka_dlt-original-consumer-group" // UTF-8; written by both
	springHeaderExceptionClass        = "kafka_dlt-exception-fqcn"          // the exception the listener threw
	springHeaderExceptionCauseClass   = "kafka_dlt-exception-cause-fqcn"    // its root cause
	springHeaderExceptionMessage      = "kafka_dlt-exception-message"       // its message; "; " and the cause's
	springHeaderExceptionStacktrace   = "kafka_dlt-exception-stacktrace"
	springHeaderKeyExceptionClass     = "kafka_dlt-key-exception-fqcn" // the key could not be deserialized
	springHeaderKeyExceptionMessage   = "kafka_dlt-key-exception-message"
	springHeaderKeyExceptionTrace     = "kafka_dlt-key-exception-stacktrace"

	// springHeaderAttempts is the delivery the next retry topic would
	// make: failed deliveries + 1, a 4-byte big-endian int (1 byte before
	// Spring Kafka 2.9).
	springHeaderAttempts = "retry_topic-attempts"
	// springHeaderRetryOriginalTimestamp is the first delivery's timestamp
	// in epoch milliseconds, as Java's BigInteger.toByteArray writes it: 1
	// to 8 bytes, two's complement, big-endian.
	springHeaderRetryOriginalTimestamp = "retry_topic-original-timestamp"
)

// springRetryName is the name Spring's retryable topics give a DLT header:
// kafka_dlt-original-topic is kafka_original-topic there.
func springRetryName(name string) string {
	if name == springHeaderOriginalGroup {
		return name
	}
	return "kafka_" + strings.TrimPrefix(name, "kafka_dlt-")
}

// springPrefixes start every header Spring Kafka adds to a record it
// forwards to a retry topic or a DLT; a replay removes them, so that
// Spring's listener handles the record as a first delivery.
var springPrefixes = []string{"kafka_dlt-", "kafka_original-", "kafka_exception-", "kafka_key-exception-", "retry_topic-"}

// springFatal are the exceptions Spring Kafka does not retry by default
// (ExceptionClassifier.defaultFatalExceptionsList, and the subclass
// @Valid throws): a record dead-lettered with one is listed as permanent.
var springFatal = []string{
	"org.springframework.kafka.support.serializer.DeserializationException",
	"org.springframework.messaging.converter.MessageConversionException",
	"org.springframework.kafka.support.converter.ConversionException",
	"org.springframework.messaging.handler.invocation.MethodArgumentResolutionException",
	"org.springframework.messaging.handler.annotation.support.MethodArgumentNotValidException",
	"java.lang.NoSuchMethodException",
	"java.lang.ClassCastException",
}

// SpringDeadLetter is what Spring Kafka wrote on a dead letter besides what
// Record.Meta holds: Meta.OriginalTopic, OriginalPartition, OriginalOffset
// and OriginalTimestamp come from kafka_dlt-original-*, Meta.Group from
// kafka_dlt-original-consumer-group, Meta.Attempts from retry_topic-attempts
// (failed deliveries, when Spring's retryable topics forwarded it), and
// Meta.Error is "CauseClass: " and the cause's message (Message without
// the "Listener method '…' threw exception; " of Spring's listener).
type SpringDeadLetter struct {
	RetryTopics    bool   // written by Spring's retryable topics (kafka_original-*), not a DeadLetterPublishingRecoverer of its own
	ExceptionClass string // usually org.springframework.kafka.listener.ListenerExecutionFailedException
	CauseClass     string // the root cause's class: what the listener threw
	Message        string
	Stacktrace     string
	KeyException   bool   // the key failed to deserialize
	TimestampType  string // of the first delivery: CreateTime or LogAppendTime
}

// isSpring reports whether hs carries Spring Kafka's dead-letter headers.
func isSpring(hs []kgo.RecordHeader) bool {
	return slices.ContainsFunc(hs, func(h kgo.RecordHeader) bool {
		switch h.Key {
		case springHeaderOriginalTopic, springRetryName(springHeaderOriginalTopic),
			springHeaderExceptionClass, springRetryName(springHeaderExceptionClass),
			springHeaderKeyExceptionClass, springRetryName(springHeaderKeyExceptionClass):
			return true
		}
		return false
	})
}

// decodeSpring reads Spring Kafka's dead-letter headers into r. Where
// Spring wrote a header more than once (it appends the original-* headers of
// each hop), the last one counts, as in Spring. A malformed header leaves
// its field unknown and is named in MetaErr.
func (r *Record) decodeSpring() {
	last := map[string][]byte{}
	for _, h := range r.Headers {
		last[h.Key] = h.Value
	}
	s := &SpringDeadLetter{}
	get := func(name string) (string, []byte, bool) {
		if v, ok := last[name]; ok {
			return name, v, true
		}
		retry := springRetryName(name)
		v, ok := last[retry]
		if ok && retry != name {
			s.RetryTopics = true
		}
		return retry, v, ok
	}
	var errs []error
	bad := func(name string, v []byte, want string) {
		errs = append(errs, fmt.Errorf("spring-kafka header %s: invalid value 0x%x: want %s", name, v, want))
	}
	text := func(name string) string {
		_, v, _ := get(name)
		return string(v)
	}
	md := &r.Meta
	topic := text(springHeaderOriginalTopic)
	pn, p, okP := get(springHeaderOriginalPartition)
	on, o, okO := get(springHeaderOriginalOffset)
	switch {
	case !okP && !okO:
	case len(p) != 4 || int32(binary.BigEndian.Uint32(p)) < 0:
		bad(pn, p, "a 4-byte big-endian partition ≥ 0")
	case len(o) != 8 || int64(binary.BigEndian.Uint64(o)) < 0:
		bad(on, o, "an 8-byte big-endian offset ≥ 0")
	case topic == "":
		errs = append(errs, fmt.Errorf("spring-kafka header %s: missing or empty, with %s and %s", springHeaderOriginalTopic, pn, on))
	default:
		md.OriginalTopic, md.OriginalPartition, md.OriginalOffset = topic, int32(binary.BigEndian.Uint32(p)), int64(binary.BigEndian.Uint64(o))
		r.known |= FieldOriginal
	}
	timestamp := func(name string, v []byte, ms int64, ok bool, want string) {
		switch at := time.UnixMilli(ms).UTC(); {
		case ok && ms == -1: // Kafka's "no timestamp"
		case !ok || ms < 0 || at.Year() > 9999:
			bad(name, v, want)
		default:
			md.OriginalTimestamp, r.known = at, r.known|FieldOriginalTimestamp
		}
	}
	if tn, ts, ok := get(springHeaderOriginalTimestamp); ok {
		var ms int64
		if len(ts) == 8 {
			ms = int64(binary.BigEndian.Uint64(ts))
		}
		timestamp(tn, ts, ms, len(ts) == 8, "an 8-byte big-endian time in epoch milliseconds, from 1970 to 9999")
	} else if ts, ok := last[springHeaderRetryOriginalTimestamp]; ok {
		ms, ok := javaBigInteger(ts)
		timestamp(springHeaderRetryOriginalTimestamp, ts, ms, ok, "1 to 8 bytes of a big-endian time in epoch milliseconds, from 1970 to 9999")
	}
	if g := text(springHeaderOriginalGroup); g != "" {
		md.Group, r.known = g, r.known|FieldGroup
	}
	if a, ok := last[springHeaderAttempts]; ok {
		n := -1
		switch len(a) {
		case 1: // Spring Kafka before 2.9
			n = int(a[0])
		case 4:
			n = int(int32(binary.BigEndian.Uint32(a)))
		}
		if n >= 2 {
			md.Attempts, r.known = n-1, r.known|FieldAttempts
		} else {
			bad(springHeaderAttempts, a, "a 4-byte big-endian delivery number ≥ 2")
		}
	}
	s.TimestampType = text(springHeaderOriginalTimestampType)
	s.ExceptionClass = text(springHeaderExceptionClass)
	s.CauseClass = text(springHeaderExceptionCauseClass)
	s.Message = text(springHeaderExceptionMessage)
	s.Stacktrace = text(springHeaderExceptionStacktrace)
	if _, _, ok := get(springHeaderKeyExceptionClass); ok {
		s.KeyException = true
		if s.ExceptionClass == "" {
			s.ExceptionClass = text(springHeaderKeyExceptionClass)
			s.Message = text(springHeaderKeyExceptionMessage)
			s.Stacktrace = text(springHeaderKeyExceptionTrace)
		}
	}
	class := s.CauseClass
	if class == "" {
		class = s.ExceptionClass
	}
	if class != "" || s.Message != "" {
		md.Error = strings.TrimPrefix(class+": "+causeMessage(s.Message), ": ")
		r.known |= FieldError
	}
	r.Spring = s
	r.Reason = springReason(s)
	if r.Reason != ReasonUnknown {
		md.Reason, r.known = r.Reason, r.known|FieldReason
	}
	r.MetaErr = errors.Join(errs...)
}

// causeMessage is the cause's part of the message Spring writes for a
// ListenerExecutionFailedException ("Listener method '…' threw exception;
// " or "Listener failed; " and the cause's message); any other message
// whole.
func causeMessage(msg string) string {
	if rest, ok := strings.CutPrefix(msg, "Listener method '"); ok {
		if _, cause, ok := strings.Cut(rest, "' threw exception; "); ok {
			return cause
		}
	}
	if cause, ok := strings.CutPrefix(msg, "Listener failed; "); ok {
		return cause
	}
	return msg
}

// springReason maps what Spring recorded to a reason: a key that did not
// deserialize, or one of Spring's not-retryable exceptions, is permanent;
// any other exception was dead-lettered once Spring's retries (its error
// handler's back-off, or its retry topics) were used up: exhausted. Without
// an exception class, unknown.
func springReason(s *SpringDeadLetter) headers.Reason {
	switch {
	case s.KeyException || slices.Contains(springFatal, s.CauseClass) || slices.Contains(springFatal, s.ExceptionClass):
		return headers.ReasonPermanent
	case s.CauseClass != "" || s.ExceptionClass != "":
		return headers.ReasonExhausted
	}
	return ReasonUnknown
}

// javaBigInteger reads what Java's BigInteger.toByteArray writes for a long.
func javaBigInteger(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 8 {
		return 0, false
	}
	var n int64
	if b[0]&0x80 != 0 {
		n = -1
	}
	for _, c := range b {
		n = n<<8 | int64(c)
	}
	return n, true
}

// springUserHeaders returns hs without Spring Kafka's dead-letter and retry
// headers, in order.
func springUserHeaders(hs []kgo.RecordHeader) []kgo.RecordHeader {
	out := make([]kgo.RecordHeader, 0, len(hs))
	for _, h := range hs {
		if !slices.ContainsFunc(springPrefixes, func(p string) bool { return strings.HasPrefix(h.Key, p) }) {
			out = append(out, h)
		}
	}
	return out
}
