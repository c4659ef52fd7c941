package dlq_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/dlq"
	"github.com/kretry/kretry/headers"
	"github.com/kretry/kretry/internal/kafkatest"
)

// The header bytes below are what spring-kafka writes
// (DeadLetterRecordManager.maybeAddOriginalHeaders and
// addExceptionInfoHeaders; DeadLetterPublishingRecovererFactory.addHeaders):
// topic, group, classes, message and stack trace as UTF-8; partition with
// ByteBuffer.putInt, offset and timestamp with ByteBuffer.putLong (big
// endian); retry_topic-attempts with putInt; retry_topic-original-timestamp
// and -backoff-timestamp with BigInteger.toByteArray.

func unhex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

const (
	springLEFE    = "org.springframework.kafka.listener.ListenerExecutionFailedException"
	springMessage = "Listener method 'public void com.example.PaymentListener.listen(java.lang.String)' threw exception; payment 42 declined"
	springTrace   = "org.springframework.kafka.listener.ListenerExecutionFailedException: Listener method threw exception\n\tat org.springframework.kafka.listener.KafkaMessageListenerContainer...\nCaused by: java.lang.IllegalStateException: payment 42 declined\n\tat com.example.PaymentListener.listen(PaymentListener.java:17)\n"
)

// springUser are the headers the failed record carried itself.
func springUser() []kgo.RecordHeader {
	return []kgo.RecordHeader{{Key: "traceparent", Value: []byte("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")}, {Key: "bin", Value: []byte{0xff, 0x00}}}
}

// springDLT is a dead letter as a DefaultErrorHandler with a
// DeadLetterPublishingRecoverer writes it: the record's headers, then the
// exception's, then the original's (partition 1, offset 1234567, timestamp
// 2025-11-25T10:00:00Z).
func springDLT(cause string) []kgo.RecordHeader {
	return append(springUser(),
		kgo.RecordHeader{Key: "kafka_dlt-exception-fqcn", Value: []byte(springLEFE)},
		kgo.RecordHeader{Key: "kafka_dlt-exception-cause-fqcn", Value: []byte(cause)},
		kgo.RecordHeader{Key: "kafka_dlt-exception-message", Value: []byte(springMessage)},
		kgo.RecordHeader{Key: "kafka_dlt-exception-stacktrace", Value: []byte(springTrace)},
		kgo.RecordHeader{Key: "kafka_dlt-original-topic", Value: []byte("payments")},
		kgo.RecordHeader{Key: "kafka_dlt-original-partition", Value: unhex("00000001")},
		kgo.RecordHeader{Key: "kafka_dlt-original-offset", Value: unhex("000000000012d687")},
		kgo.RecordHeader{Key: "kafka_dlt-original-timestamp", Value: unhex("0000019aba74ad00")},
		kgo.RecordHeader{Key: "kafka_dlt-original-timestamp-type", Value: []byte("CreateTime")},
		kgo.RecordHeader{Key: "kafka_dlt-original-consumer-group", Value: []byte("payments-service")},
	)
}

