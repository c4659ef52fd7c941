package dlq

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/retrytopics"
)

// Record is one DLQ record and what its kretry headers say.
type Record struct {
	*kgo.Record // as read from the DLQ: Topic, Partition, Offset, Timestamp, Key, Value, Headers

	// Meta is the decoded kretry metadata; zero when HasMeta is false.
	Meta    retrytopics.Metadata
	HasMeta bool // the record carries kretry-group and readable kretry headers

	// Reason is kretry-reason, ReasonUnknown for a record without kretry
	// headers (or with no kretry-reason), ReasonInvalidMetadata for one whose
	// kretry headers cannot be read.
	Reason string

	// MetaErr says why the kretry headers cannot be read (Reason
	// invalid-metadata); nil otherwise.
	MetaErr error
}

// NewRecord decodes the kretry headers of a DLQ record. It never fails: a
// record whose headers cannot be read is listed with reason invalid-metadata
// and MetaErr set.
func NewRecord(kr *kgo.Record) *Record {
	r := &Record{Record: kr}
	md, ok, err := retrytopics.Decode(kr.Headers)
	switch {
	case err != nil:
		r.Reason, r.MetaErr = ReasonInvalidMetadata, err
	case !ok || md.Group == "":
		// No kretry headers, or only a replay count: written by something
		// other than kretry's consumer.
		r.Reason = ReasonUnknown
		r.Meta.Replays = md.Replays
	default:
		r.Meta, r.HasMeta = md, true
		r.Reason = string(md.Reason)
		if r.Reason == "" {
			r.Reason = ReasonUnknown
		}
	}
	return r
}

// ErrorText is the error the record was dead-lettered with, or, when its
// kretry headers cannot be read, why not.
func (r *Record) ErrorText() string {
	if r.MetaErr != nil {
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

// KeyText shows a key on one line: "-" for none, the text when printable and
// on one line, else 0x and hex.
func KeyText(key []byte) string {
	switch {
	case key == nil:
		return "-"
	case len(key) == 0:
		return `""`
	case Printable(key) && !bytes.ContainsAny(key, "\n\r\t"):
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
	if r.HasMeta {
		md := r.Meta
		j.OriginalTopic = md.OriginalTopic
		j.OriginalPartition = ptr(md.OriginalPartition)
		j.OriginalOffset = ptr(md.OriginalOffset)
		j.OriginalTimestamp = ptr(md.OriginalTimestamp)
		j.Group = md.Group
		j.Tier = md.Tier
		j.FirstFailureAt = ptr(md.FirstFailureAt)
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
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
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
