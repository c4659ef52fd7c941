package relay_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/kretry/kretry/relay"
)

// A Relay runs once, as a Consumer does: a second Run, while the first runs
// or after it returned, is ErrRunTwice and does nothing.
func TestRunOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newVirtualEnv(t, 1, 1)
		rec, _ := e.tierRecord(0, 0, "due", time.Now())
		e.produce(rec)
		rr := e.start()
		waitFor(t, "the first Run to re-feed", func() bool { return len(e.read(relayTopic)) == 1 })

		if err := rr.relay.Run(context.Background()); !errors.Is(err, relay.ErrRunTwice) {
			t.Fatalf("Run while Run runs = %v, want ErrRunTwice", err)
		}
		if err := rr.stop(); err != nil {
			t.Fatalf("first Run: %v", err)
		}

		late, _ := e.tierRecord(0, 0, "due after the first Run", time.Now())
		e.produce(late)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := rr.relay.Run(ctx); !errors.Is(err, relay.ErrRunTwice) {
			t.Fatalf("Run after Run returned = %v, want ErrRunTwice", err)
		}
		if got := len(e.read(relayTopic)); got != 1 {
			t.Errorf("the main topic holds %d records after the second Run, want the first Run's 1", got)
		}
	})
}
