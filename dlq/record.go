package dlq

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/retrytopics"
)

// Record is one DLQ record and what its kretry headers say.
type Record struct {
	*kgo.Record // as read from the DLQ: Topic, Partition, Offset, Timestamp, Key, Value, Headers

	// Meta is the decoded kretry metadata: all of it when HasMeta, the
	// headers that could be read when MetaErr is set, zero otherwise.
	Meta    retrytopics.Metadata
	HasMeta bool // the record carries kretry-group and every kretry header reads

	// Reason is kretry-reason, ReasonUnknown for a record without kretry
	// headers (or with no kretry-reason), ReasonInvalidMetadata for one whose
	// kretry-reason is missing or unreadable while other kretry headers
	// cannot be read either. A record whose kretry-reason reads keeps it
	// even when another kretry header is missing or malformed.
	Reason string

	// MetaErr says which kretry header is missing or malformed; nil when
	// they all read.
	MetaErr error

	known fields // which of Meta's fields were read
}

// fields is a set of Metadata fields read from a record's headers.
type fields uint16

const (
	fieldGroup fields = 1 << iota
	fieldAttempts
	fieldTier
	fieldOriginal // topic, partition and offset
	fieldOriginalTimestamp
	fieldFirstFailure
	fieldLastFailure
	fieldError
	fieldReason

	fieldsAll = fieldGroup | fieldAttempts | fieldTier | fieldOriginal | fieldOriginalTimestamp | fieldFirstFailure | fieldLastFailure
)

// NewRecord decodes the kretry headers of a DLQ record. It never fails: a
// record whose headers cannot all be read is listed with what can be read
// (its reason, attempts, tier, error, original…) and MetaErr set, or with
// reason invalid-metadata when its reason cannot be read.
func NewRecord(kr *kgo.Record) *Record {
	r := &Record{Record: kr}
	md, ok, err := retrytopics.Decode(kr.Headers)
	switch {
	case err != nil:
		r.Meta, r.known = lenientDecode(kr.Headers)
		r.Reason, r.MetaErr = ReasonInvalidMetadata, err
		if r.known&fieldReason != 0 {
			r.Reason = string(r.Meta.Reason)
		}
		var he *retrytopics.HeaderError
		if errors.As(err, &he) && he.Header == retrytopics.HeaderReason && r.known&fieldReason != 0 && r.known&fieldsAll == fieldsAll {
			// A reason this package knows and the header contract of
			// this build does not yet (too-large): the rest reads.
			r.MetaErr, r.HasMeta = nil, true
		}
	case !ok || md.Group == "":
		// No kretry headers, or only a replay count: written by something
		// other than kretry's consumer.
		r.Reason = ReasonUnknown
		r.Meta.Replays = md.Replays
	default:
		r.Meta, r.HasMeta, r.known = md, true, fieldsAll
		if md.Error != "" {
			r.known |= fieldError
		}
		r.Reason = string(md.Reason)
		if r.Reason == "" {
			r.Reason = ReasonUnknown
		} else {
			r.known |= fieldReason
		}
	}
	return r
}

