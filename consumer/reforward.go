package consumer

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/headers"
)

// Backoff of a failed forward, retried in place without handling the record again.
const (
	forwardBackoffMin = 100 * time.Millisecond
	forwardBackoffMax = 10 * time.Second
)

// reforward produces p's failed forward again, with backoff, until it is
// acknowledged; false: stopped first. One refused for good goes to the DLQ
// instead; if the DLQ refuses it too, Run stops with an error naming the record.
func (w *worker) reforward(p *pendingRecord, err error) bool {
	rec := p.rec
	if w.txn {
		return w.reforwardInTxn(p, err)
	}
	backoff := forwardBackoffMin
	for try := 1; ; try++ {
		topic := p.fwd.out.Topic
		if w.ctx.Err() != nil || errors.Is(err, kgo.ErrClientClosed) {
			w.s.log.Error("kretry forward abandoned at stop; the record is not committed and will be handled again",
				"topic", rec.Topic, "partition", rec.Partition, "offset", rec.Offset, "to", topic, "error", err)
			return false
		}
		if refused(err) {
			// Too large: to the DLQ without its value, which stays in the main topic.
			tooLarge := isTooLarge(err) && p.fwd.md.Reason != headers.ReasonTooLarge
			if topic == w.ladder.DLQ() && !tooLarge {
				w.s.fail(fmt.Errorf("consumer: record %s/%d@%d cannot be written to the DLQ %s: %w: "+
					"grant the write (or raise the topic's max.message.bytes); "+
					"the record stays uncommitted", rec.Topic, rec.Partition, rec.Offset, topic, err))
				return false
			}
			w.redirectToDLQ(p, err, tooLarge)
			try, backoff = 0, forwardBackoffMin
			if err = w.s.cl.ProduceSync(w.ctx, &p.fwd.out).FirstErr(); err == nil {
				return true
			}
			continue
		}
		w.s.c.health.Wrote(w.tp.topic, w.tp.partition, err)
		w.s.log.Error("kretry forward failed; the record is not committed and the forward is retried",
			"topic", rec.Topic, "partition", rec.Partition, "offset", rec.Offset, "to", topic,
			"try", try, "retry_in", backoff, "error", err)
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-w.ctx.Done():
			t.Stop()
			err = w.ctx.Err()
			continue
		}
		backoff = min(2*backoff, forwardBackoffMax)
		f := &p.fwd.out
		// A new timestamp: kgo counts the delivery timeout from it.
		again := &kgo.Record{Topic: f.Topic, Partition: f.Partition, Key: f.Key, Value: f.Value, Headers: f.Headers, Timestamp: time.Now()}
		if err = w.s.cl.ProduceSync(w.ctx, again).FirstErr(); err == nil {
			return true
		}
	}
}

// reforwardInTxn is reforward in exactly-once mode, where a failed produce
// dooms the transaction: it breaks it (the records are handled again after
// the abort), and a refusal's redirect to the DLQ is noted for the next one.
// false: stopped first.
func (w *worker) reforwardInTxn(p *pendingRecord, err error) bool {
	rec, topic := p.rec, p.fwd.out.Topic
	if w.ctx.Err() != nil || errors.Is(err, kgo.ErrClientClosed) {
		return false
	}
	if refused(err) {
		tooLarge := isTooLarge(err) && p.fwd.md.Reason != headers.ReasonTooLarge
		if topic == w.ladder.DLQ() && !tooLarge {
			w.s.fail(fmt.Errorf("consumer: record %s/%d@%d cannot be written to the DLQ %s: %w: "+
				"grant the write (or raise the topic's max.message.bytes); "+
				"the record stays uncommitted", rec.Topic, rec.Partition, rec.Offset, topic, err))
			return false
		}
		w.redirectToDLQ(p, err, tooLarge)
		w.refuse(rec.Offset, refusedWrite{fwd: p.fwd})
	}
	w.s.log.Error("kretry forward failed in a transaction; the transaction aborts and its records will be handled again",
		"topic", rec.Topic, "partition", rec.Partition, "offset", rec.Offset, "to", topic, "error", err)
	w.s.broken.Store(true)
	return w.ctx.Err() == nil
}

