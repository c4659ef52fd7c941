package dlqview

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"time"

	"github.com/kretry/kretry/dlq"
	"github.com/kretry/kretry/internal/safetext"
)

// RecordJSON is the JSON form of a DLQ record (`kretry dlq ls --json`): every
// header, the key and the value as base64, and as text when printable UTF-8.
type RecordJSON struct {
	Topic     string       `json:"topic"`
	Partition int32        `json:"partition"`
	Offset    int64        `json:"offset"`
	Timestamp *time.Time   `json:"timestamp"` // null when JSON cannot hold it (a year past 9999)
	Reason    string       `json:"reason"`
	Route     string       `json:"route,omitempty"` // kretry-route: the DLQ route it was sent to
	Key       *string      `json:"key"`             // base64; null for no key
	KeyText   *string      `json:"key_text,omitempty"`
	Value     *string      `json:"value"` // base64; null for no value
	ValueText *string      `json:"value_text,omitempty"`
	Headers   []HeaderJSON `json:"headers"`

	OriginalTopic     string      `json:"original_topic,omitempty"`
	OriginalPartition *int32      `json:"original_partition,omitempty"`
	OriginalOffset    *int64      `json:"original_offset,omitempty"`
	OriginalTimestamp *time.Time  `json:"original_timestamp,omitempty"`
	Group             string      `json:"group,omitempty"`
	Attempts          int         `json:"attempts"`
	Tier              string      `json:"tier,omitempty"`
	FirstFailureAt    *time.Time  `json:"first_failure_at,omitempty"`
	LastFailureAt     *time.Time  `json:"last_failure_at,omitempty"`
	Error             string      `json:"error,omitempty"`
	Replays           int         `json:"replays"`
	MetadataError     string      `json:"metadata_error,omitempty"`
	Spring            *SpringJSON `json:"spring,omitempty"`
}

// SpringJSON is what Spring Kafka wrote on a dead letter (dlq.SpringDeadLetter).
type SpringJSON struct {
	RetryTopics    bool   `json:"retry_topics"`
	ExceptionClass string `json:"exception_class,omitempty"`
	CauseClass     string `json:"cause_class,omitempty"`
	Message        string `json:"message,omitempty"`
	Stacktrace     string `json:"stacktrace,omitempty"`
	KeyException   bool   `json:"key_exception,omitempty"`
	TimestampType  string `json:"original_timestamp_type,omitempty"`
}

// HeaderJSON is one header: its value as text when printable, else as base64.
type HeaderJSON struct {
	Key         string  `json:"key"`
	Value       *string `json:"value,omitempty"`
	ValueBase64 *string `json:"value_base64,omitempty"`
}

// Record returns r's JSON form.
func Record(r *dlq.Record) RecordJSON {
	j := RecordJSON{
		Topic:     r.Topic,
		Partition: r.Partition,
		Offset:    r.Offset,
		Timestamp: jsonTime(r.Timestamp),
		Reason:    string(r.Reason),
		Route:     r.Meta.Route,
		Headers:   make([]HeaderJSON, 0, len(r.Headers)),
		Attempts:  r.Meta.Attempts,
		Error:     r.Meta.Error,
	}
	j.Key, j.KeyText = bytesJSON(r.Key)
	j.Value, j.ValueText = bytesJSON(r.Value)
	for _, h := range r.Headers {
		hj := HeaderJSON{Key: h.Key}
		if safetext.Printable(h.Value) {
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
	if sp := r.Spring; sp != nil {
		j.Spring = &SpringJSON{RetryTopics: sp.RetryTopics, ExceptionClass: sp.ExceptionClass, CauseClass: sp.CauseClass,
			Message: sp.Message, Stacktrace: sp.Stacktrace, KeyException: sp.KeyException, TimestampType: sp.TimestampType}
	}
	md, known := r.Meta, r.Fields()
	j.Group, j.Tier = md.Group, md.Tier
	if known&dlq.FieldOriginal != 0 {
		j.OriginalTopic = md.OriginalTopic
		j.OriginalPartition = ptr(md.OriginalPartition)
		j.OriginalOffset = ptr(md.OriginalOffset)
	}
	if known&dlq.FieldOriginalTimestamp != 0 {
		j.OriginalTimestamp = jsonTime(md.OriginalTimestamp)
	}
	if known&dlq.FieldFirstFailure != 0 {
		j.FirstFailureAt = jsonTime(md.FirstFailureAt)
	}
	if known&dlq.FieldLastFailure != 0 {
		j.LastFailureAt = jsonTime(md.LastFailureAt)
	}
	return j
}

// MarshalJSON writes j with keys and values as they are (<, >, &) and every
// control or format character escaped (safetext.JSON).
func (j RecordJSON) MarshalJSON() ([]byte, error) {
	type plain RecordJSON // without this method
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(plain(j)); err != nil {
		return nil, err
	}
	return safetext.JSON(bytes.TrimSuffix(b.Bytes(), []byte("\n"))), nil
}

func bytesJSON(b []byte) (b64, text *string) {
	if b == nil {
		return nil, nil
	}
	b64 = ptr(base64.StdEncoding.EncodeToString(b))
	if safetext.Printable(b) {
		text = ptr(string(b))
	}
	return b64, text
}

func ptr[T any](v T) *T { return &v }

// jsonTime is t in UTC, or nil when encoding/json cannot write it (a year
// outside 0–9999, which a producer can set as a record's timestamp): one
// such record must not fail a whole listing.
func jsonTime(t time.Time) *time.Time {
	if t = t.UTC(); t.Year() < 0 || t.Year() > 9999 {
		return nil
	}
	return &t
}

// StatsJSON is the JSON form of dlq.Stats (`kretry dlq stats --json`).
type StatsJSON struct {
	Topic           string      `json:"topic"`
	Total           int         `json:"total"`
	First           *time.Time  `json:"first,omitempty"`
	Last            *time.Time  `json:"last,omitempty"`
	ByReason        []dlq.Count `json:"by_reason"`
	ByOriginalTopic []dlq.Count `json:"by_original_topic"`
	ByError         []dlq.Count `json:"by_error"`
	ByHour          []HourJSON  `json:"by_hour"`
}

// HourJSON is a dlq.HourCount; Hour is null when JSON cannot hold it.
type HourJSON struct {
	Hour  *time.Time `json:"hour"`
	Count int        `json:"count"`
}

// Stats returns s's JSON form for the DLQ topic.
func Stats(topic string, s *dlq.Stats) StatsJSON {
	j := StatsJSON{
		Topic: topic, Total: s.Total,
		ByReason: s.Reasons(), ByOriginalTopic: s.OriginalTopics(), ByError: s.Errors(), ByHour: []HourJSON{},
	}
	for _, h := range s.Hours() {
		j.ByHour = append(j.ByHour, HourJSON{jsonTime(h.Hour), h.Count})
	}
	if s.Total > 0 {
		j.First, j.Last = jsonTime(s.First), jsonTime(s.Last)
	}
	return j
}
