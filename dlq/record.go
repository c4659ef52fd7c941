package dlq

import (
	"math"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/headers"
)

// Record is one DLQ record and what its kretry headers say.
type Record struct {
	*kgo.Record // as read from the DLQ: Topic, Partition, Offset, Timestamp, Key, Value, Headers

	// Meta is the decoded kretry metadata: all of it when HasMeta, the
	// headers that could be read when MetaErr is set, zero otherwise.
	Meta    headers.Metadata
	HasMeta bool // the record carries kretry-group and every kretry header reads

	// Reason is kretry-reason, ReasonUnknown for a record without kretry
	// headers (or with no kretry-reason), headers.ReasonInvalidMetadata
	// for one whose kretry-reason is missing or unreadable while other
	// kretry headers cannot be read either. A record whose kretry-reason
	// reads keeps it even when another kretry header is missing or
	// malformed. A Spring dead letter's is mapped from its exception class:
	// permanent for Spring's not-retryable exceptions, exhausted for others.
	Reason headers.Reason

	// MetaErr says which kretry header is missing or malformed; nil when
	// they all read. For a Spring dead letter: which of Spring's headers.
	MetaErr error

	// Spring is what Spring Kafka's DeadLetterPublishingRecoverer wrote on
	// the record, nil when it did not write it; Meta and Reason then hold
	// what its headers say (see SpringDeadLetter).
	Spring *SpringDeadLetter

	known Field // which of Meta's fields were read
}

// Field is a piece of a DLQ record's metadata (Record.Fields).
type Field uint16

// The fields of Metadata a DLQ record's headers may give.
const (
	FieldGroup             Field = 1 << iota // Meta.Group
	FieldAttempts                            // Meta.Attempts
	FieldTier                                // Meta.Tier
	FieldOriginal                            // Meta.OriginalTopic, OriginalPartition and OriginalOffset
	FieldOriginalTimestamp                   // Meta.OriginalTimestamp
	FieldFirstFailure                        // Meta.FirstFailureAt
	FieldLastFailure                         // Meta.LastFailureAt
	FieldError                               // Meta.Error
	FieldReason                              // Meta.Reason

	fieldsAll = FieldGroup | FieldAttempts | FieldTier | FieldOriginal | FieldOriginalTimestamp | FieldFirstFailure | FieldLastFailure
)

// Fields says which fields of Meta r's headers gave: a record read leniently
// (MetaErr set) has some of them.
func (r *Record) Fields() Field { return r.known }

// NewRecord decodes the kretry headers of a DLQ record. It never fails: a
// record whose headers cannot all be read is listed with what can be read
// (its reason, attempts, tier, error, original…) and MetaErr set, or with
// reason invalid-metadata when its reason cannot be read.
func NewRecord(kr *kgo.Record) *Record {
	r := &Record{Record: kr}
	md, ok, err := headers.Decode(kr.Headers)
	switch {
	case err != nil:
		r.Meta, r.known = lenientDecode(kr.Headers)
		r.Reason, r.MetaErr = headers.ReasonInvalidMetadata, err
		if r.known&FieldReason != 0 {
			r.Reason = r.Meta.Reason
		}
	case !ok || md.Group == "":
		// No kretry headers, or only a replay count: written by something
		// other than kretry's consumer, maybe by Spring Kafka.
		r.Reason = ReasonUnknown
		r.Meta.Replays = md.Replays
		if isSpring(kr.Headers) {
			r.decodeSpring()
		}
	default:
		r.Meta, r.HasMeta, r.known = md, true, fieldsAll
		if md.Error != "" {
			r.known |= FieldError
		}
		r.Reason = md.Reason
		if r.Reason == "" {
			r.Reason = ReasonUnknown
		} else {
			r.known |= FieldReason
		}
	}
	return r
}

// lenientDecode reads every kretry header of hs that reads on its own: a
// missing, repeated or malformed one leaves its field unset.
func lenientDecode(hs []kgo.RecordHeader) (md headers.Metadata, known Field) {
	vals := map[string]string{}
	repeated := map[string]bool{}
	for _, h := range hs {
		if _, ok := vals[h.Key]; ok {
			repeated[h.Key] = true
		}
		vals[h.Key] = string(h.Value)
	}
	get := func(k string) (string, bool) {
		v, ok := vals[k]
		return v, ok && !repeated[k]
	}
	num := func(k string, lo, hi int64) (int64, bool) {
		v, ok := get(k)
		if !ok {
			return 0, false
		}
		n, err := strconv.ParseInt(v, 10, 64)
		return n, err == nil && n >= lo && n <= hi
	}
	at := func(k string) (time.Time, bool) {
		v, ok := get(k)
		if !ok {
			return time.Time{}, false
		}
		t, err := time.Parse(headers.TimeLayout, v)
		return t, err == nil
	}
	if v, ok := get(headers.HeaderGroup); ok && v != "" {
		md.Group, known = v, known|FieldGroup
	}
	// Attempts past what the consumer counts (a saturated or forged count)
	// are still shown as they are.
	if n, ok := num(headers.HeaderAttempts, 1, math.MaxInt64); ok {
		md.Attempts, known = int(n), known|FieldAttempts
	}
	if v, ok := get(headers.HeaderTier); ok && v != "" {
		md.Tier, known = v, known|FieldTier
	}
	topic, okT := get(headers.HeaderOriginalTopic)
	p, okP := num(headers.HeaderOriginalPartition, 0, math.MaxInt32)
	o, okO := num(headers.HeaderOriginalOffset, 0, math.MaxInt64)
	if okT && topic != "" && okP && okO {
		md.OriginalTopic, md.OriginalPartition, md.OriginalOffset = topic, int32(p), o
		known |= FieldOriginal
	}
	if t, ok := at(headers.HeaderOriginalTimestamp); ok {
		md.OriginalTimestamp, known = t, known|FieldOriginalTimestamp
	}
	if t, ok := at(headers.HeaderFirstFailureAt); ok {
		md.FirstFailureAt, known = t, known|FieldFirstFailure
	}
	if t, ok := at(headers.HeaderLastFailureAt); ok {
		md.LastFailureAt, known = t, known|FieldLastFailure
	}
	if v, ok := get(headers.HeaderErrorText); ok {
		md.Error, known = v, known|FieldError
	}
	if v, ok := get(headers.HeaderReason); ok && headers.Reason(v).Valid() {
		md.Reason, known = headers.Reason(v), known|FieldReason
	}
	if n, err := headers.DecodeReplays(hs); err == nil {
		md.Replays = n
	}
	if v, ok := get(headers.HeaderRoute); ok && v != "" {
		md.Route = v
	}
	return md, known
}

// hasOriginal reports whether the record's first delivery is known.
func (r *Record) hasOriginal() bool { return r.known&FieldOriginal != 0 }

// Group is the kretry-group of the record (the consumer group whose handler
// failed it), "" when it has none or it cannot be read.
func (r *Record) Group() string { return r.Meta.Group }

// ErrorText is the error the record was dead-lettered with, or, when it has
// none and its kretry headers cannot be read, why not.
func (r *Record) ErrorText() string {
	if r.known&FieldError == 0 && r.MetaErr != nil {
		return r.MetaErr.Error()
	}
	return r.Meta.Error
}

// Replays is how many times the record was replayed before it landed in the
// DLQ, and whether that is known: a record whose headers cannot be read counts
// kretry-replays alone; a malformed one is not known.
func (r *Record) Replays() (int, bool) {
	if r.MetaErr == nil {
		return r.Meta.Replays, true
	}
	n, err := headers.DecodeReplays(r.Headers)
	return n, err == nil
}