// lenientDecode reads every kretry header of hs that reads on its own: a
// missing, repeated or malformed one leaves its field unset.
func lenientDecode(hs []kgo.RecordHeader) (md retrytopics.Metadata, known fields) {
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
		t, err := time.Parse(retrytopics.TimeLayout, v)
		return t, err == nil
	}
	if v, ok := get(retrytopics.HeaderGroup); ok && v != "" {
		md.Group, known = v, known|fieldGroup
	}
	// Attempts past what the consumer counts (a saturated or forged count)
	// are still shown as they are.
	if n, ok := num(retrytopics.HeaderAttempts, 1, math.MaxInt64); ok {
		md.Attempts, known = int(n), known|fieldAttempts
	}
	if v, ok := get(retrytopics.HeaderTier); ok && v != "" {
		md.Tier, known = v, known|fieldTier
	}
	topic, okT := get(retrytopics.HeaderOriginalTopic)
	p, okP := num(retrytopics.HeaderOriginalPartition, 0, math.MaxInt32)
	o, okO := num(retrytopics.HeaderOriginalOffset, 0, math.MaxInt64)
	if okT && topic != "" && okP && okO {
		md.OriginalTopic, md.OriginalPartition, md.OriginalOffset = topic, int32(p), o
		known |= fieldOriginal
	}
	if t, ok := at(retrytopics.HeaderOriginalTimestamp); ok {
		md.OriginalTimestamp, known = t, known|fieldOriginalTimestamp
	}
	if t, ok := at(retrytopics.HeaderFirstFailureAt); ok {
		md.FirstFailureAt, known = t, known|fieldFirstFailure
	}
	if t, ok := at(retrytopics.HeaderLastFailureAt); ok {
		md.LastFailureAt, known = t, known|fieldLastFailure
	}
	if v, ok := get(retrytopics.HeaderErrorText); ok {
		md.Error, known = v, known|fieldError
	}
	if v, ok := get(retrytopics.HeaderReason); ok && validReason(v) {
		md.Reason, known = retrytopics.Reason(v), known|fieldReason
	}
	if n, ok := num(retrytopics.HeaderReplays, 0, math.MaxInt32); ok {
		md.Replays = int(n)
	}
	return md, known
}

// validReason reports whether v is a kretry-reason a DLQ record can carry.
func validReason(v string) bool {
	return retrytopics.Reason(v).Valid() || v == ReasonTooLarge
}

// hasOriginal reports whether the record's first delivery is known.
func (r *Record) hasOriginal() bool { return r.known&fieldOriginal != 0 }

// Group is the kretry-group of the record (the consumer group whose handler
// failed it), "" when it has none or it cannot be read.
func (r *Record) Group() string { return r.Meta.Group }

