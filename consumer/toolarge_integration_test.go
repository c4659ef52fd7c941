//go:build integration

package consumer_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/consumer"
	"github.com/kretry/kretry/headers"
)

// On the real broker, with a main topic that takes 1.1 MB records and tier
// and DLQ topics at the broker's default max.message.bytes (1,048,588): a
// failed record of 1,024,004 bytes goes to its tier whole (the consumer's
// batch limit follows the tier's max.message.bytes, not kgo's 1,000,012-byte
// default), one of 1,048,400 bytes, too large for the tier with kretry's
// headers, goes to the DLQ without its value (reason too-large,
// kretry-original-* pointing at it), and the partition goes on: the group
// commits to the end, so a restart does not meet the record again.
func TestTooLargeOnRealBroker(t *testing.T) {
	verifyNoLeaks(t)
	b := newRealBroker(t, 1)
	main := b.ladder.Topic()
	ctx := context.Background()
	rs, err := b.adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Name: "max.message.bytes", Value: kadm.StringPtr("1100000")}}, main)
	if err == nil {
		_, err = rs.On(main, nil)
	}
	if err != nil {
		t.Fatalf("raising max.message.bytes of %s: %v", main, err)
	}
	prod, err := kgo.NewClient(kgo.SeedBrokers(b.seeds...), kgo.ProducerBatchMaxBytes(2<<20))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	const fits, big = 1_024_004, 1_048_400
	recs := []*kgo.Record{
		{Topic: main, Key: []byte("fits"), Value: bytes.Repeat([]byte("f"), fits)},
		{Topic: main, Key: []byte("big"), Value: bytes.Repeat([]byte("b"), big)},
		{Topic: main, Key: []byte("after"), Value: []byte("v")},
	}
	// The broker may take a moment to apply the raised limit.
	waitReal(t, 30*time.Second, "the main topic to take the records", func() bool {
		return prod.ProduceSync(ctx, recs...).FirstErr() == nil
	})
	bigOffset := recs[1].Offset

	reg := prometheus.NewRegistry()
	var calls counter
	h := consumer.HandlerFunc(func(_ context.Context, r *kgo.Record) error {
		calls.add(r.Key)
		if string(r.Key) == "after" {
			return nil
		}
		return errTransient
	})
	cons, err := consumer.New(b.cfg, h, consumer.WithRelay(false), consumer.WithRegisterer(reg))
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() { errc <- cons.Run(runCtx) }()
	tier := b.ladder.Steps()[0].Topic
	waitReal(t, 60*time.Second, "the tier and DLQ records", func() bool {
		return len(b.readAll(tier)) == 1 && len(b.readAll(b.ladder.DLQ())) == 1 && calls.get("after") >= 1
	})
	waitReal(t, 30*time.Second, "the group committed to the end", func() bool {
		os, err := b.adm.FetchOffsets(ctx, b.cfg.Group)
		if err != nil {
			return false
		}
		o, _ := os.Lookup(main, 0)
		return o.At == recs[2].Offset+1
	})
	cancel()
	if err := <-errc; err != nil {
		t.Fatalf("Run: %v", err)
	}

	if got := b.readAll(tier)[0]; string(got.Key) != "fits" || len(got.Value) != fits {
		t.Errorf("tier record: key %q, %d value bytes; want fits, %d", got.Key, len(got.Value), fits)
	}
	dlq := b.readAll(b.ladder.DLQ())[0]
	md, _, err := headers.Decode(dlq.Headers)
	if err != nil {
		t.Fatalf("the DLQ record's kretry headers: %v", err)
	}
	if string(dlq.Key) != "big" || len(dlq.Value) != 0 || md.Reason != headers.ReasonTooLarge ||
		md.OriginalTopic != main || md.OriginalPartition != 0 || md.OriginalOffset != bigOffset ||
		!strings.Contains(md.Error, "value of 1048400 bytes omitted") {
		t.Errorf("DLQ record: key %q, %d value bytes, reason %q, original %s/%d@%d, error %q; "+
			"want big, no value, too-large, %s/0@%d and the size", dlq.Key, len(dlq.Value), md.Reason,
			md.OriginalTopic, md.OriginalPartition, md.OriginalOffset, md.Error, main, bigOffset)
	}
	if v := counterValue(t, reg, "kretry_too_large_total", map[string]string{"topic": main}); v != 1 {
		t.Errorf("kretry_too_large_total = %v, want 1", v)
	}
	if n := calls.get("big"); n != 1 {
		t.Errorf("the big record was handled %d times, want 1", n)
	}
}
