package demo

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/headers"
	"github.com/kretry/kretry/ladder"
)

// watch prints a progress line per second until every produced record is
// accounted for — accepted by the handler or read back from the DLQ — or
// o.Timeout passes (errTimeout).
func watch(ctx context.Context, o Options, adm *kadm.Client, refed func(tier string) int64, l *ladder.Ladder,
	obs *observer, dlq *dlqReader, consumerDone <-chan struct{}, start time.Time) error {
	deadline := time.NewTimer(o.Timeout)
	defer deadline.Stop()
	check := time.NewTicker(50 * time.Millisecond)
	defer check.Stop()
	report := time.NewTicker(time.Second)
	defer report.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-consumerDone:
			return errors.New("the consumer stopped before every record was accounted for")
		case <-deadline.C:
			fmt.Fprintf(o.Progress, "timed out after %s with %d of %d records accounted for\n",
				o.Timeout, accounted(obs, dlq), o.Records)
			return errTimeout
		case <-report.C:
			line, err := progressLine(ctx, adm, refed, l, obs, time.Since(start))
			if err != nil {
				return err
			}
			fmt.Fprintln(o.Progress, line)
		case <-check.C:
			if accounted(obs, dlq) >= o.Records {
				line, err := progressLine(ctx, adm, refed, l, obs, time.Since(start))
				if err != nil {
					return err
				}
				fmt.Fprintln(o.Progress, line)
				fmt.Fprintf(o.Progress, "every record accounted for; stopping the consumer and the relay\n")
				return nil
			}
		}
	}
}

// accounted is the number of distinct keys accepted or dead-lettered.
func accounted(obs *observer, dlq *dlqReader) int {
	obs.mu.Lock()
	defer obs.mu.Unlock()
	dlq.mu.Lock()
	defer dlq.mu.Unlock()
	n := len(obs.ok)
	for k := range dlq.keys {
		if _, both := obs.ok[k]; !both {
			n++
		}
	}
	return n
}

// progressLine shows how many records wait in each tier — written to it (its
// end offsets) and not re-fed yet (kretry_refed_total of the relay) — and how
// many the DLQ holds. The relay group's committed offsets would say the same
// only up to its auto-commit interval (5 s) later.
func progressLine(ctx context.Context, adm *kadm.Client, refed func(tier string) int64, l *ladder.Ladder,
	obs *observer, elapsed time.Duration) (string, error) {
	topics := append(topicsOf(l), l.DLQ())
	ends, err := adm.ListEndOffsets(ctx, topics...)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return "", fmt.Errorf("end offsets of %s: %w", strings.Join(topics, ", "), err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%5.1fs  handled ok %5d  waiting:", elapsed.Seconds(), obs.distinctOK())
	for _, s := range l.Steps() {
		var written int64
		ends.Each(func(e kadm.ListedOffset) {
			if e.Topic == s.Topic {
				written += e.Offset
			}
		})
		fmt.Fprintf(&b, "  %s %4d", s.Name, max(0, written-refed(s.Name)))
	}
	var inDLQ int64
	ends.Each(func(e kadm.ListedOffset) {
		if e.Topic == l.DLQ() {
			inDLQ += e.Offset
		}
	})
	fmt.Fprintf(&b, "  dlq %4d", inDLQ)
	return b.String(), nil
}

// dlqReader reads the DLQ from its start, keeping the key and reason of every
// record.
type dlqReader struct {
	cl    *kgo.Client
	topic string

	mu      sync.Mutex
	records []deadLetter
	keys    map[string]struct{}
	next    map[int32]int64 // partition → offset after the last record read
}

func newDLQReader(brokers []string, topic string) (*dlqReader, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ClientID("kretry-demo-dlq-reader"),
		kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(100*time.Millisecond))
	if err != nil {
		return nil, err
	}
	return &dlqReader{cl: cl, topic: topic, keys: make(map[string]struct{}), next: make(map[int32]int64)}, nil
}

func (r *dlqReader) close() { r.cl.Close() }

// run reads until ctx is done.
func (r *dlqReader) run(ctx context.Context) {
	for ctx.Err() == nil {
		r.poll(ctx)
	}
}

func (r *dlqReader) poll(ctx context.Context) {
	fs := r.cl.PollFetches(ctx)
	r.mu.Lock()
	defer r.mu.Unlock()
	fs.EachRecord(func(rec *kgo.Record) {
		reason := "unknown"
		if md, ok, err := headers.Decode(rec.Headers); err == nil && ok && md.Reason != "" {
			reason = string(md.Reason)
		}
		r.records = append(r.records, deadLetter{Key: string(rec.Key), Reason: reason})
		r.keys[string(rec.Key)] = struct{}{}
		r.next[rec.Partition] = rec.Offset + 1
	})
}

// drain reads until every partition is read up to its offset in ends. Call it
// after run has returned.
func (r *dlqReader) drain(ctx context.Context, ends kadm.ListedOffsets) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for !r.caughtUp(ends) {
		if ctx.Err() != nil {
			return fmt.Errorf("reading %s back to its end offsets: %w", r.topic, ctx.Err())
		}
		r.poll(ctx)
	}
	return nil
}

func (r *dlqReader) caughtUp(ends kadm.ListedOffsets) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	up := true
	ends.Each(func(e kadm.ListedOffset) {
		if e.Offset > 0 && r.next[e.Partition] < e.Offset {
			up = false
		}
	})
	return up
}

func (r *dlqReader) snapshot() []deadLetter {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]deadLetter(nil), r.records...)
}

// readProduced reads the main topic from its start to its end offsets and
// returns the keys of the records without kretry headers: those the demo
// produced, not re-feeds.
func readProduced(ctx context.Context, brokers []string, adm *kadm.Client) ([]string, error) {
	ends, err := adm.ListEndOffsets(ctx, Topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("end offsets of %s: %w", Topic, err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ClientID("kretry-demo-reader"),
		kgo.ConsumeTopics(Topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(100*time.Millisecond))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	next := make(map[int32]int64)
	var keys []string
	caughtUp := func() bool {
		up := true
		ends.Each(func(e kadm.ListedOffset) {
			if e.Offset > 0 && next[e.Partition] < e.Offset {
				up = false
			}
		})
		return up
	}
	for !caughtUp() {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil, fmt.Errorf("reading %s back to its end offsets: %w", Topic, ctx.Err())
		}
		fs.EachRecord(func(rec *kgo.Record) {
			next[rec.Partition] = rec.Offset + 1
			if _, refed, err := headers.Decode(rec.Headers); err == nil && !refed {
				keys = append(keys, string(rec.Key))
			}
		})
	}
	return keys, nil
}
