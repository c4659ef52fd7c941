package consumer_test

import (
	"bytes"
	"context"
	"errors"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kretry/kretry/consumer"
	"github.com/kretry/kretry/headers"
	"github.com/kretry/kretry/internal/kafkatest"
)

// readCommitted returns the keys of the records of topic a read_committed
// reader sees, sorted (see readCommittedRecords).
func (c *cluster) readCommitted(topic string, want int) []string {
	c.t.Helper()
	var keys []string
	for _, r := range c.readCommittedRecords(topic, want) {
		keys = append(keys, string(r.Key))
	}
	sort.Strings(keys)
	return keys
}

// readCommittedRecords returns the records of topic a read_committed reader
// sees: it reads until it has want of them (for at most a minute), then
// until 2s pass without another.
func (c *cluster) readCommittedRecords(topic string, want int) []*kgo.Record {
	c.t.Helper()
	return readCommittedFrom(c.t, append(c.kopts, kgo.ConsumeTopics(topic)), want)
}

func readCommittedFrom(t *testing.T, opts []kgo.Opt, want int) []*kgo.Record {
	t.Helper()
	rd, err := kgo.NewClient(append(opts, kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	var recs []*kgo.Record
	for deadline := time.Now().Add(time.Minute); ; {
		wait := 2 * time.Second
		if len(recs) < want {
			wait = time.Until(deadline)
		}
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		fs := rd.PollFetches(ctx)
		cancel()
		n := 0
		fs.EachRecord(func(r *kgo.Record) { recs = append(recs, r); n++ })
		if n == 0 {
			return recs
		}
	}
}

// Exactly once on kfake: forwards and outputs of handled records become
// visible with the offsets that commit them; a failed call's outputs never.
// (On real TCP: kgo's transaction session waits on a mutex while another
// goroutine sleeps, which a synctest bubble takes for a deadlock.)
func TestExactlyOnce(t *testing.T) {
	{
		c := newClusterOn(t, 2, 2, false)
		c.cfg.ExactlyOnce = true
		const out = "orders.out"
		if _, err := c.adm.CreateTopics(context.Background(), 2, 1, nil, out); err != nil {
			t.Fatal(err)
		}
		c.produce(&kgo.Record{Partition: 0, Key: []byte("ok-0")}, &kgo.Record{Partition: 1, Key: []byte("ok-1")},
			&kgo.Record{Partition: 0, Key: []byte("fail-0")}, &kgo.Record{Partition: 1, Key: []byte("fail-1")})
		var calls counter
		h := consumer.HandlerFunc(func(ctx context.Context, r *kgo.Record) error {
			calls.add(r.Key)
			if err := consumer.Emit(ctx, &kgo.Record{Topic: out, Key: []byte("out-" + string(r.Key))}); err != nil {
				t.Errorf("Emit: %v", err)
			}
			if strings.HasPrefix(string(r.Key), "fail") {
				return errTransient
			}
			return nil
		})
		r := c.start(h, consumer.WithRelay(false))
		kafkatest.WaitFor(t, "every record committed", 100*time.Millisecond, time.Minute, func() bool {
			os, err := c.adm.FetchOffsets(context.Background(), testGroup)
			if err != nil {
				return false
			}
			o0, _ := os.Lookup(testTopic, 0)
			o1, _ := os.Lookup(testTopic, 1)
			return o0.At == 2 && o1.At == 2
		})
		if err := r.stop(); err != nil {
			t.Fatalf("Run: %v", err)
		}
		if got := strings.Join(c.readCommitted(out, 2), ","); got != "out-ok-0,out-ok-1" {
			t.Errorf("outputs seen by a read_committed reader: %s, want out-ok-0,out-ok-1", got)
		}
		if got := strings.Join(c.readCommitted(c.ladder.Steps()[0].Topic, 2), ","); got != "fail-0,fail-1" {
			t.Errorf("tier records seen by a read_committed reader: %s, want fail-0,fail-1", got)
		}
		for _, k := range []string{"ok-0", "ok-1", "fail-0", "fail-1"} {
			if n := calls.get(k); n != 1 {
				t.Errorf("%s handled %d times, want 1", k, n)
			}
		}
	}
}

// Exactly once with the relay in the same process: a record that fails
// once comes back from its tier (read_committed) and is handled; its output
// is visible once, the failed attempt's never.
func TestExactlyOnceThroughTheLadder(t *testing.T) {
	c := newClusterOn(t, 1, 1, false)
	c.cfg.ExactlyOnce = true
	const out = "orders.out"
	if _, err := c.adm.CreateTopics(context.Background(), 1, 1, nil, out); err != nil {
		t.Fatal(err)
	}
	c.produce(&kgo.Record{Key: []byte("flaky")})
	var calls counter
	h := consumer.HandlerFunc(func(ctx context.Context, r *kgo.Record) error {
		n := calls.add(r.Key)
		if err := consumer.Emit(ctx, &kgo.Record{Topic: out, Key: []byte("out-" + strconv.Itoa(n))}); err != nil {
			t.Errorf("Emit: %v", err)
		}
		if n == 1 {
			return errTransient
		}
		return nil
	})
	r := c.start(h)
	kafkatest.WaitFor(t, "the record handled again", 100*time.Millisecond, time.Minute, func() bool { return calls.get("flaky") >= 2 })
	kafkatest.WaitFor(t, "the re-fed record committed", 100*time.Millisecond, time.Minute, func() bool {
		os, err := c.adm.FetchOffsets(context.Background(), testGroup)
		if err != nil {
			return false
		}
		o, _ := os.Lookup(testTopic, 0)
		return o.At == 2 // the record and its re-feed
	})
	if err := r.stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if n := calls.get("flaky"); n != 2 {
		t.Errorf("handled %d times, want 2", n)
	}
	if got := strings.Join(c.readCommitted(out, 1), ","); got != "out-2" {
		t.Errorf("outputs seen by a read_committed reader: %s, want out-2 only", got)
	}
}

// Exactly once, a write refused for good (a forward too large for its tier,
// an output too large for its topic) aborts its transaction once; the next
// does what the refusal decided without handling the record again (the big
// record to the DLQ without its value, the record with the refused output to
// its tier), instead of aborting for ever.
func TestExactlyOnceRefusedWrites(t *testing.T) {
	c := newClusterOn(t, 1, 1, false)
	c.cfg.ExactlyOnce = true
	const out = "orders.out"
	if _, err := c.adm.CreateTopics(context.Background(), 1, 1, nil, out); err != nil {
		t.Fatal(err)
	}
	c.setMaxMessageBytes(c.ladder.Steps()[0].Topic, "100000")
	c.produce(&kgo.Record{Key: []byte("big"), Value: bytes.Repeat([]byte("b"), 200_000)},
		&kgo.Record{Key: []byte("big-output")}, &kgo.Record{Key: []byte("ok")})
	var calls counter
	h := consumer.HandlerFunc(func(ctx context.Context, r *kgo.Record) error {
		calls.add(r.Key)
		switch string(r.Key) {
		case "big":
			return errTransient
		case "big-output":
			// Larger than the producer takes for a topic it knows no limit of.
			return consumer.Emit(ctx, &kgo.Record{Topic: out, Key: r.Key, Value: bytes.Repeat([]byte("o"), 1_100_000)})
		}
		return consumer.Emit(ctx, &kgo.Record{Topic: out, Key: []byte("out-ok")})
	})
	r := c.start(h, consumer.WithRelay(false))
	kafkatest.WaitFor(t, "every record committed", 100*time.Millisecond, time.Minute, func() bool {
		os, err := c.adm.FetchOffsets(context.Background(), testGroup)
		if err != nil {
			return false
		}
		o, _ := os.Lookup(testTopic, 0)
		return o.At == 3
	})
	if err := r.stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if got := strings.Join(c.readCommitted(c.ladder.DLQ(), 1), ","); got != "big" {
		t.Errorf("DLQ seen by a read_committed reader: %s, want big", got)
	}
	if got := strings.Join(c.readCommitted(c.ladder.Steps()[0].Topic, 1), ","); got != "big-output" {
		t.Errorf("tier seen by a read_committed reader: %s, want big-output", got)
	}
	if got := strings.Join(c.readCommitted(out, 1), ","); got != "out-ok" {
		t.Errorf("outputs seen by a read_committed reader: %s, want out-ok", got)
	}
	// The other records of an aborted transaction are handled again; the
	// refused ones not.
	if n := calls.get("big"); n != 1 {
		t.Errorf("big handled %d times, want 1: after the abort the refusal's decision is done without the handler", n)
	}
	if n := calls.get("big-output"); n > 2 {
		t.Errorf("big-output handled %d times, want at most 2 (once more if big's transaction held it)", n)
	}
	if dlq := c.readCommittedRecords(c.ladder.DLQ(), 1); len(dlq) == 1 {
		md, _, err := headers.Decode(dlq[0].Headers)
		if err != nil || md.Reason != headers.ReasonTooLarge || len(dlq[0].Value) != 0 {
			t.Errorf("DLQ record: reason %q, %d value bytes, err %v; want too-large without its value", md.Reason, len(dlq[0].Value), err)
		}
	}
}

// Exactly once, an end of transaction that fails (here every EndTxn
// request closes its connection, 8 times: four transactions in a row, each
// ended and aborted, kept from handing out records between them only by the
// hold's pause, since the fake's coordinator answers) leaves kgo
// holding the transaction open: the consumer aborts it, retrying, and goes
// on, instead of stopping Run when the next transaction cannot begin
// ("already in a transaction"), as it did after a broker restart.
func TestExactlyOnceEndFailureIsRetried(t *testing.T) {
	c := newClusterOn(t, 1, 1, false)
	c.cfg.ExactlyOnce = true
	var ends atomic.Int32
	c.fake.ControlKey(int16(kmsg.EndTxn), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.fake.KeepControl()
		if ends.Add(1) > 8 {
			return nil, nil, false
		}
		return nil, errors.New("connection lost"), true
	})
	c.produce(&kgo.Record{Key: []byte("a")})
	var calls counter
	r := c.start(consumer.HandlerFunc(func(_ context.Context, r *kgo.Record) error {
		calls.add(r.Key)
		return errTransient
	}), consumer.WithRelay(false))
	kafkatest.WaitFor(t, "the record committed", 100*time.Millisecond, 2*time.Minute, func() bool {
		os, err := c.adm.FetchOffsets(context.Background(), testGroup)
		if err != nil {
			return false
		}
		o, _ := os.Lookup(testTopic, 0)
		return o.At == 1
	})
	if err := r.stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if got := strings.Join(c.readCommitted(c.ladder.Steps()[0].Topic, 1), ","); got != "a" {
		t.Errorf("tier seen by a read_committed reader: %s, want a once", got)
	}
}

// Exactly once with a backlog: a transaction hands out about what its
// workers do in a commit interval, not everything it can fetch in one.
// Every record handed out must be done before the transaction ends, and an
// abort hands them all out again: here 4,000 records wait and the handler
// does about 1,000 a second; the first transaction handed out and committed
// all 4,000 (4s of handling in one transaction), now about 2,000.
func TestExactlyOnceTransactionHoldsAboutACommitIntervalOfWork(t *testing.T) {
	c := newClusterOn(t, 1, 1, false)
	c.cfg.ExactlyOnce = true
	const n = 4000
	recs := make([]*kgo.Record, n)
	for i := range recs {
		recs[i] = &kgo.Record{Key: []byte(strconv.Itoa(i))}
	}
	c.produce(recs...)
	r := c.start(consumer.HandlerFunc(func(context.Context, *kgo.Record) error {
		time.Sleep(time.Millisecond)
		return nil
	}), consumer.WithRelay(false))
	var first int64
	kafkatest.WaitFor(t, "every record committed", 20*time.Millisecond, 2*time.Minute, func() bool {
		os, err := c.adm.FetchOffsets(context.Background(), testGroup)
		if err != nil {
			return false // the group is not there yet
		}
		o, _ := os.Lookup(testTopic, 0)
		at := max(o.At, 0)
		if first == 0 {
			first = at
		}
		return at == n
	})
	if err := r.stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if first > n*3/4 {
		t.Errorf("the first transaction committed %d records, want about 2,000 (what the handler does in a commit interval, and what it was handed while it polled), at most %d", first, n*3/4)
	}
}

// Exactly once: after a transaction end that failed, the hold asks the
// coordinators once before the next transaction, whose commit ends the row;
// none is asked before the failure nor after. (The probe's DescribeGroups
// is counted: a commit describes the transaction too, awaitPreviousTxn.)
func TestExactlyOnceHoldProbesOncePerFailure(t *testing.T) {
	c := newClusterOn(t, 1, 1, false)
	c.cfg.ExactlyOnce = true
	var ends, probes atomic.Int32
	c.fake.ControlKey(int16(kmsg.EndTxn), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.fake.KeepControl()
		if ends.Add(1) > 2 { // the end and its abort
			return nil, nil, false
		}
		return nil, errors.New("connection lost"), true
	})
	c.fake.ControlKey(int16(kmsg.DescribeGroups), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.fake.KeepControl()
		probes.Add(1)
		return nil, nil, false
	})
	c.produce(&kgo.Record{Key: []byte("a")})
	r := c.start(consumer.HandlerFunc(func(context.Context, *kgo.Record) error { return errTransient }), consumer.WithRelay(false))
	kafkatest.WaitFor(t, "the record committed", 100*time.Millisecond, time.Minute, func() bool {
		os, err := c.adm.FetchOffsets(context.Background(), testGroup)
		if err != nil {
			return false
		}
		o, _ := os.Lookup(testTopic, 0)
		return o.At == 1
	})
	time.Sleep(3 * time.Second) // idle: empty transactions, which probe nothing
	if err := r.stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if ends.Load() < 2 {
		t.Fatalf("%d EndTxn requests, want the failed one and more", ends.Load())
	}
	if n := probes.Load(); n != 1 {
		t.Errorf("the coordinators were probed %d times after one failed transaction end, want once", n)
	}
}