// refusedErrorLen bounds the error text of a record redirected to the DLQ, so
// that a record refused for its size has the best chance to fit there.
const refusedErrorLen = 256

// redirectToDLQ turns p's refused forward into a dead letter with the
// refusal as its error: with reason permanent, or, when the record is too
// large for its forward (tooLarge), with reason too-large and without its
// value, which the record's kretry-original-topic, -partition and -offset
// point to in the main topic (dlq replay reads it from there).
func (w *worker) redirectToDLQ(p *pendingRecord, refusal error, tooLarge bool) {
	rec, to, md := p.rec, p.fwd.out.Topic, p.fwd.md
	f := p.fwd.out // the refused forward's promise has run: its record is ours again
	errText := fmt.Sprintf("forward to %s refused: %v; last error: %s", to, refusal, md.Error)
	reason, value := headers.ReasonPermanent, f.Value
	if tooLarge {
		reason, value = headers.ReasonTooLarge, nil
		errText = fmt.Sprintf("value of %d bytes omitted, too large for %s; it is in %s partition %d offset %d: %s",
			len(f.Value), to, md.OriginalTopic, md.OriginalPartition, md.OriginalOffset, errText)
	}
	if len(errText) > refusedErrorLen {
		errText = strings.ToValidUTF8(errText[:refusedErrorLen], "")
	}
	md = md.DeadLettered(reason, md.Tier, md.LastFailureAt)
	md.Error = errText
	p.fwd.out = kgo.Record{Topic: w.ladder.DLQ(), Partition: w.s.partitions.Partition(w.ctx, w.ladder.DLQ(), rec.Partition),
		Key: f.Key, Value: value, Headers: headers.Encode(f.Headers, md), Timestamp: time.Now()}
	if tooLarge {
		w.s.log.Error("kretry record too large for its forward; dead-lettering it without its value, which stays in the main topic",
			"topic", rec.Topic, "partition", rec.Partition, "offset", rec.Offset, "to", to, "value_bytes", len(f.Value),
			"original_topic", logText(md.OriginalTopic), "original_partition", md.OriginalPartition, "original_offset", md.OriginalOffset,
			"error", refusal)
	} else {
		w.s.log.Error("kretry forward refused for good; dead-lettering the record instead",
			"topic", rec.Topic, "partition", rec.Partition, "offset", rec.Offset, "to", to, "error", refusal)
	}
	p.fwd.md = md
}

// refusedWrite is what a write refused for good in a transaction decided for
// its record, done in the next transaction: a forward to the DLQ (fwd), or
// the handling's failure because an output was refused (outputErr).
type refusedWrite struct {
	fwd       *pendingForward
	outputErr error
}

// refuse notes r for the record at offset, whose transaction aborts.
func (w *worker) refuse(offset int64, r refusedWrite) {
	if w.refused == nil {
		w.refused = make(map[int64]refusedWrite)
	}
	w.refused[offset] = r
}

// forwardAgain produces f's record (a redirect to the DLQ) again for rec.
func (w *worker) forwardAgain(rec *kgo.Record, f *pendingForward) bool {
	g := w.newForward()
	g.out, g.md = f.out, f.md
	g.out.Timestamp = time.Now() // kgo counts the delivery timeout from it
	return w.send(rec, g)
}

// refused reports whether a produce error is one that no retry can mend: the
// broker's (or the client's) non-retriable answers, such as a record larger
// than the topic or the client accepts, or a write the ACLs deny. Not an
// answer about the producer rather than the record (producerStateErr): the
// DLQ would get the same.
func refused(err error) bool {
	var ke *kerr.Error
	return errors.As(err, &ke) && !ke.Retriable && !producerStateErr(err)
}

// isTooLarge reports whether a produce error says the record is larger than
// the topic (the broker) or the client's batch limit accepts.
func isTooLarge(err error) bool {
	return errors.Is(err, kerr.MessageTooLarge) || errors.Is(err, kerr.RecordListTooLarge)
}
