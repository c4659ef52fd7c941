package consumer_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/consumer"
)

// A Consumer runs once, as a Relay does: a second Run, while the first runs
// or after it returned, is ErrRunTwice and handles nothing.
func TestRunOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCluster(t, 1, 1)
		var handled atomic.Int64
		h := consumer.HandlerFunc(func(context.Context, *kgo.Record) error { handled.Add(1); return nil })
		cons, err := consumer.New(c.cfg, h, consumer.WithRelay(false), consumer.WithClientOpts(c.kopts...))
		if err != nil {
			t.Fatal(err)
		}
		c.produce(&kgo.Record{Key: []byte("first")})
		ctx, cancel := context.WithCancel(context.Background())
		errc := make(chan error, 1)
		go func() { errc <- cons.Run(ctx) }()
		waitFor(t, "the first Run to handle the record", func() bool { return handled.Load() == 1 })

		if err := cons.Run(context.Background()); !errors.Is(err, consumer.ErrRunTwice) {
			t.Fatalf("Run while Run runs = %v, want ErrRunTwice", err)
		}
		cancel()
		if err := <-errc; err != nil {
			t.Fatalf("first Run: %v", err)
		}

		c.produce(&kgo.Record{Key: []byte("after the first Run")})
		ctx, cancel = context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := cons.Run(ctx); !errors.Is(err, consumer.ErrRunTwice) {
			t.Fatalf("Run after Run returned = %v, want ErrRunTwice", err)
		}
		if n := handled.Load(); n != 1 {
			t.Errorf("%d records handled, want the first Run's 1", n)
		}
	})
}
