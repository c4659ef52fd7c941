package consumer

import (
	"errors"
	"time"
)

// RetryAfter wraps err with the time after which a retry makes sense: a 429
// with Retry-After, a rate-limit window. When the classifier decides Retry,
// the record goes to the first tier of its ladder whose delay is at least d
// (the last tier when none is), due at the failure + d, and it counts as an
// attempt of that tier: a record further down the ladder than that tier
// stays where its attempts put it (a Retry-After never moves a record back
// up the ladder, so it still reaches the DLQ), and a record whose ladder is
// used up goes to the DLQ as "exhausted". A d longer than the last tier's
// delay is kept: the relay re-parks the record in that tier every tier delay
// until it is due, so no tier partition waits longer than its delay for it.
// A d longer than the topic's retry_after_max (default 24h, see
// ladder.WithRetryAfterMax) is cut to it, logged at warn. A d ≤ 0 is 0.
// In-place retries (retry_in_place)
// are skipped when d is longer than the next in-place wait, and otherwise
// wait their own backoff, which is then at least d.
//
// errors.Is and errors.As see through it to err, and its text is err's.
// RetryAfter(nil, d) is nil.
func RetryAfter(err error, d time.Duration) error {
	if err == nil {
		return nil
	}
	return &retryAfterError{err: err, after: max(d, 0)}
}

type retryAfterError struct {
	err   error
	after time.Duration
}

func (e *retryAfterError) Error() string { return e.err.Error() }
func (e *retryAfterError) Unwrap() error { return e.err }

// retryAfter returns the d of the outermost RetryAfter in err's chain.
func retryAfter(err error) (time.Duration, bool) {
	if ra, ok := errors.AsType[*retryAfterError](err); ok {
		return ra.after, true
	}
	return 0, false
}
