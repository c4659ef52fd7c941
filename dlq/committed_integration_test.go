//go:build integration

package dlq_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/dlq"
	"github.com/kretry/kretry/headers"
	"github.com/kretry/kretry/internal/kafkatest"
)

// TestIntegrationReaderSkipsAbortedDeadLetters: in exactly_once mode a dead
// letter whose transaction aborted was never written, as far as the ladder
// is concerned; the record is handled again and dead-lettered in a later
// transaction. The DLQ tools read committed records only, so that one is not
// listed, or replayed, twice.
func TestIntegrationReaderSkipsAbortedDeadLetters(t *testing.T) {
	seeds := kafkatest.Brokers(t)
	dq := kafkatest.Name(t, "orders") + ".dlq"
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	admCl, err := kgo.NewClient(kgo.SeedBrokers(seeds...))
	if err != nil {
		t.Fatal(err)
	}
	defer admCl.Close()
	adm := kadm.NewClient(admCl)
	if resp, err := adm.CreateTopics(ctx, 1, 1, nil, dq); err != nil || resp.Error() != nil {
		t.Fatalf("creating %s: %v %v", dq, err, resp.Error())
	}
	t.Cleanup(func() { _, _ = adm.DeleteTopics(context.Background(), dq) })

	txn, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.TransactionalID(kafkatest.Name(t, "txn")),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer txn.Close()
	at := time.Now().Add(-time.Minute).Truncate(time.Millisecond)
	write := func(key string, commit bool) {
		t.Helper()
		if err := txn.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		md := headers.Metadata{Group: "svc", Attempts: 1, Tier: "dlq", DueAt: at, OriginalTopic: "orders", OriginalOffset: 7,
			OriginalTimestamp: at, FirstFailureAt: at, LastFailureAt: at, Error: "boom", Reason: headers.ReasonPermanent}
		if err := txn.ProduceSync(ctx, &kgo.Record{Topic: dq, Key: []byte(key), Value: []byte("v"), Headers: headers.Encode(nil, md)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
		if err := txn.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
			t.Fatal(err)
		}
	}
	write("aborted", false)
	write("committed", true)

	r := newReaderOf(t, seeds, dq)
	recs, err := r.List(ctx, dlq.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, rec := range recs {
		keys = append(keys, string(rec.Key))
	}
	if got := strings.Join(keys, ","); got != "committed" {
		t.Errorf("the DLQ reader lists %q, want only the committed dead letter", got)
	}
}