// springRetryDLT is a dead letter of Spring's retryable topics after the
// main topic and one retry topic failed it: the first hop's original and
// retry headers, the last hop's exception (replacing the first's) and
// retry headers (appended: retry_topic-attempts 2, then 3).
func springRetryDLT() []kgo.RecordHeader {
	return append(springUser(),
		kgo.RecordHeader{Key: "kafka_original-topic", Value: []byte("payments")},
		kgo.RecordHeader{Key: "kafka_original-partition", Value: unhex("00000001")},
		kgo.RecordHeader{Key: "kafka_original-offset", Value: unhex("000000000012d687")},
		kgo.RecordHeader{Key: "kafka_original-timestamp", Value: unhex("0000019aba74ad00")},
		kgo.RecordHeader{Key: "kafka_original-timestamp-type", Value: []byte("CreateTime")},
		kgo.RecordHeader{Key: "kafka_dlt-original-consumer-group", Value: []byte("payments-service")},
		kgo.RecordHeader{Key: "retry_topic-original-timestamp", Value: unhex("019aba74ad00")},
		kgo.RecordHeader{Key: "retry_topic-attempts", Value: unhex("00000002")},
		kgo.RecordHeader{Key: "retry_topic-backoff-timestamp", Value: unhex("019aba74c088")},
		kgo.RecordHeader{Key: "kafka_exception-fqcn", Value: []byte(springLEFE)},
		kgo.RecordHeader{Key: "kafka_exception-cause-fqcn", Value: []byte("java.lang.IllegalStateException")},
		kgo.RecordHeader{Key: "kafka_exception-message", Value: []byte(springMessage)},
		kgo.RecordHeader{Key: "kafka_exception-stacktrace", Value: []byte(springTrace)},
		kgo.RecordHeader{Key: "retry_topic-original-timestamp", Value: unhex("019aba74ad00")},
		kgo.RecordHeader{Key: "retry_topic-attempts", Value: unhex("00000003")},
		kgo.RecordHeader{Key: "retry_topic-backoff-timestamp", Value: unhex("019aba74c088")},
	)
}

var springOriginalAt = time.Date(2025, 11, 25, 10, 0, 0, 0, time.UTC)

