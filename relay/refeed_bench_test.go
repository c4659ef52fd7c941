package relay

import (
	"context"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/headers"
	"github.com/kretry/kretry/internal/batchlimit"
	"github.com/kretry/kretry/internal/kafkatest"
	"github.com/kretry/kretry/internal/partitions"
	"github.com/kretry/kretry/ladder"
)

// BenchmarkRefeedPoll is the relay's work per re-fed record, one op per
// record: a poll of 8 partitions of tier records with kretry's headers (as
// kgo hands them over: fresh header keys per record) goes through handle,
// is produced to kfake and settled once acknowledged. "due": every record is
// due when polled; "held": none is, so the poll holds them (headers read,
// keys interned) and the next poll re-feeds them from memory when they are,
// as in make bench's B2. kfake's and kgo's work is the same before and after
// a change of the relay: compare ns/op and allocs/op, or the relay's share
// of a -cpuprofile.
func BenchmarkRefeedPoll(b *testing.B) {
	for _, hold := range []bool{false, true} {
		name := "due"
		if hold {
			name = "held"
		}
		b.Run(name, func(b *testing.B) { benchRefeedPoll(b, hold) })
	}
	b.Run("sliding", benchSlidingHold)
}

// cpuTime is the user and system CPU time of the process so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// pollFixture is a session of a relay over one 1s tier of "orders", with
// parts partitions, against kfake, outside Run: tests and benchmarks hand
// polls to its handle. Its producer flushes by hand (Flush).
type pollFixture struct {
	s         *session
	prod      *kgo.Client
	tier      ladder.Step
	parts     int32
	value     []byte
	offset    int64 // of the next tier record
	nextFirst int64 // kretry-original-offset of the next record
	// asWritten: a record's kretry-last-failure-at is its due time less
	// the tier's delay, as a consumer writes it, so that it is held until
	// then however far ahead; otherwise it is the poll's time, and a
	// record due more than the delay later is re-parked at now + delay.
	asWritten bool
}

func newPollFixture(tb testing.TB, parts int32) *pollFixture {
	l, err := ladder.New("orders", "svc", []ladder.Tier{{Delay: time.Second, Attempts: 1}})
	if err != nil {
		tb.Fatal(err)
	}
	tier := l.Steps()[0]
	_, brokers := kafkatest.Fake(tb, kfake.NumBrokers(1), kfake.SeedTopics(parts, "orders", tier.Topic))
	r, err := New([]*ladder.Ladder{l})
	if err != nil {
		tb.Fatal(err)
	}
	prod, err := kgo.NewClient(r.clientOpts(false, nil, kgo.SeedBrokers(brokers...), kgo.ManualFlushing())...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(prod.Close)
	ctx := context.Background()
	// A group consumer that polled a record of every tier partition, so
	// that kgo takes the relay's marks.
	for p := range parts {
		prod.Produce(ctx, &kgo.Record{Topic: tier.Topic, Partition: p}, func(_ *kgo.Record, err error) {
			if err != nil {
				tb.Error(err)
			}
		})
	}
	if err := prod.Flush(ctx); err != nil {
		tb.Fatal(err)
	}
	cons, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumerGroup("relay-fixture"), kgo.ConsumeTopics(tier.Topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.AutoCommitMarks())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(cons.Close)
	for polled := 0; polled < int(parts); {
		fs := cons.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			tb.Fatal(err)
		}
		polled += fs.NumRecords()
	}
	s := &session{r: r, prod: prod, cons: cons, parts: partitions.New(prod, r.cfg.logger, map[string]int32{"orders": parts}), log: r.cfg.logger,
		paused: map[topicPartition]*pause{}, held: map[topicPartition]held{}, holdPaused: map[topicPartition]bool{},
		inflight: map[topicPartition][]*refeed{}, refedIDs: map[topicPartition]*refedIDs{}, failures: map[topicPartition]int{},
		budget: newHoldBudget(r.cfg.holdBytes), hard: ctx, ackc: make(chan struct{}, 1), marks: map[topicPartition]kgo.EpochOffset{},
		limits: &batchlimit.Limits{}}
	tb.Cleanup(s.stop)
	return &pollFixture{s: s, prod: prod, tier: tier, parts: parts, value: []byte(strings.Repeat("v", 256)), offset: 1}
}

// poll returns a poll of perPart new tier records of every partition, due
// at due, with kretry's headers as kgo hands them over: a key string and a
// value slice of their own per record.
func (f *pollFixture) poll(perPart int, due time.Time) kgo.Fetches {
	ft := kgo.FetchTopic{Topic: f.tier.Topic}
	now := time.Now().UTC().Truncate(time.Millisecond)
	for p := range f.parts {
		fp := kgo.FetchPartition{Partition: p}
		for j := range int64(perPart) {
			last := now
			if f.asWritten {
				last = due.Add(-f.tier.Delay).UTC().Truncate(time.Millisecond)
			}
			md := headers.Metadata{Group: "svc", Attempts: 1, Tier: f.tier.Name, DueAt: due.UTC().Truncate(time.Millisecond),
				OriginalTopic: "orders", OriginalPartition: p, OriginalOffset: f.nextFirst, OriginalTimestamp: now,
				FirstFailureAt: now, LastFailureAt: last, Error: "bench: every first delivery fails"}
			hs := headers.Encode(nil, md)
			for i := range hs {
				hs[i].Key, hs[i].Value = strings.Clone(hs[i].Key), []byte(string(hs[i].Value))
			}
			fp.Records = append(fp.Records, &kgo.Record{Topic: f.tier.Topic, Partition: p, Offset: f.offset + j, Value: f.value, Headers: hs})
			f.nextFirst++
		}
		ft.Partitions = append(ft.Partitions, fp)
	}
	f.offset += int64(perPart)
	return kgo.Fetches{{Topics: []kgo.FetchTopic{ft}}}
}

