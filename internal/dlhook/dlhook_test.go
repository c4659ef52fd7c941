package dlhook_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/headers"
	"github.com/kretry/kretry/internal/dlhook"
	"github.com/kretry/kretry/internal/metrics"
)

const label = "orders"

// recorder is a hook that records its calls and does what each record's
// key says: "fail", "panic", "sleep" (1s), "stuck" (until released,
// ignoring its ctx), "ctx" (until its ctx ends).
type recorder struct {
	mu      sync.Mutex
	calls   []string // key/reason/error
	release chan struct{}
}

func (r *recorder) hook(ctx context.Context, rec *kgo.Record, reason headers.Reason, err error) error {
	r.mu.Lock()
	r.calls = append(r.calls, fmt.Sprintf("%s/%s/%v", rec.Key, reason, err))
	if len(rec.Headers) != 1 || rec.Headers[0].Key != "h" {
		r.calls = append(r.calls, fmt.Sprintf("headers %v", rec.Headers))
	}
	r.mu.Unlock()
	switch string(rec.Key) {
	case "fail":
		return errors.New("pager down")
	case "panic":
		panic("hook bug")
	case "sleep":
		time.Sleep(time.Second)
	case "stuck":
		<-r.release
	case "ctx":
		<-ctx.Done()
		return ctx.Err()
	}
	return nil
}

func (r *recorder) made() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.calls...)
}

type env struct {
	r     *dlhook.Runner
	rec   *recorder
	calls *prometheus.CounterVec
	logs  *bytes.Buffer
}

func start(t *testing.T, queue int, grace time.Duration) *env {
	t.Helper()
	m, err := metrics.New(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	rec := &recorder{release: make(chan struct{})}
	r := dlhook.Start(t.Context(), dlhook.Config{Hook: rec.hook, Log: slog.New(slog.NewTextHandler(&logs, nil)),
		Calls: m.DeadLetterHook, Queue: queue, Grace: grace, Name: "test hook", Stopped: "the test stopped"})
	return &env{r: r, rec: rec, calls: m.DeadLetterHook, logs: &logs}
}

func (e *env) deadLettered(key string, txn bool) {
	rec := &kgo.Record{Topic: "orders.retry-5s", Key: []byte(key), Headers: []kgo.RecordHeader{{Key: "h", Value: []byte("v")}}}
	e.r.DeadLettered(label, rec, &headers.Metadata{Reason: headers.ReasonPermanent, Error: "bad " + key}, txn)
	rec.Headers[0].Key = "X" // the caller may reuse its record's headers (headers.Encode appends to them)
}

func (e *env) count(t *testing.T, result string) float64 {
	t.Helper()
	return testutil.ToFloat64(e.calls.WithLabelValues(label, result))
}

func (e *env) want(t *testing.T, counts map[string]float64) {
	t.Helper()
	for _, result := range []string{metrics.HookOK, metrics.HookError, metrics.HookPanic, metrics.HookDropped} {
		if got := e.count(t, result); got != counts[result] {
			t.Errorf("calls{result=%s} = %v, want %v", result, got, counts[result])
		}
	}
}

func equal(t *testing.T, what string, got, want []string) {
	t.Helper()
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("%s: %q, want %q", what, got, want)
	}
}

// Calls are made one at a time in order with a copy of the record; an
// error and a panic are counted and logged.
func TestRunnerCalls(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := start(t, 0, time.Minute)
		for _, key := range []string{"ok", "fail", "panic", "sleep", "ok"} {
			e.deadLettered(key, false)
		}
		e.r.Close()
		equal(t, "calls", e.rec.made(), []string{"ok/permanent/bad ok", "fail/permanent/bad fail", "panic/permanent/bad panic",
			"sleep/permanent/bad sleep", "ok/permanent/bad ok"})
		e.want(t, map[string]float64{metrics.HookOK: 3, metrics.HookError: 1, metrics.HookPanic: 1})
		for _, line := range []string{"test hook failed", "pager down", "test hook panicked", "hook bug"} {
			if !strings.Contains(e.logs.String(), line) {
				t.Errorf("the log has no %q", line)
			}
		}
	})
}