func TestSpringDeadLetters(t *testing.T) {
	without := func(hs []kgo.RecordHeader, key string) []kgo.RecordHeader {
		return slices.DeleteFunc(slices.Clone(hs), func(h kgo.RecordHeader) bool { return h.Key == key })
	}
	with := func(hs []kgo.RecordHeader, key string, v []byte) []kgo.RecordHeader {
		hs = slices.Clone(hs)
		for i := range hs {
			if hs[i].Key == key {
				hs[i].Value = v
			}
		}
		return hs
	}
	keyFailed := append(springUser(),
		kgo.RecordHeader{Key: "kafka_dlt-key-exception-fqcn", Value: []byte("org.springframework.kafka.support.serializer.DeserializationException")},
		kgo.RecordHeader{Key: "kafka_dlt-key-exception-message", Value: []byte("failed to deserialize; nested exception is bad key")},
		kgo.RecordHeader{Key: "kafka_dlt-original-topic", Value: []byte("payments")},
		kgo.RecordHeader{Key: "kafka_dlt-original-partition", Value: unhex("00000000")},
		kgo.RecordHeader{Key: "kafka_dlt-original-offset", Value: unhex("0000000000000007")},
	)
	for _, tc := range []struct {
		name        string
		hs          []kgo.RecordHeader
		reason      headers.Reason
		attempts    int // 0: unknown
		retryTopics bool
		original    bool
		at          bool // original timestamp known
		group       string
		errText     string
		metaErr     string
	}{
		{"recoverer", springDLT("java.lang.IllegalStateException"), headers.ReasonExhausted, 0, false, true, true, "payments-service",
			"java.lang.IllegalStateException: payment 42 declined", ""},
		{"recoverer, not retryable", springDLT("org.springframework.messaging.converter.MessageConversionException"), headers.ReasonPermanent, 0, false, true, true,
			"payments-service", "org.springframework.messaging.converter.MessageConversionException: payment 42 declined", ""},
		{"recoverer, no cause", without(springDLT(""), "kafka_dlt-exception-cause-fqcn"), headers.ReasonExhausted, 0, false, true, true,
			"payments-service", springLEFE + ": payment 42 declined", ""},
		{"retry topics", springRetryDLT(), headers.ReasonExhausted, 2, true, true, true, "payments-service", "java.lang.IllegalStateException: payment 42 declined", ""},
		{"retry topics, original timestamp from retry_topic-original-timestamp", without(springRetryDLT(), "kafka_original-timestamp"),
			headers.ReasonExhausted, 2, true, true, true, "payments-service", "java.lang.IllegalStateException: payment 42 declined", ""},
		{"retry topics, one-byte attempts (before 2.9)", with(springRetryDLT(), "retry_topic-attempts", []byte{4}),
			headers.ReasonExhausted, 3, true, true, true, "payments-service", "java.lang.IllegalStateException: payment 42 declined", ""},
		{"dead-lettered twice: the last original counts", append([]kgo.RecordHeader{
			{Key: "kafka_dlt-original-topic", Value: []byte("payments-v1")},
			{Key: "kafka_dlt-original-partition", Value: unhex("00000000")},
			{Key: "kafka_dlt-original-offset", Value: unhex("0000000000000001")},
			{Key: "kafka_dlt-original-consumer-group", Value: []byte("old-service")},
		}, springDLT("java.lang.IllegalStateException")...), headers.ReasonExhausted, 0, false, true, true, "payments-service",
			"java.lang.IllegalStateException: payment 42 declined", ""},
		{"message of another form", with(springDLT("java.lang.IllegalStateException"), "kafka_dlt-exception-message", []byte("Listener method 'x' failed; boom")),
			headers.ReasonExhausted, 0, false, true, true, "payments-service", "java.lang.IllegalStateException: Listener method 'x' failed; boom", ""},
		{"Listener failed", with(springDLT("java.lang.IllegalStateException"), "kafka_dlt-exception-message", []byte("Listener failed; boom")),
			headers.ReasonExhausted, 0, false, true, true, "payments-service", "java.lang.IllegalStateException: boom", ""},
		{"key not deserialized", keyFailed, headers.ReasonPermanent, 0, false, true, false, "",
			"org.springframework.kafka.support.serializer.DeserializationException: failed to deserialize; nested exception is bad key", ""},
		{"no exception headers", without(without(without(without(springDLT(""), "kafka_dlt-exception-fqcn"), "kafka_dlt-exception-cause-fqcn"),
			"kafka_dlt-exception-message"), "kafka_dlt-exception-stacktrace"), dlq.ReasonUnknown, 0, false, true, true, "payments-service", "", ""},
		{"partition as text", with(springDLT("java.lang.IllegalStateException"), "kafka_dlt-original-partition", []byte("1")), headers.ReasonExhausted,
			0, false, false, true, "payments-service", "java.lang.IllegalStateException: payment 42 declined", "kafka_dlt-original-partition: invalid value 0x31"},
		{"timestamp past year 9999", with(springDLT("java.lang.IllegalStateException"), "kafka_dlt-original-timestamp", unhex("7fffffffffffffff")), headers.ReasonExhausted,
			0, false, true, false, "payments-service", "java.lang.IllegalStateException: payment 42 declined", "kafka_dlt-original-timestamp"},
		{"negative offset", with(springDLT("java.lang.IllegalStateException"), "kafka_dlt-original-offset", unhex("ffffffffffffffff")), headers.ReasonExhausted,
			0, false, false, true, "payments-service", "java.lang.IllegalStateException: payment 42 declined", "kafka_dlt-original-offset"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := dlq.NewRecord(&kgo.Record{Topic: "payments.DLT", Key: []byte("p-42"), Value: []byte(`{"id":42}`), Headers: tc.hs})
			if r.Spring == nil {
				t.Fatalf("not read as a Spring dead letter: %+v", r)
			}
			md := r.Meta
			if r.Reason != tc.reason || md.Attempts != tc.attempts || (r.Fields()&dlq.FieldAttempts != 0) != (tc.attempts > 0) ||
				r.Spring.RetryTopics != tc.retryTopics || md.Group != tc.group || r.ErrorText() != tc.errText || r.HasMeta {
				t.Errorf("read as reason %s attempts %d retry topics %v group %q error %q; want %s %d %v %q %q",
					r.Reason, md.Attempts, r.Spring.RetryTopics, md.Group, r.ErrorText(), tc.reason, tc.attempts, tc.retryTopics, tc.group, tc.errText)
			}
			wantP, wantO := int32(1), int64(1234567)
			if tc.name == "key not deserialized" {
				wantP, wantO = 0, 7
			}
			if got := r.Fields()&dlq.FieldOriginal != 0; got != tc.original ||
				tc.original && (md.OriginalTopic != "payments" || md.OriginalPartition != wantP || md.OriginalOffset != wantO) {
				t.Errorf("original %v %s/%d@%d, want %v", got, md.OriginalTopic, md.OriginalPartition, md.OriginalOffset, tc.original)
			}
			if got := r.Fields()&dlq.FieldOriginalTimestamp != 0; got != tc.at || tc.at && !md.OriginalTimestamp.Equal(springOriginalAt) {
				t.Errorf("original timestamp %v %v, want %v %v", got, md.OriginalTimestamp, tc.at, springOriginalAt)
			}
			switch {
			case tc.metaErr == "" && r.MetaErr != nil:
				t.Errorf("metadata error %v", r.MetaErr)
			case tc.metaErr != "" && (r.MetaErr == nil || !strings.Contains(r.MetaErr.Error(), tc.metaErr)):
				t.Errorf("metadata error %v, want one naming %s", r.MetaErr, tc.metaErr)
			}
		})
	}
	if r := dlq.NewRecord(&kgo.Record{Headers: springUser()}); r.Spring != nil || r.Reason != dlq.ReasonUnknown {
		t.Errorf("a record without Spring's headers read as %+v", r.Spring)
	}
}

