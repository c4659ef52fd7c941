package consumer_test

import (
	"context"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/consumer"
	"github.com/kretry/kretry/internal/kafkatest"
)

// readCommitted returns the keys of the records of topic a read_committed
// reader sees, sorted: it reads until 3s pass without a record.
func (c *cluster) readCommitted(topic string) []string {
	c.t.Helper()
	rd, err := kgo.NewClient(append(c.kopts, kgo.ConsumeTopics(topic), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))...)
	if err != nil {
		c.t.Fatal(err)
	}
	defer rd.Close()
	var keys []string
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		fs := rd.PollFetches(ctx)
		cancel()
		n := 0
		fs.EachRecord(func(r *kgo.Record) { keys = append(keys, string(r.Key)); n++ })
		if n == 0 {
			sort.Strings(keys)
			return keys
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
		if got := strings.Join(c.readCommitted(out), ","); got != "out-ok-0,out-ok-1" {
			t.Errorf("outputs seen by a read_committed reader: %s, want out-ok-0,out-ok-1", got)
		}
		if got := strings.Join(c.readCommitted(c.ladder.Steps()[0].Topic), ","); got != "fail-0,fail-1" {
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
	if got := strings.Join(c.readCommitted(out), ","); got != "out-2" {
		t.Errorf("outputs seen by a read_committed reader: %s, want out-2 only", got)
	}
}
