// Command policies runs a kretry consumer whose failure policies all come
// from kretry.yaml (retry_in_place, a generated backoff with jitter,
// dlq_routes, circuit_breaker), with a handler that uses the APIs that go
// with them: consumer.RetryAfter for a 429 with Retry-After,
// consumer.DeadLetterTo for a payload no retry can fix, consumer.Attempt and
// consumer.RecordMetadata to log a retry, and consumer.WithDeadLetterHook to
// alert on every dead letter.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/config"
	"github.com/kretry/kretry/consumer"
	"github.com/kretry/kretry/headers"
)

// order is the payload of a record of the orders topic.
type order struct {
	ID  string `json:"id"`
	SKU string `json:"sku"`
	Qty int    `json:"qty"`
}

// inventory reserves stock for an order: an HTTP service in production
// (httpInventory), a fake in the test.
type inventory interface {
	Reserve(ctx context.Context, o order) error
}

// statusError is a failed call of the inventory service.
type statusError struct {
	Code       int
	RetryAfter time.Duration // from the Retry-After header; 0 when none
}

func (e *statusError) Error() string {
	return fmt.Sprintf("inventory: HTTP %d %s", e.Code, http.StatusText(e.Code))
}

// httpInventory calls POST {base}/reservations.
type httpInventory struct {
	base   string
	client *http.Client
}

func (h httpInventory) Reserve(ctx context.Context, o order) error {
	body, err := json.Marshal(o)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.base+"/reservations", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := h.client.Do(req)
	if err != nil {
		return err // a network error: retried in place, then through the tiers
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 == 2 {
		return nil
	}
	se := &statusError{Code: resp.StatusCode}
	// Retry-After in seconds (the HTTP-date form is left out here).
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
		se.RetryAfter = time.Duration(s) * time.Second
	}
	return se
}

// service handles the orders topic.
type service struct {
	inv inventory
	log *slog.Logger
}

// handle reserves stock for one order.
func (s *service) handle(ctx context.Context, rec *kgo.Record) error {
	if n := consumer.Attempt(rec); n > 1 {
		// A retry, in place or from a tier: say which and since when.
		md := consumer.RecordMetadata(rec)
		s.log.Info("retrying order", "key", string(rec.Key), "attempt", n, "tier", md.Tier,
			"first_failure", md.FirstFailureAt, "last_error", md.LastError, "replays", md.Replays)
	}
	var o order
	if err := json.Unmarshal(rec.Value, &o); err != nil {
		return consumer.DeadLetterTo("invalid", fmt.Errorf("order %q: not JSON: %w", rec.Key, err))
	}
	if o.ID == "" || o.SKU == "" || o.Qty <= 0 {
		return consumer.DeadLetterTo("invalid", fmt.Errorf("order %q: needs an id, a sku and a qty > 0", rec.Key))
	}
	err := s.inv.Reserve(ctx, o)
	var se *statusError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &se) && se.Code == http.StatusTooManyRequests && se.RetryAfter > 0:
		// Rate-limited: no retry before the time the service gave. The record
		// skips the in-place retries and goes to the first tier at least
		// that long (a Retry-After of 10s: the 16s tier), due after 10s.
		return consumer.RetryAfter(err, se.RetryAfter)
	case errors.As(err, &se) && se.Code == http.StatusUnprocessableEntity:
		// The service refuses the order itself: retrying cannot fix it.
		return consumer.DeadLetterTo("invalid", fmt.Errorf("order %s: %w", o.ID, err))
	default:
		return err // retried in place, then down the ladder, then the DLQ
	}
}

// alert is the dead-letter hook: it runs once the dead letter is written
// (in the DLQ or a route's topic), on a goroutine of its own. Here a log
// line; a pager or an incident ticket in production. Its errors and panics
// are logged by the consumer and never change the record's fate.
func (s *service) alert(_ context.Context, rec *kgo.Record, reason headers.Reason, err error) error {
	s.log.Error("ALERT order dead-lettered", "key", string(rec.Key), "topic", rec.Topic,
		"partition", rec.Partition, "offset", rec.Offset, "reason", reason, "error", err)
	return nil
}

// options are the consumer options of the service, shared with the test.
func (s *service) options() []consumer.Opt {
	return []consumer.Opt{consumer.WithLogger(s.log), consumer.WithDeadLetterHook(s.alert)}
}

func main() {
	path := flag.String("c", "kretry.yaml", "the kretry config file")
	invURL := flag.String("inventory", "http://127.0.0.1:8080", "the inventory service's base URL")
	flag.Parse()
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))

	// Load validates every policy with the file's line: an in-place budget
	// over 30s, a jitter ≥ 1, a route named "dlq", a breaker ratio of 2 ...
	cfg, err := config.Load(*path)
	if err != nil {
		logger.Error("load config", "error", err)
		os.Exit(1)
	}
	svc := &service{inv: httpInventory{base: *invURL, client: &http.Client{Timeout: 5 * time.Second}}, log: logger}
	c, err := consumer.New(cfg, consumer.HandlerFunc(svc.handle), svc.options()...)
	if err != nil {
		logger.Error("start consumer", "error", err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := c.Run(ctx); err != nil {
		logger.Error("consumer stopped", "error", err)
		os.Exit(1)
	}
}
