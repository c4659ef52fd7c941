package dlqview

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/kretry/kretry/dlq"
	"github.com/kretry/kretry/headers"
	"github.com/kretry/kretry/internal/safetext"
)

// WriteRecord writes one record in full, as `kretry dlq show` does: where it
// is, its headers, key, what its kretry headers say, and its value as
// indented JSON when it is JSON, else as text when printable, else as a hex
// dump.
func WriteRecord(w io.Writer, r *dlq.Record) error {
	var b bytes.Buffer
	line := func(k, v string) { fmt.Fprintf(&b, "%-20s %s\n", k, safetext.Text(v)) }
	line("topic", r.Topic)
	line("partition", strconv.Itoa(int(r.Partition)))
	line("offset", strconv.FormatInt(r.Offset, 10))
	line("timestamp", headers.FormatTime(r.Timestamp))
	line("reason", string(r.Reason))
	if r.Meta.Route != "" {
		line("route", safetext.Text(r.Meta.Route))
	}
	if sp := r.Spring; sp != nil {
		by := "Spring Kafka's DeadLetterPublishingRecoverer"
		if sp.RetryTopics {
			by = "Spring Kafka's retryable topics"
		}
		line("written by", by+" (the reason is read from the exception class)")
	}
	if r.MetaErr != nil {
		line("metadata error", r.MetaErr.Error())
	}
	md, unknown := r.Meta, "?"
	timeOf := func(f dlq.Field, t time.Time) string {
		if r.Fields()&f == 0 {
			return unknown
		}
		return headers.FormatTime(t)
	}
	if r.Fields()&dlq.FieldOriginal != 0 {
		line("original", fmt.Sprintf("%s partition %d offset %d at %s", md.OriginalTopic, md.OriginalPartition, md.OriginalOffset,
			timeOf(dlq.FieldOriginalTimestamp, md.OriginalTimestamp)))
	} else if r.Fields() != 0 {
		line("original", unknown)
	}
	if r.Fields()&dlq.FieldGroup != 0 {
		line("group", md.Group)
	} else if r.Fields() != 0 {
		line("group", unknown)
	}
	if r.Spring != nil {
		if r.Fields()&dlq.FieldAttempts != 0 {
			line("attempts", strconv.Itoa(md.Attempts)+" (from retry_topic-attempts)")
		}
	} else if r.Fields()&(dlq.FieldAttempts|dlq.FieldTier) != 0 {
		attempts, tier := unknown, unknown
		if r.Fields()&dlq.FieldAttempts != 0 {
			attempts = strconv.Itoa(md.Attempts)
		}
		if r.Fields()&dlq.FieldTier != 0 {
			tier = md.Tier
		}
		line("attempts", fmt.Sprintf("%s (last tier %s)", attempts, tier))
	}
	if r.Fields()&(dlq.FieldFirstFailure|dlq.FieldLastFailure) != 0 {
		line("failures", fmt.Sprintf("first %s, last %s", timeOf(dlq.FieldFirstFailure, md.FirstFailureAt), timeOf(dlq.FieldLastFailure, md.LastFailureAt)))
	}
	if n, ok := r.Replays(); ok {
		line("replays", strconv.Itoa(n))
	} else {
		line("replays", "unreadable")
	}
	if r.Fields()&dlq.FieldError != 0 && md.Error != "" {
		line("error", md.Error)
	}
	if sp := r.Spring; sp != nil {
		if sp.KeyException {
			line("key exception", "the key could not be deserialized")
		}
		line("exception", sp.ExceptionClass)
		line("cause", sp.CauseClass)
		line("message", sp.Message)
	}
	if r.Reason == headers.ReasonTooLarge && len(r.Value) == 0 && r.Fields()&dlq.FieldOriginal != 0 {
		line("value in", fmt.Sprintf("%s partition %d offset %d (too large to forward with kretry's headers; replay reads it from there while retention keeps it)",
			md.OriginalTopic, md.OriginalPartition, md.OriginalOffset))
	}
	b.WriteString("\nkey")
	writeBytes(&b, r.Key, false)
	fmt.Fprintf(&b, "\nheaders (%d)\n", len(r.Headers))
	for _, h := range r.Headers {
		v := safetext.Text(string(h.Value))
		if !safetext.Printable(h.Value) {
			v = "0x" + safetext.Hex(h.Value)
		}
		fmt.Fprintf(&b, "  %s: %s\n", safetext.Text(h.Key), v)
	}
	if r.Spring != nil && r.Spring.Stacktrace != "" {
		fmt.Fprintf(&b, "\nstack trace\n%s\n", safetext.Lines(strings.ReplaceAll(strings.TrimRight(r.Spring.Stacktrace, "\n"), "\t", "    ")))
	}
	b.WriteString("\nvalue")
	writeBytes(&b, r.Value, true)
	_, err := w.Write(b.Bytes())
	return err
}

func writeBytes(b *bytes.Buffer, v []byte, tryJSON bool) {
	switch {
	case v == nil:
		b.WriteString(" (null)\n")
	case len(v) == 0:
		b.WriteString(" (empty)\n")
	case tryJSON && json.Valid(v):
		var ind bytes.Buffer
		_ = json.Indent(&ind, v, "", "  ")
		fmt.Fprintf(b, " (JSON, %d bytes)\n%s\n", len(v), safetext.Lines(ind.String()))
	case safetext.Printable(v):
		fmt.Fprintf(b, " (text, %d bytes)\n%s\n", len(v), safetext.Lines(strings.TrimRight(string(v), "\n")))
	default:
		fmt.Fprintf(b, " (binary, %d bytes)\n%s", len(v), hex.Dump(v))
	}
}
