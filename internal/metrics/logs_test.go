package metrics_test

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"

	"github.com/kretry/kretry/consumer"
)

// capture is a slog.Handler that keeps every record with its attributes
// flattened, those of Logger.With included.
type capture struct {
	level slog.Level
	attrs []slog.Attr
	store *store
}

type store struct {
	mu   sync.Mutex
	recs []logged
}

type logged struct {
	level slog.Level
	msg   string
	attrs map[string]string
}

func newCapture(level slog.Level) *capture { return &capture{level: level, store: &store{}} }

func (c *capture) Enabled(_ context.Context, l slog.Level) bool { return l >= c.level }

func (c *capture) Handle(_ context.Context, r slog.Record) error {
	l := logged{level: r.Level, msg: r.Message, attrs: make(map[string]string)}
	for _, a := range c.attrs {
		l.attrs[a.Key] = a.Value.String()
	}
	r.Attrs(func(a slog.Attr) bool {
		l.attrs[a.Key] = a.Value.String()
		return true
	})
	c.store.mu.Lock()
	c.store.recs = append(c.store.recs, l)
	c.store.mu.Unlock()
	return nil
}

func (c *capture) WithAttrs(as []slog.Attr) slog.Handler {
	return &capture{level: c.level, attrs: append(slices.Clone(c.attrs), as...), store: c.store}
}

func (c *capture) WithGroup(string) slog.Handler { return c }

func (c *capture) records() []logged {
	c.store.mu.Lock()
	defer c.store.mu.Unlock()
	return slices.Clone(c.store.recs)
}

// TestLogsOneLinePerForwardAndDeadLetter: at the default level (info) the
// consumer logs one line per forward to a tier and per dead letter, each with
// topic, partition, offset, tier, attempt and error; nothing per successful
// record; a panic is logged at error.
func TestLogsOneLinePerForwardAndDeadLetter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCluster(t, "orders")
		logs := newCapture(slog.LevelInfo)
		h := newScripted()
		stop := c.start(t, c.config("orders", "g"), h, consumer.WithLogger(slog.New(logs)), consumer.WithRelay(false))
		c.produce(t, "orders", "ok-1", "ok-2", "ok-3", "heal-1", "perm-1", "panic-1")
		waitFor(t, "6 records finished", func() bool {
			return h.succeeded("ok-1") && h.succeeded("ok-2") && h.succeeded("ok-3") && len(lines(logs)) >= 3
		})
		stop()

		var got []string
		for _, l := range lines(logs) {
			for _, k := range []string{"topic", "partition", "offset", "tier", "attempt", "error"} {
				if _, ok := l.attrs[k]; !ok {
					t.Errorf("log line %q has no %q: %v", l.msg, k, l.attrs)
				}
			}
			if l.attrs["topic"] != "orders" || l.attrs["attempt"] != "1" {
				t.Errorf("log line %q: topic %q attempt %q, want orders and 1", l.msg, l.attrs["topic"], l.attrs["attempt"])
			}
			got = append(got, fmt.Sprintf("tier=%s reason=%s", l.attrs["tier"], l.attrs["reason"]))
		}
		slices.Sort(got)
		// heal-1 is forwarded to retry-5s; perm-1 and panic-1 go to the DLQ
		// at their first try (tier "dlq"); the three ok records log nothing.
		want := []string{"tier=dlq reason=panic", "tier=dlq reason=permanent", "tier=retry-5s reason="}
		if !slices.Equal(got, want) {
			t.Errorf("forward and dead-letter lines:\n%v\nwant\n%v", got, want)
		}

		var panics int
		for _, l := range logs.records() {
			if l.level >= slog.LevelError && l.attrs["panic"] != "" {
				panics++
			}
		}
		if panics != 1 {
			t.Errorf("%d error lines about the panic, want 1: %v", panics, logs.records())
		}
	})
}

// lines are the info and warn lines of the consumer itself: not franz-go's
// (component=kgo) nor the relay's (component=relay), and not errors.
func lines(c *capture) []logged {
	var out []logged
	for _, l := range c.records() {
		if l.level < slog.LevelError && l.attrs["component"] == "" {
			out = append(out, l)
		}
	}
	return out
}

// TestLogsAlongTheLadder: a record that never heals logs a line per hop with
// the tier it goes to and its attempt, and its dead letter names the tier it
// came from.
func TestLogsAlongTheLadder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCluster(t, "orders")
		logs := newCapture(slog.LevelInfo)
		h := newScripted()
		stop := c.start(t, c.config("orders", "g"), h, consumer.WithLogger(slog.New(logs)))
		c.produce(t, "orders", "ok-1", "always-1")
		waitFor(t, "always-1 dead-lettered", func() bool {
			for _, l := range lines(logs) {
				if l.attrs["reason"] == "exhausted" {
					return true
				}
			}
			return false
		})
		stop()

		var got []string
		for _, l := range lines(logs) {
			got = append(got, fmt.Sprintf("tier=%s attempt=%s reason=%s error=%s", l.attrs["tier"], l.attrs["attempt"], l.attrs["reason"], l.attrs["error"]))
		}
		want := []string{
			"tier=retry-5s attempt=1 reason= error=flaky dependency",
			"tier=retry-1m attempt=2 reason= error=flaky dependency",
			"tier=retry-1m attempt=3 reason=exhausted error=flaky dependency",
		}
		if !slices.Equal(got, want) {
			t.Errorf("consumer lines:\n%v\nwant\n%v", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	})
}
