//go:build integration

package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/internal/kafkatest"
)

// springHeaders are the headers Spring Kafka's DeadLetterPublishingRecoverer
// writes on a dead letter after the record's own (userHeaders): exception
// class, root cause, message and stack trace as UTF-8, then the original's
// topic, partition (ByteBuffer.putInt), offset and timestamp
// (ByteBuffer.putLong, epoch milliseconds), timestamp type and the
// listener's group.
func springHeaders(userHeaders []kgo.RecordHeader, topic string, partition int32, offset int64, at time.Time, group, cause, message string) []kgo.RecordHeader {
	p := binary.BigEndian.AppendUint32(nil, uint32(partition))
	o := binary.BigEndian.AppendUint64(nil, uint64(offset))
	ts := binary.BigEndian.AppendUint64(nil, uint64(at.UnixMilli()))
	return append(slices.Clone(userHeaders),
		kgo.RecordHeader{Key: "kafka_dlt-exception-fqcn", Value: []byte("org.springframework.kafka.listener.ListenerExecutionFailedException")},
		kgo.RecordHeader{Key: "kafka_dlt-exception-cause-fqcn", Value: []byte(cause)},
		kgo.RecordHeader{Key: "kafka_dlt-exception-message", Value: []byte("Listener method 'public void com.example.PaymentListener.listen(java.lang.String)' threw exception; " + message)},
		kgo.RecordHeader{Key: "kafka_dlt-exception-stacktrace", Value: []byte("org.springframework.kafka.listener.ListenerExecutionFailedException: Listener method threw exception\n\tat org.springframework.kafka.listener.KafkaMessageListenerContainer$ListenerConsumer.decorateException(KafkaMessageListenerContainer.java:2996)\nCaused by: " + cause + ": " + message + "\n\tat com.example.PaymentListener.listen(PaymentListener.java:17)\n")},
		kgo.RecordHeader{Key: "kafka_dlt-original-topic", Value: []byte(topic)},
		kgo.RecordHeader{Key: "kafka_dlt-original-partition", Value: p},
		kgo.RecordHeader{Key: "kafka_dlt-original-offset", Value: o},
		kgo.RecordHeader{Key: "kafka_dlt-original-timestamp", Value: ts},
		kgo.RecordHeader{Key: "kafka_dlt-original-timestamp-type", Value: []byte("CreateTime")},
		kgo.RecordHeader{Key: "kafka_dlt-original-consumer-group", Value: []byte(group)},
	)
}

