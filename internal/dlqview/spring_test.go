package dlqview_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/dlq"
	"github.com/kretry/kretry/internal/dlqview"
)

// springRecord is a dead letter of Spring's retryable topics, with the
// header bytes Spring writes (partition 1, offset 1234567 and timestamp
// 2025-11-25T10:00:00Z big-endian; retry_topic-attempts 3: two failed
// deliveries).
func springRecord() *dlq.Record {
	hs := []kgo.RecordHeader{
		{Key: "traceparent", Value: []byte("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")},
		{Key: "kafka_original-topic", Value: []byte("payments")},
		{Key: "kafka_original-partition", Value: []byte{0, 0, 0, 1}},
		{Key: "kafka_original-offset", Value: []byte{0, 0, 0, 0, 0, 0x12, 0xd6, 0x87}},
		{Key: "kafka_original-timestamp", Value: []byte{0, 0, 0x01, 0x9a, 0xba, 0x74, 0xad, 0x00}},
		{Key: "kafka_original-timestamp-type", Value: []byte("CreateTime")},
		{Key: "kafka_dlt-original-consumer-group", Value: []byte("payments-service")},
		{Key: "kafka_exception-fqcn", Value: []byte("org.springframework.kafka.listener.ListenerExecutionFailedException")},
		{Key: "kafka_exception-cause-fqcn", Value: []byte("java.lang.IllegalStateException")},
		{Key: "kafka_exception-message", Value: []byte("Listener failed; payment 42 declined")},
		{Key: "kafka_exception-stacktrace", Value: []byte("java.lang.IllegalStateException: payment 42 declined\n\tat com.example.PaymentListener.listen(PaymentListener.java:17)\n")},
		{Key: "retry_topic-attempts", Value: []byte{0, 0, 0, 3}},
	}
	return dlq.NewRecord(&kgo.Record{Topic: "payments-dlt", Partition: 0, Offset: 4, Timestamp: base, Key: []byte("p-42"), Value: []byte(`{"id":42}`), Headers: hs})
}

func TestSpringRendering(t *testing.T) {
	rec := springRecord()
	var table, show bytes.Buffer
	if err := dlqview.WriteTable(&table, []*dlq.Record{rec}, 1<<20); err != nil {
		t.Fatal(err)
	}
	if row := strings.Join(strings.Fields(strings.Split(table.String(), "\n")[1]), " "); row !=
		"0/4 11-25 10:00:00 p-42 payments/1@1234567 2 exhausted java.lang.IllegalStateException: payment 42 declined" {
		t.Errorf("ls row %q", row)
	}
	if err := dlqview.WriteRecord(&show, rec); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"reason               exhausted\n",
		"written by           Spring Kafka's retryable topics (the reason is read from the exception class)\n",
		"original             payments partition 1 offset 1234567 at 2025-11-25T10:00:00.000Z\n",
		"group                payments-service\n",
		"attempts             2 (from retry_topic-attempts)\n",
		"exception            org.springframework.kafka.listener.ListenerExecutionFailedException\n",
		"cause                java.lang.IllegalStateException\n",
		"message              Listener failed; payment 42 declined\n",
		"  kafka_original-partition: 0x00000001\n",
		"\nstack trace\njava.lang.IllegalStateException: payment 42 declined\n    at com.example",
	} {
		if !strings.Contains(show.String(), want) {
			t.Errorf("show lacks %q:\n%s", want, show.String())
		}
	}
	if strings.Contains(show.String(), "last tier") {
		t.Errorf("show names a kretry tier for a Spring dead letter:\n%s", show.String())
	}
	b, err := json.Marshal(dlqview.Record(rec))
	if err != nil {
		t.Fatal(err)
	}
	var j dlqview.RecordJSON
	if err := json.Unmarshal(b, &j); err != nil {
		t.Fatal(err)
	}
	if j.Spring == nil || !j.Spring.RetryTopics || j.Spring.CauseClass != "java.lang.IllegalStateException" || j.Spring.TimestampType != "CreateTime" ||
		j.Group != "payments-service" || j.Attempts != 2 || j.OriginalTopic != "payments" || *j.OriginalPartition != 1 || *j.OriginalOffset != 1234567 {
		t.Errorf("JSON %s", b)
	}
}

// FuzzSpringRender feeds arbitrary bytes to Spring's dead-letter headers:
// reading never panics, and ls, show and --json print no control character
// other than a newline.
func FuzzSpringRender(f *testing.F) {
	f.Add([]byte("payments"), []byte{0, 0, 0, 1}, []byte{0, 0, 0, 0, 0, 0x12, 0xd6, 0x87}, []byte{0, 0, 0, 3}, []byte("java.lang.IllegalStateException"), []byte("Listener failed; boom"), []byte("svc"))
	f.Add([]byte("p\x1b[2J"), []byte{0xff, 0xff, 0xff, 0xff}, []byte{1}, []byte{}, []byte("a\u202eb"), []byte("\r\nforged"), []byte("\x9b"))
	f.Add([]byte(""), []byte(nil), []byte{0x80, 0, 0, 0, 0, 0, 0, 0}, []byte{0x80, 0, 0, 0}, []byte("\xff"), []byte("Listener method '\x1b' threw exception; \x07"), []byte(""))
	f.Fuzz(func(t *testing.T, topic, partition, offset, attempts, cause, message, group []byte) {
		hs := []kgo.RecordHeader{
			{Key: "kafka_original-topic", Value: topic},
			{Key: "kafka_original-partition", Value: partition},
			{Key: "kafka_original-offset", Value: offset},
			{Key: "kafka_original-timestamp", Value: offset},
			{Key: "retry_topic-original-timestamp", Value: partition},
			{Key: "retry_topic-attempts", Value: attempts},
			{Key: "kafka_dlt-original-consumer-group", Value: group},
			{Key: "kafka_exception-cause-fqcn", Value: cause},
			{Key: "kafka_exception-message", Value: message},
			{Key: "kafka_exception-stacktrace", Value: message},
		}
		rec := dlq.NewRecord(&kgo.Record{Topic: "payments-dlt", Timestamp: base, Key: topic, Value: message, Headers: hs})
		if rec.Spring == nil {
			t.Fatal("not read as a Spring dead letter")
		}
		var table, show bytes.Buffer
		if err := dlqview.WriteTable(&table, []*dlq.Record{rec}, 100); err != nil {
			t.Fatal(err)
		}
		if err := dlqview.WriteRecord(&show, rec); err != nil {
			t.Fatal(err)
		}
		js, err := json.Marshal(dlqview.Record(rec))
		if err != nil || !json.Valid(js) {
			t.Fatalf("JSON %s: %v", js, err)
		}
		for name, o := range map[string]string{"ls": table.String(), "show": show.String(), "json": string(js)} {
			if c := controls(o); len(c) > 0 {
				t.Fatalf("%s prints %q:\n%s", name, c, o)
			}
		}
		if n := strings.Count(table.String(), "\n"); n != 2 {
			t.Fatalf("ls printed %d lines for 1 record:\n%s", n, table.String())
		}
	})
}
