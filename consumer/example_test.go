package consumer_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"os"
	"os/signal"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/config"
	"github.com/kretry/kretry/consumer"
)

var errMalformed = errors.New("malformed order")

func handleOrder(context.Context, []byte) error { return nil }

// A consumer with the ladder of kretry.yaml: a failed order is retried through
// the tiers, a malformed one goes straight to the DLQ.
func Example() {
	cfg, err := config.Load("kretry.yaml")
	if err != nil {
		log.Fatal(err)
	}
	reg := prometheus.NewRegistry() // serve it with promhttp.HandlerFor
	c, err := consumer.New(cfg, consumer.HandlerFunc(func(ctx context.Context, rec *kgo.Record) error {
		err := handleOrder(ctx, rec.Value)
		if errors.Is(err, errMalformed) {
			return consumer.Permanent(err) // no retry: straight to the DLQ
		}
		return err // nil: done; anything else: the next retry tier
	}), consumer.WithLogger(slog.Default()), consumer.WithRegisterer(reg))
	if err != nil {
		log.Fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := c.Run(ctx); err != nil { // blocks until Ctrl-C, then drains and commits
		log.Fatal(err)
	}
}

func ExamplePermanent() {
	err := consumer.Permanent(fmt.Errorf("order 42: %w", errMalformed))
	fmt.Println(err)
	fmt.Println(errors.Is(err, consumer.ErrPermanent), errors.Is(err, errMalformed))
	fmt.Println(consumer.DefaultClassifier(err), consumer.DefaultClassifier(errMalformed))
	// Output:
	// order 42: malformed order
	// true true
	// dead-letter retry
}

// A classifier that drops records whose customer no longer exists and leaves
// every other error to the default.
func ExampleWithClassifier() {
	errGone := errors.New("customer deleted")
	classify := func(err error) consumer.Decision {
		if errors.Is(err, errGone) {
			return consumer.Discard
		}
		return consumer.DefaultClassifier(err)
	}
	_ = consumer.WithClassifier(classify)
	fmt.Println(classify(fmt.Errorf("order 7: %w", errGone)), classify(consumer.Permanent(errMalformed)), classify(errMalformed))
	// Output: discard dead-letter retry
}