// newSpringFake starts kfake with a Spring DLT and its main topic.
func newSpringFake(t *testing.T) []string {
	t.Helper()
	_, seeds := kafkatest.Fake(t, kfake.NumBrokers(1), kfake.SeedTopics(2, "payments.DLT", "payments", "orders"))
	return seeds
}

// putSpring writes Spring dead letters to payments.DLT: 0 and 1 failed by
// payments-service, 1 with a not-retryable exception, 2 by another group.
func putSpring(t *testing.T, seeds []string) {
	t.Helper()
	cl := producer(t, seeds)
	other := springRetryDLT()
	for i := range other {
		if other[i].Key == "kafka_dlt-original-consumer-group" {
			other[i].Value = []byte("refunds-service")
		}
	}
	for _, rec := range []*kgo.Record{
		{Key: []byte("p-42"), Value: []byte(`{"id":42}`), Headers: springDLT("java.lang.IllegalStateException")},
		{Key: []byte("p-43"), Value: []byte{0x00, 0x01, 0xfe}, Headers: springDLT("org.springframework.kafka.support.serializer.DeserializationException")},
		{Key: nil, Value: []byte("refund 7"), Headers: other},
	} {
		rec.Topic, rec.Partition, rec.Timestamp = "payments.DLT", 0, base
		if err := cl.ProduceSync(context.Background(), rec).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestSpringFiltersAndStats(t *testing.T) {
	seeds := newSpringFake(t)
	putSpring(t, seeds)
	r, err := dlq.NewReader("payments.DLT", dlq.WithClientOpts(kgo.SeedBrokers(seeds...)))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for _, tc := range []struct {
		name string
		f    dlq.Filter
		want []string
	}{
		{"failed group", dlq.Filter{FailedGroup: "payments-service"}, []string{"0/0", "0/1"}},
		{"other group", dlq.Filter{FailedGroup: "refunds-service"}, []string{"0/2"}},
		{"permanent", dlq.Filter{Reasons: []headers.Reason{headers.ReasonPermanent}}, []string{"0/1"}},
		{"exhausted", dlq.Filter{Reasons: []headers.Reason{headers.ReasonExhausted}}, []string{"0/0", "0/2"}},
		{"original topic", dlq.Filter{OriginalTopic: "payments"}, []string{"0/0", "0/1", "0/2"}},
		{"exception class", dlq.Filter{ErrorContains: "illegalstateexception"}, []string{"0/0", "0/2"}},
		{"message", dlq.Filter{ErrorContains: "payment 42 declined"}, []string{"0/0", "0/1", "0/2"}},
	} {
		if got := positions(t, r, tc.f); !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
	s, err := r.Stats(context.Background(), dlq.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if s.Total != 3 || s.ByReason["exhausted"] != 2 || s.ByReason["permanent"] != 1 || s.ByOriginalTopic["payments"] != 3 ||
		s.ByError["java.lang.IllegalStateException: payment <n> declined"] != 2 {
		t.Errorf("stats %+v", s)
	}
}

// A Spring dead letter is replayed to its original topic and partition, with
// its key, value and user headers byte for byte, none of Spring's headers,
// and of kretry's only kretry-replays; a dead letter Spring wrote again after
// --max-replays replays is skipped.
func TestSpringReplay(t *testing.T) {
	seeds := newSpringFake(t)
	putSpring(t, seeds)
	r, err := dlq.NewReader("payments.DLT", dlq.WithClientOpts(kgo.SeedBrokers(seeds...)))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	sum, err := r.Replay(context.Background(), dlq.Filter{FailedGroup: "payments-service"}, dlq.WithMainTopics("payments"))
	if err != nil || sum.Replayed != 2 || sum.ByTarget["payments"] != 2 || sum.PassedOver != 1 {
		t.Fatalf("replay: %+v %v", sum, err)
	}
	got := consumeAll(t, seeds, "payments")
	if len(got) != 2 {
		t.Fatalf("payments holds %d records, want 2", len(got))
	}
	wantValues := [][]byte{[]byte(`{"id":42}`), {0x00, 0x01, 0xfe}}
	for i, rec := range got {
		if rec.Partition != 1 || string(rec.Key) != []string{"p-42", "p-43"}[i] || !bytes.Equal(rec.Value, wantValues[i]) {
			t.Errorf("replayed record %d: partition %d key %q value %x", i, rec.Partition, rec.Key, rec.Value)
		}
		want := append(springUser(), kgo.RecordHeader{Key: headers.HeaderReplays, Value: []byte("1")})
		if !slices.EqualFunc(rec.Headers, want, func(a, b kgo.RecordHeader) bool { return a.Key == b.Key && bytes.Equal(a.Value, b.Value) }) {
			t.Errorf("replayed record %d headers %q, want the user's byte for byte and kretry-replays 1", i, rec.Headers)
		}
	}

	// Spring dead-letters the replayed record again: it copies its headers.
	again := append(slices.Clone(got[0].Headers), springDLT("java.lang.IllegalStateException")[2:]...)
	for i := range again {
		if again[i].Key == headers.HeaderReplays {
			again[i].Value = []byte("3")
		}
	}
	cl := producer(t, seeds)
	if err := cl.ProduceSync(context.Background(), &kgo.Record{Topic: "payments.DLT", Partition: 0, Key: []byte("p-42"), Value: []byte(`{"id":42}`), Headers: again}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	sum, err = r.Replay(context.Background(), dlq.Filter{FailedGroup: "payments-service"}, dlq.WithMainTopics("payments"))
	if err != nil || sum.Replayed != 0 || sum.Skipped(dlq.SkippedMaxReplays) != 1 {
		t.Fatalf("replay of a record replayed 3 times: %+v %v", sum, err)
	}
	// A Spring record names a topic that is not a main topic: skipped.
	sum, err = r.Replay(context.Background(), dlq.Filter{FailedGroup: "refunds-service"}, dlq.WithMainTopics("orders"))
	if err != nil || sum.Skipped(dlq.SkippedNotMainTopic) != 1 {
		t.Fatalf("replay to a topic that is not a main topic: %+v %v", sum, err)
	}
}
