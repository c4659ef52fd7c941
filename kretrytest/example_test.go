package kretrytest_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/config"
	"github.com/kretry/kretry/consumer"
	"github.com/kretry/kretry/kretrytest"
	"github.com/kretry/kretry/ladder"
)

// A handler that fails twice is retried down the ladder; a record it cannot
// decode goes straight to the DLQ. In a test, call kretrytest.New(t, cfg)
// inside synctest.Test for virtual time and cleanup at the test's end; this
// example runs in real time, so its ladder is short.
func Example() {
	cfg := &config.Config{
		Group: "orders-service",
		Topics: []config.Topic{{
			Name:  "orders",
			Tiers: []ladder.Tier{{Delay: 10 * time.Millisecond}, {Delay: 20 * time.Millisecond}},
		}},
	}
	k, err := kretrytest.Start(cfg)
	if err != nil {
		log.Fatal(err)
	}
	defer k.Close()

	failures := 0
	err = k.Run(consumer.HandlerFunc(func(_ context.Context, rec *kgo.Record) error {
		if string(rec.Value) == "not json" {
			return consumer.Permanent(errors.New("cannot decode the order"))
		}
		if failures < 2 { // one partition: records are handled one at a time
			failures++
			return errors.New("payment gateway down")
		}
		return nil
	}))
	if err != nil {
		log.Fatal(err)
	}

	ctx := context.Background()
	flaky, garbled := &kgo.Record{Value: []byte(`{"id": 1}`)}, &kgo.Record{Value: []byte("not json")}
	for _, rec := range []*kgo.Record{flaky, garbled} {
		if err := k.Produce(ctx, rec); err != nil {
			log.Fatal(err)
		}
		fate, err := k.Fate(ctx, rec)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%s: handled %v after %d attempts, tiers %v, dead-lettered %q\n",
			rec.Value, fate.Handled, len(fate.Attempts), fate.Tiers(), fate.Reason)
	}
	// Output:
	// {"id": 1}: handled true after 3 attempts, tiers [retry-10ms retry-20ms], dead-lettered ""
	// not json: handled false after 1 attempts, tiers [], dead-lettered "permanent"
}