func benchRefeedPoll(b *testing.B, hold bool) {
	const parts, perPart = 8, 500
	f := newPollFixture(b, parts)
	s, prod, ctx := f.s, f.prod, context.Background()
	settled := func() {
		s.settleAll(nil, nil)
		if len(s.held) > 0 || len(s.paused) > 0 {
			b.Fatalf("held %d partitions, paused %d: want every record re-fed", len(s.held), len(s.paused))
		}
	}

	var m meter
	start, stop := func() { m.start(b) }, func() { m.stop(b) }
	b.ReportAllocs()
	b.ResetTimer()
	b.StopTimer()
	heldParts, polls := 0, 0
	for done := 0; done < b.N; done += parts * perPart {
		due := time.Now().Add(-time.Second)
		if hold {
			due = time.Now().Add(150 * time.Millisecond) // time enough to build the poll
		}
		fetches := f.poll(perPart, due)
		polls++
		start()
		s.handle(ctx, fetches)
		if hold {
			// Not all of them on a stalled machine, where some fell due
			// while the poll was built: re-fed at once instead.
			heldParts += len(s.held)
			stop()
			time.Sleep(time.Until(due.Add(2 * time.Millisecond)))
			start()
			s.handle(ctx, nil)
		}
		stop()
		if err := prod.Flush(ctx); err != nil {
			b.Fatal(err)
		}
		start()
		settled()
		stop()
	}
	m.report(b)
	if hold && heldParts < polls*parts/2 {
		b.Fatalf("%d of %d partition polls held their records: the benchmark measures the wrong thing", heldParts, polls*parts)
	}
	if n := s.refedIDs[topicPartition{f.tier.Topic, 0}]; n == nil || len(n.ring) == 0 {
		b.Fatal("nothing re-fed")
	}
}

// meter is the process's CPU time and mallocs in the timed parts of a
// benchmark: steadier than ns/op on a shared machine, and allocs/op to the
// tenth.
type meter struct {
	cpu     time.Duration
	mallocs uint64
	ms      runtime.MemStats
}

func (m *meter) start(b *testing.B) {
	runtime.GC() // of the poll built, and of kfake's work: not timed
	runtime.ReadMemStats(&m.ms)
	m.cpu, m.mallocs = m.cpu-cpuTime(b), m.mallocs-m.ms.Mallocs
	b.StartTimer()
}

func (m *meter) stop(b *testing.B) {
	b.StopTimer()
	runtime.ReadMemStats(&m.ms)
	m.cpu, m.mallocs = m.cpu+cpuTime(b), m.mallocs+m.ms.Mallocs
}

func (m *meter) report(b *testing.B) {
	b.ReportMetric(float64(m.cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
	b.ReportMetric(float64(m.mallocs)/float64(b.N), "mallocs/op")
}

// benchSlidingHold is a steady flow, as in make bench's B2 when the relay
// keeps up: a poll every 10ms brings every partition records due 100ms
// later, and re-feeds from memory those of earlier polls that fell due, so
// that each partition holds about ten polls' records at a time, adding at
// the back of its hold what it re-feeds from the front.
func benchSlidingHold(b *testing.B) {
	const parts, perPart, pace, ahead = 8, 100, 10 * time.Millisecond, 100 * time.Millisecond
	f := newPollFixture(b, parts)
	s, prod, ctx := f.s, f.prod, context.Background()
	var m meter
	b.ReportAllocs()
	b.ResetTimer()
	b.StopTimer()
	holding, polls := 0, 0
	next := time.Now()
	for done := 0; done < b.N; done += parts * perPart {
		time.Sleep(time.Until(next))
		next = next.Add(pace)
		fetches := f.poll(perPart, time.Now().Add(ahead))
		polls++
		m.start(b)
		s.handle(ctx, fetches)
		m.stop(b)
		for _, h := range s.held {
			if len(h.recs) > 2*perPart {
				holding++
			}
		}
		if err := prod.Flush(ctx); err != nil {
			b.Fatal(err)
		}
	}
	time.Sleep(ahead + 5*time.Millisecond)
	m.start(b)
	s.handle(ctx, nil)
	m.stop(b)
	if err := prod.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	m.start(b)
	s.settleAll(nil, nil)
	m.stop(b)
	if len(s.held) > 0 || len(s.paused) > 0 {
		b.Fatalf("held %d partitions, paused %d: want every record re-fed", len(s.held), len(s.paused))
	}
	m.report(b)
	if polls > 20 && holding < polls*parts/2 {
		b.Fatalf("%d of %d partition polls held more than two polls' records: the benchmark measures the wrong thing", holding, polls*parts)
	}
}

// BenchmarkHeldWake is a poll without records while 8 partitions hold
// records not yet due, one op per poll: the wake-ups of a relay that holds
// a burst while re-feeds in flight or earlier heads bring it back to poll.
// The records are held for 5 seconds (not re-parked at the tier's delay of
// 1s), longer than the loop runs.
func BenchmarkHeldWake(b *testing.B) {
	f := newPollFixture(b, 8)
	f.asWritten = true
	s, ctx := f.s, context.Background()
	s.handle(ctx, f.poll(500, time.Now().Add(5*time.Second)))
	if len(s.held) != 8 {
		b.Fatalf("%d partitions hold records, want 8", len(s.held))
	}
	b.ReportAllocs()
	for b.Loop() {
		s.handle(ctx, nil)
	}
	if len(s.held) != 8 {
		b.Fatalf("%d partitions hold records, want 8", len(s.held))
	}
}
