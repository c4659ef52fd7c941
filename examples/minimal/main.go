// Command minimal is the smallest kretry consumer: a handler whose failures
// are retried after 5s, 1m and twice 10m, then dead-lettered to orders.dlq.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"os"
	"os/signal"
	"syscall"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/config"
	"github.com/kretry/kretry/consumer"
)

const kretryYAML = `
brokers: ["127.0.0.1:9092"]   # KRETRY_BROKERS overrides
group: orders-service
topics:
  - name: orders
    tiers:
      - delay: 5s
      - delay: 1m
      - delay: 10m
        attempts: 2
`

type order struct {
	ID          string `json:"id"`
	AmountCents int    `json:"amount_cents"`
}

var errGatewayDown = errors.New("payment gateway unavailable")

// charge stands in for a call that fails now and then, such as a payment API.
func charge(_ context.Context, o order) error {
	if o.AmountCents%10 == 7 {
		return fmt.Errorf("charge order %s: %w", o.ID, errGatewayDown)
	}
	return nil
}

func main() {
	cfg, err := config.Parse([]byte(kretryYAML))
	if err != nil {
		log.Fatal(err)
	}
	handler := consumer.HandlerFunc(func(ctx context.Context, rec *kgo.Record) error {
		var o order
		if err := json.Unmarshal(rec.Value, &o); err != nil {
			// Retrying cannot fix a malformed record: straight to the DLQ.
			return consumer.Permanent(fmt.Errorf("decode order %q: %w", rec.Key, err))
		}
		// Any other error is retried along the ladder, then dead-lettered.
		return charge(ctx, o)
	})
	c, err := consumer.New(cfg, handler)
	if err != nil {
		log.Fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := c.Run(ctx); err != nil { // blocks until Ctrl-C; also runs the relay
		log.Fatal(err)
	}
}
