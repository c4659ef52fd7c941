package headers

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/internal/safetext"
)

// The record headers of the header contract, version 1 (docs/design.md §3). Every
// kretry header starts with HeaderPrefix; all other headers belong to the user
// and are kept, in order, on every hop.
const (
	HeaderPrefix = "kretry-"

	HeaderVersion           = "kretry-version"            // "1"
	HeaderGroup             = "kretry-group"              // the group whose handler failed
	HeaderAttempts          = "kretry-attempts"           // failed attempts so far, ≥ 1
	HeaderTier              = "kretry-tier"               // the tier the record is in or came from: "retry-5s"
	HeaderDueAt             = "kretry-due-at"             // earliest re-feed time
	HeaderOriginalTopic     = "kretry-original-topic"     // the first delivery's topic
	HeaderOriginalPartition = "kretry-original-partition" // ... partition
	HeaderOriginalOffset    = "kretry-original-offset"    // ... offset
	HeaderOriginalTimestamp = "kretry-original-timestamp" // ... record timestamp
	HeaderFirstFailureAt    = "kretry-first-failure-at"
	HeaderLastFailureAt     = "kretry-last-failure-at"
	HeaderErrorText         = "kretry-error"   // the last error's text, at most MaxErrorLen bytes
	HeaderReason            = "kretry-reason"  // DLQ records only
	HeaderReplays           = "kretry-replays" // replays from the DLQ so far
	// HeaderTraceParent is the W3C traceparent of the first handler
	// attempt's span, written only by a consumer with a tracer provider and
	// kept on every hop after, so that each retried attempt's span links to
	// it. Optional; a malformed value is dropped, never an error: tracing
	// never changes what happens to a record.
	HeaderTraceParent = "kretry-traceparent"
	// HeaderInPlaceRetries counts the retries in place (retry_in_place) over
	// all hops so far; they are not failures of the ladder.
	HeaderInPlaceRetries = "kretry-in-place-retries"
	// HeaderRoute is the DLQ route (dlq_routes) of a record on a route's topic.
	HeaderRoute = "kretry-route"
)

// Version is the version of the header contract this package writes and reads.
const Version = 1

// MaxAttempts is the most failed attempts the headers count: kretry-attempts
// and kretry-replays are int32 values that saturate here rather than wrap
// or grow past what Decode reads.
const MaxAttempts = 1<<31 - 1

// MaxErrorLen is the most bytes of error text Encode writes to kretry-error.
const MaxErrorLen = 1024

// TimeLayout is the form of every kretry time header: RFC 3339, UTC, with
// milliseconds.
const TimeLayout = "2006-01-02T15:04:05.000Z"

// Reason says why a record is in the DLQ (the kretry-reason header).
type Reason string

// The reasons a record goes to the DLQ.
const (
	ReasonExhausted       Reason = "exhausted"        // the ladder is used up
	ReasonPermanent       Reason = "permanent"        // the handler returned a permanent error
	ReasonPanic           Reason = "panic"            // the handler panicked
	ReasonExpired         Reason = "expired"          // the record is older than max_age
	ReasonInvalidMetadata Reason = "invalid-metadata" // its kretry headers cannot be read
	ReasonTooLarge        Reason = "too-large"        // too large to forward: the DLQ record has no value; kretry-original-* say where it is
)

// Valid reports whether r is one of the Reason constants.
func (r Reason) Valid() bool {
	switch r {
	case ReasonExhausted, ReasonPermanent, ReasonPanic, ReasonExpired, ReasonInvalidMetadata, ReasonTooLarge:
		return true
	}
	return false
}

// Metadata is what the kretry headers of a record say. A record re-fed or
// dead-lettered by kretry carries all of it (Group set); a record replayed
// from the DLQ carries only Replays.
type Metadata struct {
	Group             string    // the consumer group whose handler failed
	Attempts          int       // failed attempts so far: 1 after the first failure
	Tier              string    // the tier the record is in or came from: "retry-5s"
	DueAt             time.Time // earliest time the relay may re-feed it
	OriginalTopic     string    // where the record was first delivered
	OriginalPartition int32
	OriginalOffset    int64
	OriginalTimestamp time.Time
	FirstFailureAt    time.Time
	LastFailureAt     time.Time
	Error             string // the last error's text; Encode cuts it at MaxErrorLen bytes on a UTF-8 boundary
	Reason            Reason // DLQ records only; "" elsewhere
	Replays           int    // times replayed from the DLQ
	TraceParent       string // kretry-traceparent: the first attempt's span, W3C form; "" when none
	InPlaceRetries    int    // retries in place (retry_in_place) over all hops; not failures of the ladder
	Route             string // the DLQ route (dlq_routes) a dead letter went to; "" for the DLQ and elsewhere
}

// HeaderError is the error Decode returns for a kretry header that is
// missing, repeated or malformed.
type HeaderError struct {
	Header string // the header's name, e.g. HeaderAttempts
	Value  string // its value as found; "" when missing
	Err    error  // what is wrong: ErrHeaderMissing, ErrHeaderRepeated or a description
}

// ErrHeaderMissing is the Err of a HeaderError for a required header that a
// record with kretry-group does not carry.
var ErrHeaderMissing = errors.New("missing")

// ErrHeaderRepeated is the Err of a HeaderError for a kretry header a record
// carries more than once.
var ErrHeaderRepeated = errors.New("repeated")

var (
	errMissing  = fmt.Errorf("%w: a record with kretry-group must carry it", ErrHeaderMissing)
	errRepeated = fmt.Errorf("%w: a record carries each kretry header at most once", ErrHeaderRepeated)
)

func (e *HeaderError) Error() string {
	if errors.Is(e.Err, ErrHeaderMissing) || errors.Is(e.Err, ErrHeaderRepeated) {
		return fmt.Sprintf("kretry header %s: %v", e.Header, e.Err)
	}
	return fmt.Sprintf("kretry header %s: invalid value %s: %v", e.Header, safetext.Quoted(e.Value), e.Err)
}

func (e *HeaderError) Unwrap() error { return e.Err }

// FormatTime writes t as a kretry time header does: RFC 3339 in UTC with
// milliseconds (TimeLayout). Finer precision is truncated.
func FormatTime(t time.Time) string { return t.UTC().Format(TimeLayout) }

// UserHeaders returns the headers of hs that are not kretry headers, in
// order, in a new slice; nil when there are none.
func UserHeaders(hs []kgo.RecordHeader) []kgo.RecordHeader {
	var out []kgo.RecordHeader
	for _, h := range hs {
		if !strings.HasPrefix(h.Key, HeaderPrefix) {
			out = append(out, h)
		}
	}
	return out
}
