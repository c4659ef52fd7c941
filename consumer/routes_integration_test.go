//go:build integration

package consumer_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/consumer"
	"github.com/kretry/kretry/headers"
)

// DLQ routes on the real broker: WithProvisioning creates the route topics
// (as topics apply would), DeadLetterTo sends a record there with
// kretry-route, an unknown route goes to the DLQ.
func TestDLQRoutesOnRealBroker(t *testing.T) {
	verifyNoLeaks(t)
	b := newRealBroker(t, 2)
	main := b.cfg.Topics[0].Name
	b.cfg.Topics[0].DLQRoutes = map[string]string{"invalid": "{topic}.invalid"}
	invalid := main + ".invalid"
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		b.adm.DeleteTopics(ctx, invalid)
	})
	h := consumer.HandlerFunc(func(_ context.Context, r *kgo.Record) error {
		switch string(r.Key) {
		case "bad":
			return consumer.DeadLetterTo("invalid", errors.New("no sku"))
		case "typo":
			return consumer.DeadLetterTo("invalidd", errors.New("no sku"))
		}
		return nil
	})
	b.produceSync(&kgo.Record{Topic: main, Partition: 1, Key: []byte("bad")},
		&kgo.Record{Topic: main, Partition: 0, Key: []byte("typo")},
		&kgo.Record{Topic: main, Partition: 0, Key: []byte("fine")})
	stop := b.run(h, consumer.WithRelay(false), consumer.WithProvisioning(true))
	waitReal(t, 60*time.Second, "the routed and the dead-lettered record", func() bool {
		return len(b.readAll(invalid)) == 1 && len(b.readAll(b.ladder.DLQ())) == 1
	})
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	td, err := b.adm.ListTopics(context.Background(), invalid)
	if err != nil || len(td[invalid].Partitions) != 2 {
		t.Errorf("route topic %s: %d partitions (%v), want the main topic's 2", invalid, len(td[invalid].Partitions), err)
	}
	rec := b.readAll(invalid)[0]
	md, _, err := headers.Decode(rec.Headers)
	if err != nil || md.Route != "invalid" || md.Reason != headers.ReasonPermanent || rec.Partition != 1 || md.OriginalTopic != main {
		t.Errorf("routed record: partition %d, %+v, %v; want partition 1, route invalid, permanent", rec.Partition, md, err)
	}
	dl := b.readAll(b.ladder.DLQ())[0]
	if md, _, _ := headers.Decode(dl.Headers); string(dl.Key) != "typo" || md.Route != "" || md.Reason != headers.ReasonPermanent {
		t.Errorf("DLQ record %s: %+v; want typo, permanent, no route", dl.Key, md)
	}
	b.checkCommittedToEnd(b.cfg.Group, main)
}