// ErrorText is the error the record was dead-lettered with, or, when it has
// none and its kretry headers cannot be read, why not.
func (r *Record) ErrorText() string {
	if r.known&fieldError == 0 && r.MetaErr != nil {
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
	n, seen := 0, false
	for _, h := range r.Headers {
		if h.Key == retrytopics.HeaderReplays {
			v, err := strconv.Atoi(string(h.Value))
			if err != nil || v < 0 || seen {
				return 0, false
			}
			n, seen = v, true
		}
	}
	return n, true
}

// Printable reports whether b is UTF-8 text without control characters other
// than tab and newline, so it can be shown as is.
func Printable(b []byte) bool {
	if !utf8.Valid(b) {
		return false
	}
	for _, c := range string(b) {
		if c == utf8.RuneError || (unicode.IsControl(c) && c != '\n' && c != '\t' && c != '\r') {
			return false
		}
	}
	return true
}

// KeyText shows a key on one line: "-" for none, the text when printable
// without control or format characters (Text), else 0x and hex.
func KeyText(key []byte) string {
	switch {
	case key == nil:
		return "-"
	case len(key) == 0:
		return `""`
	case Printable(key) && Text(string(key)) == string(key): // no control or format character
		return string(key)
	default:
		return "0x" + hexString(key)
	}
}

func hexString(b []byte) string {
	const digits = "0123456789abcdef"
	var sb strings.Builder
	sb.Grow(2 * len(b))
	for _, c := range b {
		sb.WriteByte(digits[c>>4])
		sb.WriteByte(digits[c&0xf])
	}
	return sb.String()
}

// RecordJSON is the JSON form of a Record (`kretry dlq ls --json`): every
// header, the key and the value as base64, and as text when printable UTF-8.
type RecordJSON struct {
	Topic     string       `json:"topic"`
	Partition int32        `json:"partition"`
	Offset    int64        `json:"offset"`
	Timestamp time.Time    `json:"timestamp"`
	Reason    string       `json:"reason"`
	Key       *string      `json:"key"` // base64; null for no key
	KeyText   *string      `json:"key_text,omitempty"`
	Value     *string      `json:"value"` // base64; null for no value
	ValueText *string      `json:"value_text,omitempty"`
	Headers   []HeaderJSON `json:"headers"`

	OriginalTopic     string     `json:"original_topic,omitempty"`
	OriginalPartition *int32     `json:"original_partition,omitempty"`
	OriginalOffset    *int64     `json:"original_offset,omitempty"`
	OriginalTimestamp *time.Time `json:"original_timestamp,omitempty"`
	Group             string     `json:"group,omitempty"`
	Attempts          int        `json:"attempts"`
	Tier              string     `json:"tier,omitempty"`
	FirstFailureAt    *time.Time `json:"first_failure_at,omitempty"`
	LastFailureAt     *time.Time `json:"last_failure_at,omitempty"`
	Error             string     `json:"error,omitempty"`
	Replays           int        `json:"replays"`
	MetadataError     string     `json:"metadata_error,omitempty"`
}

// HeaderJSON is one header: its value as text when printable, else as base64.
type HeaderJSON struct {
	Key         string  `json:"key"`
	Value       *string `json:"value,omitempty"`
	ValueBase64 *string `json:"value_base64,omitempty"`
}

// JSON returns r's JSON form.
func (r *Record) JSON() RecordJSON {
	j := RecordJSON{
		Topic:     r.Topic,
		Partition: r.Partition,
		Offset:    r.Offset,
		Timestamp: r.Timestamp.UTC(),
		Reason:    r.Reason,
		Headers:   make([]HeaderJSON, 0, len(r.Headers)),
		Attempts:  r.Meta.Attempts,
		Error:     r.Meta.Error,
	}
	j.Key, j.KeyText = bytesJSON(r.Key)
	j.Value, j.ValueText = bytesJSON(r.Value)
	for _, h := range r.Headers {
		hj := HeaderJSON{Key: h.Key}
		if Printable(h.Value) {
			hj.Value = ptr(string(h.Value))
		} else {
			hj.ValueBase64 = ptr(base64.StdEncoding.EncodeToString(h.Value))
		}
		j.Headers = append(j.Headers, hj)
	}
	if n, ok := r.Replays(); ok {
		j.Replays = n
	}
	if r.MetaErr != nil {
		j.MetadataError = r.MetaErr.Error()
	}
	md := r.Meta
	j.Group, j.Tier = md.Group, md.Tier
	if r.hasOriginal() {
		j.OriginalTopic = md.OriginalTopic
		j.OriginalPartition = ptr(md.OriginalPartition)
		j.OriginalOffset = ptr(md.OriginalOffset)
	}
	if r.known&fieldOriginalTimestamp != 0 {
		j.OriginalTimestamp = ptr(md.OriginalTimestamp)
	}
	if r.known&fieldFirstFailure != 0 {
		j.FirstFailureAt = ptr(md.FirstFailureAt)
	}
	if r.known&fieldLastFailure != 0 {
		j.LastFailureAt = ptr(md.LastFailureAt)
	}
	return j
}

// MarshalJSON writes r in its JSON form.
func (r *Record) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false) // keys and values show as they are: <, >, &
	if err := enc.Encode(r.JSON()); err != nil {
		return nil, err
	}
	return SafeJSON(bytes.TrimSuffix(b.Bytes(), []byte("\n"))), nil
}

func bytesJSON(b []byte) (b64, text *string) {
	if b == nil {
		return nil, nil
	}
	b64 = ptr(base64.StdEncoding.EncodeToString(b))
	if Printable(b) {
		text = ptr(string(b))
	}
	return b64, text
}

func ptr[T any](v T) *T { return &v }

// SafeJSON returns the JSON text b with every control or format character
// that encoding/json leaves as it is (DEL, the C1 controls, bidi overrides)
// written as a \u escape, so that JSON printed to a terminal cannot drive
// it. Outside strings JSON is ASCII: only string contents change.
func SafeJSON(b []byte) []byte {
	s := string(b)
	if escape(s, true) == s {
		return b
	}
	out := make([]byte, 0, len(b)+16)
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if shown(r, n, true) || r < 0x7f { // encoding/json escaped the ASCII controls
			out = append(out, s[i:i+n]...)
		} else if r1, r2 := utf16.EncodeRune(r); r1 != utf8.RuneError {
			out = fmt.Appendf(out, `\u%04x\u%04x`, r1, r2)
		} else {
			out = fmt.Appendf(out, `\u%04x`, r) // encoding/json writes no invalid UTF-8
		}
		i += n
	}
	return out
}
