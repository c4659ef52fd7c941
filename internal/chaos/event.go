package chaos

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/headers"
)

// Outcomes of one handling, as chaosworker records them.
const (
	OutcomeOK        = "ok"
	OutcomeFail      = "fail"      // a retryable error: next tier or, at the end of the ladder, the DLQ
	OutcomePermanent = "permanent" // consumer.Permanent: the DLQ at once
	OutcomeMalformed = "malformed" // the handler saw a record whose kretry headers it could not read
)

// Outcome is the handler's deterministic verdict on record id at its
// attempt (failed attempts so far: 0 on the first delivery), so every run
// fails the same records the same way:
//
//	id%20 == 0, 1  fails every attempt: through both tiers to the DLQ (exhausted)
//	id%20 == 2     fails for good at once: the DLQ (permanent)
//	id%20 == 3..6  fails its first attempt, then succeeds (one tier)
//	id%20 == 7     fails twice, then succeeds (both tiers)
//	otherwise      succeeds at once
//
// Negative ids are the suite's probe records: they succeed.
func Outcome(id int64, attempt int) string {
	switch m := id % 20; {
	case id < 0:
		return OutcomeOK
	case m <= 1:
		return OutcomeFail
	case m == 2:
		return OutcomePermanent
	case m <= 6 && attempt < 1, m == 7 && attempt < 2:
		return OutcomeFail
	}
	return OutcomeOK
}

// WantDLQ says whether record id ends in the DLQ (with the ladder of two
// tiers of one attempt each the suite uses); else it ends handled ok.
func WantDLQ(id int64) bool { return id%20 <= 2 }

// Event is one handling by a chaosworker.
type Event struct {
	At        time.Time
	PID       int
	Partition int32
	ID        int64
	Attempt   int       // kretry-attempts of the record: 0 on a first delivery
	DueAt     time.Time // kretry-due-at of a re-fed record; zero on a first delivery
	Outcome   string
	// Offset of the record handled in its partition of the main topic: the
	// same offset handled again is a re-delivery, another offset of the same
	// record and attempt another copy of it.
	Offset int64
}

// AppendLine appends the event as one line: unix-ms pid partition id attempt due-ms outcome offset.
func (e Event) AppendLine(b []byte) []byte {
	var due int64
	if !e.DueAt.IsZero() {
		due = e.DueAt.UnixMilli()
	}
	return fmt.Appendf(b, "%d %d %d %d %d %d %s %d\n", e.At.UnixMilli(), e.PID, e.Partition, e.ID, e.Attempt, due, e.Outcome, e.Offset)
}

func parseEvent(line []byte) (Event, error) {
	var e Event
	var at, due int64
	if _, err := fmt.Sscanf(string(line), "%d %d %d %d %d %d %s %d", &at, &e.PID, &e.Partition, &e.ID, &e.Attempt, &due, &e.Outcome, &e.Offset); err != nil {
		return e, fmt.Errorf("event line %q: %w", line, err)
	}
	e.At = time.UnixMilli(at)
	if due != 0 {
		e.DueAt = time.UnixMilli(due)
	}
	return e, nil
}

// ReadEvents reads every events file (*.events) in dir. A last line cut short
// by a kill is skipped.
func ReadEvents(dir string) ([]Event, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.events"))
	if err != nil {
		return nil, err
	}
	var out []Event
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		sc := bufio.NewScanner(bytes.NewReader(data))
		for sc.Scan() {
			if len(sc.Bytes()) == 0 {
				continue
			}
			e, err := parseEvent(sc.Bytes())
			if err != nil {
				if !bytes.HasSuffix(data, []byte("\n")) && !sc.Scan() {
					break // the cut last line
				}
				return nil, fmt.Errorf("%s: %w", f, err)
			}
			out = append(out, e)
		}
	}
	return out, nil
}

// OutputTopic is where chaosworker emits (consumer.Emit) one output per
// handling that succeeded: the analysis counts them as a read_committed
// reader sees them.
func OutputTopic(topic string) string { return topic + ".out" }

// HeaderHandling names, in an output, the handling that emitted it: see
// Handling.
const HeaderHandling = "chaos-handling"

// Handling is the value of HeaderHandling for handling e: its process,
// the partition and offset of the copy handled, and when (in ms: one
// process handles a copy again only after a rewind, well after that).
func Handling(e Event) string {
	return fmt.Sprintf("%d/%d/%d/%d", e.PID, e.Partition, e.Offset, e.At.UnixMilli())
}

// Output is what chaosworker emits when its handling e of record value
// succeeds.
func Output(topic string, e Event, value []byte) *kgo.Record {
	return &kgo.Record{Topic: OutputTopic(topic), Value: value, Headers: []kgo.RecordHeader{
		{Key: HeaderHandling, Value: []byte(Handling(e))},
	}}
}

// RecordValue is the value of test record id.
func RecordValue(id int64) []byte { return []byte("chaos-" + strconv.FormatInt(id, 10)) }

// ParseValue reads the id of a test record's value.
func ParseValue(v []byte) (int64, bool) {
	s, ok := bytes.CutPrefix(v, []byte("chaos-"))
	if !ok {
		return 0, false
	}
	id, err := strconv.ParseInt(string(s), 10, 64)
	return id, err == nil
}

// ReadRecord reads a test record: its id, kretry-attempts (0 when absent) and
// kretry-due-at (zero when absent). An error means malformed kretry headers
// or a value that is not a test record's.
func ReadRecord(r *kgo.Record) (id int64, attempt int, due time.Time, err error) {
	id, ok := ParseValue(r.Value)
	if !ok {
		return 0, 0, time.Time{}, fmt.Errorf("value %q is not a chaos record", r.Value)
	}
	attempt, due, err = kretryHeaders(r.Headers)
	return id, attempt, due, err
}

func kretryHeaders(hs []kgo.RecordHeader) (attempt int, due time.Time, err error) {
	for _, h := range hs {
		switch h.Key {
		case headers.HeaderAttempts:
			if attempt, err = strconv.Atoi(string(h.Value)); err != nil {
				return 0, time.Time{}, fmt.Errorf("%s %q: %w", h.Key, h.Value, err)
			}
		case headers.HeaderDueAt:
			if due, err = time.Parse(headers.TimeLayout, string(h.Value)); err != nil {
				return 0, time.Time{}, fmt.Errorf("%s %q: %w", h.Key, h.Value, err)
			}
		}
	}
	return attempt, due, nil
}

func header(hs []kgo.RecordHeader, key string) (string, bool) {
	for _, h := range hs {
		if h.Key == key {
			return string(h.Value), true
		}
	}
	return "", false
}
