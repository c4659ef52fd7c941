package consumer

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kretry/kretry/config"
	"github.com/kretry/kretry/internal/metrics"
)

// capture is a slog.Handler that keeps every record.
type capture struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (c *capture) Enabled(context.Context, slog.Level) bool { return true }
func (c *capture) Handle(_ context.Context, r slog.Record) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.recs = append(c.recs, r.Clone())
	return nil
}
func (c *capture) WithAttrs([]slog.Attr) slog.Handler { return c }
func (c *capture) WithGroup(string) slog.Handler      { return c }

// lines returns "LEVEL message failed=<n>" of each record, and takes them.
func (c *capture) lines() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, r := range c.recs {
		line := r.Level.String() + " " + r.Message
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "failed" {
				line += " failed=" + a.Value.String()
			}
			return true
		})
		out = append(out, line)
	}
	c.recs = nil
	return out
}

// While transactions keep failing (a broker outage: one failed end a
// second), the first failure is an ERROR line, then one ERROR line each
// txnFailedLogStep with the count since the last, and an INFO line when a
// transaction commits again; the counter counts every failure. Before, each
// failure was an ERROR line.
func TestFailedTransactionsAreLoggedOncePerStep(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reg := prometheus.NewRegistry()
		m, err := metrics.New(reg)
		if err != nil {
			t.Fatal(err)
		}
		var logs capture
		s := &session{c: &Consumer{cfg: &config.Config{Group: "g"}, metrics: m}, log: slog.New(&logs)}
		failed := errors.New("unable to initialize a producer ID due to request failures")

		s.txnNotCommitted(failed)
		first := logs.lines()
		if len(first) != 1 || !strings.HasPrefix(first[0], "ERROR kretry consumer transaction failed") {
			t.Fatalf("after the first failure the log is %q, want one ERROR line of it", first)
		}
		for range 69 { // 69 more, one a second
			time.Sleep(time.Second)
			s.txnNotCommitted(failed)
		}
		want := []string{
			"ERROR kretry consumer transactions still fail; it hands out no records until its coordinators answer failed=30",
			"ERROR kretry consumer transactions still fail; it hands out no records until its coordinators answer failed=30",
		}
		if got := logs.lines(); strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("over the next 69s the log is\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		s.txnNotCommitted(nil) // an abort: no end failed, nothing logged
		time.Sleep(time.Second)
		s.carried = true
		s.txnCommittedAgain()
		if got := logs.lines(); len(got) != 1 || got[0] != "INFO kretry consumer transactions commit again failed=70" {
			t.Errorf("after a commit the log is %q, want one INFO line that transactions commit again after 70 failures", got)
		}
		if n := testutil.ToFloat64(m.TransactionsFailed.WithLabelValues("consumer", "g")); n != 70 {
			t.Errorf("kretry_transactions_failed_total = %v, want 70", n)
		}
		// A new row starts with an ERROR line again.
		s.txnNotCommitted(failed)
		if got := logs.lines(); len(got) != 1 || !strings.HasPrefix(got[0], "ERROR kretry consumer transaction failed") {
			t.Errorf("the first failure after a commit logs %q, want one ERROR line", got)
		}
	})
}

func TestHoldPause(t *testing.T) {
	for _, tc := range []struct {
		failures int
		want     time.Duration
	}{
		{0, 0}, {1, 0}, {2, 500 * time.Millisecond}, {3, time.Second}, {4, 2 * time.Second},
		{5, 4 * time.Second}, {6, 5 * time.Second}, {100, 5 * time.Second},
	} {
		if got := holdPause(tc.failures); got != tc.want {
			t.Errorf("holdPause(%d) = %v, want %v", tc.failures, got, tc.want)
		}
	}
}

func TestTxnLimit(t *testing.T) {
	for _, tc := range []struct {
		rate     float64
		interval time.Duration
		want     int64
	}{
		{0, time.Second, txnFirstLimit},
		{10, time.Second, txnMinLimit},
		{1000, time.Second, 500},
		{1000, 5 * time.Second, 2500},
	} {
		ts := txnState{rate: tc.rate}
		if got := ts.txnLimit(tc.interval); got != tc.want {
			t.Errorf("txnLimit(%v) at %v records/s = %d, want %d", tc.interval, tc.rate, got, tc.want)
		}
	}
}

// A transaction that follows none with a rate raises its limit to half a
// commit interval at the rate its workers have had so far in it, never
// below txnFirstLimit; one that follows a measured rate keeps txnLimit's.
func TestLearnLimit(t *testing.T) {
	begun := time.Unix(1000, 0)
	for _, tc := range []struct {
		name           string
		rate           float64
		elapsed        time.Duration
		handed, undone int64
		want           int64
	}{
		{"fast workers", 0, 100 * time.Millisecond, 12000, 2000, 50000},
		{"slow workers", 0, 100 * time.Millisecond, 1000, 990, txnFirstLimit},
		{"too soon to tell", 0, txnLearnAfter / 2, 12000, 0, 7},
		{"a measured rate", 5000, 100 * time.Millisecond, 12000, 2000, 7},
	} {
		ts := txnState{rate: tc.rate, begun: begun, handed: tc.handed}
		ts.undone.Store(tc.undone)
		ts.limit.Store(7)
		ts.learnLimit(time.Second, begun.Add(tc.elapsed))
		if got := ts.limit.Load(); got != tc.want {
			t.Errorf("%s: limit %d, want %d", tc.name, got, tc.want)
		}
	}
}

// The hold probes the coordinators once after each transaction that did not
// commit: a hold that let a transaction through since the last failure
// returns at once, without a probe (this session has no client: a probe
// would panic), even when the row goes on with transactions that carried
// nothing (an idle consumer); a new failure makes it probe again.
func TestHoldProbesOncePerFailure(t *testing.T) {
	m, err := metrics.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	s := &session{c: &Consumer{cfg: &config.Config{Group: "g"}, metrics: m}, log: slog.New(slog.DiscardHandler)}
	s.txnNotCommitted(nil)
	s.hold.probed = true // as holdTxn sets it once its probe passed
	if !s.holdTxn(context.Background()) {
		t.Fatal("holdTxn after its probe passed: false, want true")
	}
	s.txnNotCommitted(nil)
	if s.hold.probed {
		t.Error("a new failure left the hold probed: the next transaction would not wait for the coordinators")
	}
}
