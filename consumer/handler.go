package consumer

import (
	"context"
	"errors"
	"fmt"

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

// Decision is what happens to a record whose handler returned an error.
type Decision int

const (
	// Retry forwards the record to the next tier of its ladder, or to the
	// DLQ with reason "exhausted" when the ladder is used up.
	Retry Decision = iota
	// DeadLetter forwards the record to the DLQ with reason "permanent".
	DeadLetter
	// Discard drops the record: its offset is committed and nothing is
	// forwarded.
	Discard
)

// String returns "retry", "dead-letter" or "discard".
func (d Decision) String() string {
	switch d {
	case Retry:
		return "retry"
	case DeadLetter:
		return "dead-letter"
	case Discard:
		return "discard"
	}
	return fmt.Sprintf("Decision(%d)", int(d))
}

// Classifier decides what happens to a record whose handler returned the
// non-nil err. It is called concurrently from the partitions' goroutines. A
// classifier given with WithClassifier replaces DefaultClassifier entirely; to
// keep ErrPermanent working, end with a call to DefaultClassifier. A value
// other than Retry, DeadLetter or Discard is treated as Retry and logged.
type Classifier func(err error) Decision

// DefaultClassifier returns DeadLetter for an error wrapping ErrPermanent and
// Retry for every other error.
func DefaultClassifier(err error) Decision {
	if errors.Is(err, ErrPermanent) {
		return DeadLetter
	}
	return Retry
}