// A call that finds the queue full is dropped, counted and logged; the
// running call and the queued ones are made.
func TestRunnerQueueFull(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := start(t, 2, time.Minute)
		e.deadLettered("stuck", false)
		synctest.Wait() // the stuck call runs: the queue is empty
		for range 4 {
			e.deadLettered("ok", false)
		}
		e.want(t, map[string]float64{metrics.HookDropped: 2})
		if !strings.Contains(e.logs.String(), "test hook not called: the hook's queue is full") {
			t.Error("the log has no line for the dropped calls")
		}
		close(e.rec.release)
		e.r.Close()
		e.want(t, map[string]float64{metrics.HookOK: 3, metrics.HookDropped: 2})
	})
}

// In a transaction the calls are held until it ends: made when it
// committed, forgotten (not counted) when it aborted, and at Close.
func TestRunnerTxn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := start(t, 0, time.Second)
		e.deadLettered("a", true)
		e.deadLettered("b", true)
		synctest.Wait()
		equal(t, "calls before the commit", e.rec.made(), nil)
		e.r.TxnEnded(true)
		synctest.Wait()
		equal(t, "calls after the commit", e.rec.made(), []string{"a/permanent/bad a", "b/permanent/bad b"})
		e.deadLettered("aborted", true)
		e.r.TxnEnded(false)
		e.deadLettered("open", true)
		e.r.Close()
		e.r.TxnEnded(true) // after Close: nothing held
		equal(t, "calls", e.rec.made(), []string{"a/permanent/bad a", "b/permanent/bad b"})
		e.want(t, map[string]float64{metrics.HookOK: 2})
	})
}

// Close waits up to the grace period for the queued calls, then cancels
// the hook's ctx: the running call ends and the rest are dropped, counted
// and logged.
func TestRunnerCloseCancels(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := start(t, 0, 5*time.Second)
		for _, key := range []string{"sleep", "sleep", "ctx", "ok", "ok"} {
			e.deadLettered(key, false)
		}
		began := time.Now()
		e.r.Close()
		if took := time.Since(began); took != 5*time.Second {
			t.Errorf("Close took %v, want the grace period, 5s", took)
		}
		e.want(t, map[string]float64{metrics.HookOK: 2, metrics.HookError: 1, metrics.HookDropped: 2})
		if !strings.Contains(e.logs.String(), "test hook not called: the test stopped") {
			t.Error("the log has no line for the calls dropped at Close")
		}
		e.deadLettered("late", false)
		e.want(t, map[string]float64{metrics.HookOK: 2, metrics.HookError: 1, metrics.HookDropped: 3})
	})
}

// A hook that ignores its ctx: Close returns after twice the grace period
// without it, and drops the calls behind it.
func TestRunnerCloseStuck(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := start(t, 0, 5*time.Second)
		for _, key := range []string{"stuck", "ok", "ok"} {
			e.deadLettered(key, false)
		}
		began := time.Now()
		e.r.Close()
		if took := time.Since(began); took != 10*time.Second {
			t.Errorf("Close took %v, want twice the grace period, 10s", took)
		}
		e.want(t, map[string]float64{metrics.HookDropped: 2})
		if !strings.Contains(e.logs.String(), "test hook did not return within the grace period (5s) after its ctx was cancelled") {
			t.Errorf("no log line for the hook that outlived Close: %s", e.logs)
		}
		close(e.rec.release)
		synctest.Wait()
		e.want(t, map[string]float64{metrics.HookOK: 1, metrics.HookDropped: 2})
	})
}

// Without a hook there is no Runner, and a nil Runner does nothing.
func TestRunnerNone(t *testing.T) {
	r := dlhook.Start(t.Context(), dlhook.Config{})
	if r != nil {
		t.Fatal("Start without a hook returned a Runner")
	}
	r.DeadLettered(label, &kgo.Record{}, &headers.Metadata{}, false)
	r.TxnEnded(true)
	r.Close()
}