// TestIntegrationDLQSpring runs kretry dlq ls, show, stats and replay on a
// dead-letter topic written as Spring Kafka writes one, on the real broker.
func TestIntegrationDLQSpring(t *testing.T) {
	seeds := kafkatest.Brokers(t)
	noEnvOverrides(t)
	opts := []kgo.Opt{kgo.SeedBrokers(seeds...)}
	main := realMain(t, seeds)
	dlt := main + ".DLT"
	createTopic(t, opts, dlt, 1, 0)
	t.Cleanup(func() {
		if adm, err := kadm.NewOptClient(opts...); err == nil {
			_, _ = adm.DeleteTopics(t.Context(), dlt)
			adm.Close()
		}
	})
	brokers := strings.Join(seeds, ",")

	if p := springHeaders(nil, main, 2, 1234567, time.Time{}, "", "", "")[5].Value; !bytes.Equal(p, []byte{0, 0, 0, 2}) {
		t.Fatalf("partition 2 written as %x, not as Java's ByteBuffer.putInt", p)
	}
	at := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	user := []kgo.RecordHeader{{Key: "traceparent", Value: []byte("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")}, {Key: "bin", Value: []byte{0xff, 0x00, 0x7f}}}
	recs := []*kgo.Record{
		{Key: []byte("p-41"), Value: []byte(`{"payment":41}`), Headers: springHeaders(user, main, 2, 41, at, "payments-service", "java.lang.IllegalStateException", "payment 41 declined")},
		{Key: []byte("p-42"), Value: []byte{0x00, 0x01, 0xfe}, Headers: springHeaders(user, main, 1, 42, at, "payments-service",
			"org.springframework.kafka.support.serializer.DeserializationException", "failed to deserialize")},
		{Key: []byte("p-43"), Value: []byte(`{"payment":43}`), Headers: springHeaders(user, main, 0, 43, at, "payments-service", "java.lang.IllegalStateException", "payment 43 declined")},
		{Key: []byte("r-7"), Value: []byte(`{"refund":7}`), Headers: springHeaders(nil, main, 0, 7, at, "refunds-service", "java.net.SocketTimeoutException", "Read timed out")},
	}
	cl, err := kgo.NewClient(append(opts, kgo.RecordPartitioner(kgo.ManualPartitioner()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for i, r := range recs {
		r.Topic, r.Partition, r.Timestamp = dlt, 0, at.Add(time.Duration(i+1)*time.Minute)
		if err := cl.ProduceSync(t.Context(), r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("COLUMNS", "") // not a terminal: nothing is cut

	res := kretry(t, "dlq", "ls", "--brokers", brokers, "--topic", dlt)
	lines := strings.Split(strings.TrimSpace(res.stdout), "\n")
	if res.code != exitOK || len(lines) != 5 {
		t.Fatalf("ls:\n%s", res)
	}
	// The ORIGINAL column is cut at 40 characters in the topic name.
	for i, want := range [][2]string{
		{"0/0 11-25 10:01:00 p-41 orders-", "/2@41 - exhausted java.lang.IllegalStateException: payment 41 declined"},
		{"0/1 11-25 10:02:00 p-42 orders-", "/1@42 - permanent org.springframework.kafka.support.serializer.DeserializationException: failed to deserialize"},
		{"0/3 11-25 10:04:00 r-7 orders-", "/0@7 - exhausted java.net.SocketTimeoutException: Read timed out"},
	} {
		row := strings.Join(strings.Fields(lines[[]int{1, 2, 4}[i]]), " ")
		if !strings.HasPrefix(row, want[0]) || !strings.Contains(row, want[1]) {
			t.Errorf("ls row %q, want %q…%q", row, want[0], want[1])
		}
	}
	res = kretry(t, "dlq", "ls", "--brokers", brokers, "--topic", dlt, "--failed-group", "payments-service", "--reason", "permanent")
	if n := strings.Count(strings.TrimSpace(res.stdout), "\n"); res.code != exitOK || n != 1 || !strings.Contains(res.stdout, "p-42") {
		t.Errorf("ls --failed-group payments-service --reason permanent:\n%s", res)
	}

	res = kretry(t, "dlq", "show", "--brokers", brokers, "--topic", dlt, "--partition", "0", "--offset", "0")
	for _, want := range []string{
		"reason               exhausted\n",
		"written by           Spring Kafka's DeadLetterPublishingRecoverer",
		"original             " + main + " partition 2 offset 41 at 2026-11-25T10:00:00.000Z\n",
		"group                payments-service\n",
		"cause                java.lang.IllegalStateException\n",
		"\nstack trace\norg.springframework.kafka.listener.ListenerExecutionFailedException",
	} {
		if res.code != exitOK || !strings.Contains(res.stdout, want) {
			t.Errorf("show lacks %q:\n%s", want, res)
		}
	}

	res = kretry(t, "dlq", "stats", "--brokers", brokers, "--topic", dlt, "--json")
	var st struct {
		Total    int
		ByReason []struct {
			Value string
			Count int
		} `json:"by_reason"`
		ByOriginalTopic []struct {
			Value string
			Count int
		} `json:"by_original_topic"`
	}
	if err := json.Unmarshal([]byte(res.stdout), &st); err != nil || st.Total != 4 || len(st.ByReason) != 2 || st.ByReason[0].Value != "exhausted" ||
		st.ByReason[0].Count != 3 || st.ByOriginalTopic[0].Value != main || st.ByOriginalTopic[0].Count != 4 {
		t.Errorf("stats --json: %v\n%s", err, res)
	}

	res = kretry(t, "dlq", "replay", "--brokers", brokers, "--topic", dlt)
	if res.code != exitUsage || !strings.Contains(res.stderr, "--main-topics") {
		t.Errorf("replay without a config, --to or --main-topics:\n%s", res)
	}
	res = kretry(t, "dlq", "replay", "--brokers", brokers, "--topic", dlt, "--main-topics", main, "--failed-group", "payments-service")
	if res.code != exitOK || !strings.Contains(res.stdout, "replayed 3 records of "+dlt) || !strings.Contains(res.stdout, "passed over 1 record") {
		t.Fatalf("replay:\n%s", res)
	}

	// On the main topic: each at its original partition, key, value and
	// user headers byte for byte, none of Spring's headers, kretry-replays 1.
	got := map[string]*kgo.Record{}
	for _, r := range readAll(t, opts, main) {
		got[string(r.Key)] = r
	}
	wantHeaders := append(slices.Clone(user), kgo.RecordHeader{Key: "kretry-replays", Value: []byte("1")})
	for _, want := range recs[:3] {
		r := got[string(want.Key)]
		switch {
		case r == nil:
			t.Errorf("%s was not replayed to %s (got %d records)", want.Key, main, len(got))
		case r.Partition != int32(binary.BigEndian.Uint32(want.Headers[7].Value)) || !bytes.Equal(r.Value, want.Value):
			t.Errorf("%s replayed to partition %d with value %x", want.Key, r.Partition, r.Value)
		case !slices.EqualFunc(r.Headers, wantHeaders, func(a, b kgo.RecordHeader) bool { return a.Key == b.Key && bytes.Equal(a.Value, b.Value) }):
			t.Errorf("%s replayed with headers %q, want %q", want.Key, r.Headers, wantHeaders)
		}
	}
	if len(got) != 3 {
		t.Errorf("%s holds %d records, want the 3 of payments-service", main, len(got))
	}
	res = kretry(t, "dlq", "replay", "--brokers", brokers, "--topic", dlt, "--main-topics", main, "--failed-group", "payments-service")
	if res.code != exitOK || !strings.Contains(res.stdout, "replayed 0 records") {
		t.Errorf("identical replay:\n%s", res)
	}
}

// readAll reads every record of topic on the real broker, from the start to
// the end it has now.
func readAll(t *testing.T, opts []kgo.Opt, topic string) []*kgo.Record {
	t.Helper()
	adm, err := kadm.NewOptClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	ends := kafkatest.EndOffsets(t, t.Context(), adm, topic)
	total := int64(0)
	for _, e := range ends {
		total += e
	}
	cl, err := kgo.NewClient(append(slices.Clone(opts), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var out []*kgo.Record
	deadline := time.Now().Add(30 * time.Second)
	for int64(len(out)) < total && time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		fs := cl.PollFetches(ctx)
		cancel()
		fs.EachRecord(func(r *kgo.Record) { out = append(out, r) })
	}
	if int64(len(out)) < total {
		t.Fatalf("read %d of the %d records of %s", len(out), total, topic)
	}
	return out
}
