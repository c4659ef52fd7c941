package consumer

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/headers"
)

// A forward's record, header slice and value buffer are reused for later
// forwards once acknowledged: what a reader of the tier reads is still what
// each forward wrote, record by record (key, value, user headers and every
// kretry header), with errors and user headers of every size, so that a
// reused buffer both fits and must grow.
func TestRecycledForwardKeepsWhatWasProduced(t *testing.T) {
	fake, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(8, "t", "t.retry-5s", "t.dlq"))
	if err != nil {
		t.Fatal(err)
	}
	defer fake.Close()
	errText := func(offset int64) string {
		return fmt.Sprintf("fail %d %s", offset, strings.Repeat("x", int(offset*7919%300)))
	}
	w := benchWorkerOn(t, fake, HandlerFunc(func(_ context.Context, r *kgo.Record) error {
		return errors.New(errText(r.Offset))
	}))
	stop := time.AfterFunc(time.Minute, w.cancel) // fail, not hang
	defer stop.Stop()
	const n = 3000
	recs := make([]*kgo.Record, n)
	for i := range recs {
		off := int64(i)
		r := &kgo.Record{Topic: "t", Partition: 0, Offset: off, Key: []byte("k" + strconv.Itoa(i)),
			Value: []byte(strings.Repeat(strconv.Itoa(i), 1+i%40)), Timestamp: time.Now()}
		for j := range i % 4 {
			r.Headers = append(r.Headers, kgo.RecordHeader{Key: fmt.Sprintf("u%d", j), Value: []byte(strings.Repeat("v", i%50))})
		}
		recs[i] = r
	}
	want := make([]kgo.Record, n) // what arrived, before the worker touches it
	for i, r := range recs {
		want[i] = *r
	}
	for i := 0; i < n; i += 500 {
		w.enqueue(recs[i : i+500])
		for range 500 {
			rec, ok := w.next()
			if !ok || !w.process(rec) || !w.settle(false) {
				t.Fatal("worker stopped")
			}
		}
	}
	if !w.settle(true) {
		t.Fatal("worker stopped")
	}
	if f, _ := w.s.c.forwards.Get().(*pendingForward); f == nil && len(w.free) == 0 {
		t.Fatal("no forward was recycled: the test shows nothing")
	}

	cl, err := kgo.NewClient(kgo.SeedBrokers(fake.ListenAddrs()...),
		kgo.ConsumeTopics("t.retry-5s"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	seen := make([]bool, n)
	for got := 0; got < n; {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("read %d of %d forwards: %v", got, n, err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			got++
			md, ok, err := headers.Decode(r.Headers)
			if !ok || err != nil {
				t.Fatalf("forward at %d: kretry headers %v, %v", r.Offset, ok, err)
			}
			i := md.OriginalOffset
			if i < 0 || i >= n || seen[i] {
				t.Fatalf("forward at %d: kretry-original-offset %d out of range or seen twice", r.Offset, i)
			}
			seen[i] = true
			src := &want[i]
			if md.Error != errText(i) || md.Attempts != 1 || md.Tier != "retry-5s" || md.OriginalTopic != "t" {
				t.Fatalf("forward of offset %d: metadata %+v, want error %q", i, md, errText(i))
			}
			if string(r.Key) != string(src.Key) || string(r.Value) != string(src.Value) {
				t.Fatalf("forward of offset %d: key %q value %q, want %q %q", i, r.Key, r.Value, src.Key, src.Value)
			}
			// Byte for byte what Encode writes for this record.
			wantHs := headers.Encode(src.Headers, md)
			if len(r.Headers) != len(wantHs) {
				t.Fatalf("forward of offset %d: %d headers, want %d", i, len(r.Headers), len(wantHs))
			}
			for j, h := range r.Headers {
				if h.Key != wantHs[j].Key || string(h.Value) != string(wantHs[j].Value) {
					t.Fatalf("forward of offset %d: header %d is %s=%q, want %s=%q", i, j, h.Key, h.Value, wantHs[j].Key, wantHs[j].Value)
				}
			}
		})
	}
}

// A worker that has returned keeps none of the forwards it recycled: they
// are in the consumer's pool, which the GC trims.
func TestWorkerKeepsNoFreeForwardsOnceStopped(t *testing.T) {
	fail := errors.New("fail")
	w := benchWorker(t, HandlerFunc(func(context.Context, *kgo.Record) error { return fail }))
	stop := time.AfterFunc(time.Minute, w.cancel) // fail, not hang
	defer stop.Stop()
	w.enqueue(benchRecords(300))
	for range 300 {
		rec, ok := w.next()
		if !ok || !w.process(rec) || !w.settle(false) {
			t.Fatal("worker stopped")
		}
	}
	if !w.settle(true) || len(w.free) == 0 {
		t.Fatalf("%d free forwards after 300 acknowledged: the test shows nothing", len(w.free))
	}
	go w.run()
	w.stop(time.Minute)
	w.wait()
	if len(w.free) != 0 {
		t.Errorf("a stopped worker keeps %d free forwards, want 0", len(w.free))
	}
	if f, _ := w.s.c.forwards.Get().(*pendingForward); f == nil {
		t.Error("no forward in the consumer's pool after the worker stopped")
	}
}
