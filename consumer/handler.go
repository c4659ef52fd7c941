package consumer

import (
	"context"
	"errors"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Handler handles one record of a main topic.
//
// Records of one partition are handled in order, one at a time; records of
// different partitions are handled concurrently, so Handle must be safe for
// concurrent use. A nil error marks the record done. An error is classified
// (see Classifier): by default the record is forwarded to the next retry tier
// of its ladder, or to the DLQ when the error wraps ErrPermanent or the ladder
// is used up. A panic is recovered and the record goes to the DLQ with reason
// "panic"; the consumer keeps running.
//
// ctx is cancelled when the consumer stops owning the record's partition or
// shuts down, after the grace period (WithGracePeriod). An error returned after
// that cancellation is not a failure of the record: it is neither retried nor
// dead-lettered, its offset is not committed, and it is delivered again.
//
// The record must not be kept after Handle returns, and the bytes of its key,
// value and headers must not be changed: a failed record is forwarded as it
// arrived (fields of rec that Handle sets are restored).
type Handler interface {
	Handle(ctx context.Context, rec *kgo.Record) error
}

// HandlerFunc adapts a function to a Handler.
type HandlerFunc func(ctx context.Context, rec *kgo.Record) error

// Handle calls f(ctx, rec).
func (f HandlerFunc) Handle(ctx context.Context, rec *kgo.Record) error { return f(ctx, rec) }

// ErrPermanent marks an error that retrying cannot fix. The default classifier
// sends a record whose handler returned an error wrapping ErrPermanent straight
// to the DLQ with reason "permanent". Use Permanent to wrap an error with it.
var ErrPermanent = errors.New("permanent error")

// Permanent wraps err so that errors.Is(result, ErrPermanent) holds, while
// errors.Is and errors.As still find err. Its text is err's text. Permanent(nil)
// is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err: err}
}

type permanentError struct{ err error }

func (e *permanentError) Error() string   { return e.err.Error() }
func (e *permanentError) Unwrap() []error { return []error{ErrPermanent, e.err} }

// Decision is what happens to a record whose handler returned an error:
// Retry, DeadLetter, Discard, or DeadLetterRoute(name). The zero Decision
// is Retry.
type Decision string

const (
	// Retry forwards the record to the next tier of its ladder, or to the
	// DLQ with reason "exhausted" when the ladder is used up.
	Retry Decision = "retry"
	// DeadLetter forwards the record to the DLQ with reason "permanent".
	DeadLetter Decision = "dead-letter"
	// Discard drops the record: its offset is committed and nothing is
	// forwarded.
	Discard Decision = "discard"
)

// routePrefix starts a DeadLetterRoute decision.
const routePrefix = "dead-letter:"

// DeadLetterRoute forwards the record to the topic of the DLQ route name of
// its main topic (dlq_routes), with reason "permanent" and a kretry-route
// header. A name the topic has no route for sends the record to the DLQ
// (reason "permanent", the unknown name in kretry-error), logged.
func DeadLetterRoute(name string) Decision { return Decision(routePrefix + name) }

// Route returns the DLQ route name of a DeadLetterRoute decision.
func (d Decision) Route() (string, bool) {
	return strings.CutPrefix(string(d), routePrefix)
}

// String returns "retry", "dead-letter", "discard" or "dead-letter:<route>".
func (d Decision) String() string {
	if d == "" {
		return string(Retry)
	}
	return string(d)
}

// DeadLetterTo marks err for the DLQ route name of the record's main topic
// (dlq_routes: {invalid: orders.invalid}): DefaultClassifier returns
// DeadLetterRoute(name) for it, so the record goes straight to the route's
// topic with reason "permanent" and a kretry-route header, without a retry.
// It wraps ErrPermanent too, so errors.Is(result, ErrPermanent) holds; its
// text is err's. DeadLetterTo(name, nil) is nil.
func DeadLetterTo(name string, err error) error {
	if err == nil {
		return nil
	}
	return &routeError{route: name, err: err}
}

type routeError struct {
	route string
	err   error
}

func (e *routeError) Error() string   { return e.err.Error() }
func (e *routeError) Unwrap() []error { return []error{ErrPermanent, e.err} }

// RouteOf returns the DLQ route name that err was marked with by
// DeadLetterTo, if any: for a classifier of its own.
func RouteOf(err error) (string, bool) {
	if re, ok := errors.AsType[*routeError](err); ok {
		return re.route, true
	}
	return "", false
}

// Classifier decides what happens to a record whose handler returned the
// non-nil err. It is called concurrently from the partitions' goroutines. A
// classifier given with WithClassifier replaces DefaultClassifier entirely; to
// keep ErrPermanent and DeadLetterTo working, end with a call to
// DefaultClassifier. A value other than Retry, DeadLetter, Discard or a
// DeadLetterRoute is treated as Retry and logged; the zero Decision is Retry.
type Classifier func(err error) Decision

// DefaultClassifier returns DeadLetterRoute(name) for an error marked with
// DeadLetterTo(name, ...), DeadLetter for another error wrapping
// ErrPermanent and Retry for every other error.
func DefaultClassifier(err error) Decision {
	if route, ok := RouteOf(err); ok {
		return DeadLetterRoute(route)
	}
	if errors.Is(err, ErrPermanent) {
		return DeadLetter
	}
	return Retry
}
