//go:build integration

package consumer_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/goleak"

	"github.com/kretry/kretry/config"
	"github.com/kretry/kretry/consumer"
	"github.com/kretry/kretry/headers"
	"github.com/kretry/kretry/internal/kafkatest"
	"github.com/kretry/kretry/internal/metrics"
	"github.com/kretry/kretry/ladder"
)

// realBroker is a main topic with a 1s/2s/3s ladder on the real broker.
type realBroker struct {
	t      *testing.T
	seeds  []string
	cl     *kgo.Client // producer with manual partitions, and admin
	adm    *kadm.Client
	cfg    *config.Config
	ladder *ladder.Ladder
	parts  int32
}

func newRealBroker(t *testing.T, parts int32) *realBroker {
	t.Helper()
	return newRealBrokerAt(t, kafkatest.Brokers(t), parts)
}

// newRealBrokerAt is newRealBroker on the brokers of seeds.
func newRealBrokerAt(t *testing.T, seeds []string, parts int32) *realBroker {
	t.Helper()
	cfg := &config.Config{
		Brokers: seeds,
		Group:   kafkatest.Name(t, "g"),
		Topics: []config.Topic{{
			Name:  kafkatest.Name(t, "orders"),
			Tiers: []ladder.Tier{{Delay: time.Second, Attempts: 1}, {Delay: 2 * time.Second, Attempts: 1}, {Delay: 3 * time.Second, Attempts: 1}},
		}},
	}
	cfg.Relay = config.Relay{Group: cfg.Group + "-relay", FetchMaxWait: 100 * time.Millisecond}
	ladders, err := cfg.Ladders()
	if err != nil {
		t.Fatal(err)
	}
	l := ladders[0]
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	adm := kadm.NewClient(cl)
	topics := []string{l.Topic(), l.DLQ()}
	for _, s := range l.Steps() {
		topics = append(topics, s.Topic)
	}
	ctx := context.Background()
	resp, err := adm.CreateTopics(ctx, parts, 1, nil, topics...)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		t.Fatalf("create topics: %v", err)
	}
	kafkatest.WaitTopics(t, adm, topics...)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		adm.DeleteTopics(ctx, topics...)
		adm.DeleteGroups(ctx, cfg.Group, cfg.Relay.Group)
	})
	return &realBroker{t: t, seeds: seeds, cl: cl, adm: adm, cfg: cfg, ladder: l, parts: parts}
}

// readAll reads every record of topic.
func (b *realBroker) readAll(topic string) []*kgo.Record {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ends, err := b.adm.ListEndOffsets(ctx, topic)
	if err != nil {
		b.t.Fatal(err)
	}
	want := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			want[o.Partition] = o.Offset
		}
	})
	if len(want) == 0 {
		return nil
	}
	rd, err := kgo.NewClient(kgo.SeedBrokers(b.seeds...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		b.t.Fatal(err)
	}
	defer rd.Close()
	var out []*kgo.Record
	for len(want) > 0 {
		fs := rd.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			b.t.Fatalf("read %s: %v", topic, err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			out = append(out, r)
			if r.Offset+1 >= want[r.Partition] {
				delete(want, r.Partition)
			}
		})
	}
	return out
}

// dropPanics leaves out the consumer's log lines about recovered panics.
type dropPanics struct{ slog.Handler }

func (d dropPanics) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == "kretry handler panicked" {
		return nil
	}
	return d.Handler.Handle(ctx, r)
}

// waitStable waits until every group has members and is Stable.
func (b *realBroker) waitStable(groups ...string) {
	b.t.Helper()
	waitReal(b.t, 30*time.Second, "stable groups", func() bool {
		ds, err := b.adm.DescribeGroups(context.Background(), groups...)
		if err != nil {
			return false
		}
		for _, g := range groups {
			if d := ds[g]; d.Err != nil || d.State != "Stable" || len(d.Members) == 0 {
				return false
			}
		}
		return true
	})
}

// checkCommittedToEnd checks that group has committed every partition of
// topic to its end offset.
func (b *realBroker) checkCommittedToEnd(group, topic string) {
	b.t.Helper()
	ctx := context.Background()
	ends, err := b.adm.ListEndOffsets(ctx, topic)
	if err != nil {
		b.t.Fatal(err)
	}
	committed, err := b.adm.FetchOffsets(ctx, group)
	if err != nil {
		b.t.Fatal(err)
	}
	ends.Each(func(o kadm.ListedOffset) {
		c, _ := committed.Lookup(topic, o.Partition)
		if o.Offset > 0 && c.At != o.Offset {
			b.t.Errorf("group %s: %s[%d] committed at %d, end offset %d", group, topic, o.Partition, c.At, o.Offset)
		}
	})
}

// verifyNoLeaks checks, after every other cleanup of the test, that no
// goroutine started during the test is left.
func verifyNoLeaks(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
}

// waitReal polls cond every 100ms for up to limit of real time: a bound on
// how long the test may hang, not a speed check.
func waitReal(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("still waiting for %s after %v", what, limit)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Outcomes of the ladder test, by record index mod 10.
func outcome(i int) string {
	switch i % 10 {
	case 5:
		return "fail-once"
	case 6:
		return "fail-twice"
	case 7:
		return "permanent"
	case 8:
		return "always-fail"
	case 9:
		return "panic"
	}
	return "ok"
}

// The whole ladder on the real broker: every record ends handled or in the
// DLQ, exactly once in the DLQ with key, value and user headers intact, the
// group is committed to the end, and re-feeds are never early.
func TestLadderOnRealBroker(t *testing.T) {
	verifyNoLeaks(t)
	b := newRealBroker(t, 4)
	const n = 1200
	recs := make([]*kgo.Record, n)
	for i := range recs {
		v := make([]byte, 64)
		rand.Read(v)
		recs[i] = &kgo.Record{
			Topic: b.ladder.Topic(), Partition: int32(i) % b.parts,
			Key: []byte("k-" + strconv.Itoa(i)), Value: v,
			Headers: []kgo.RecordHeader{{Key: "idx", Value: []byte(strconv.Itoa(i))}, {Key: "bin", Value: []byte{0, 1, 0xff}}, {Key: "empty"}},
		}
	}

	var mu sync.Mutex
	attempts := map[int]int{}
	okAt := map[int]int{} // successful handles
	// lateness = handler time - kretry-due-at, split at the re-fed record's
	// timestamp (stamped by the relay's producer) into the relay's part and
	// the main consumer's pickup.
	var lateness, relayPart, pickup []time.Duration
	var early []string
	h := consumer.HandlerFunc(func(_ context.Context, r *kgo.Record) error {
		seen := time.Now()
		i, err := strconv.Atoi(string(r.Key[2:]))
		if err != nil {
			return consumer.Permanent(err)
		}
		md, _, err := headers.Decode(r.Headers)
		if err != nil {
			return consumer.Permanent(err)
		}
		mu.Lock()
		attempts[i]++
		a := attempts[i]
		if md.Group != "" {
			lateness = append(lateness, seen.Sub(md.DueAt))
			relayPart = append(relayPart, r.Timestamp.Sub(md.DueAt))
			pickup = append(pickup, seen.Sub(r.Timestamp))
			// DueAt has millisecond precision.
			if seen.Before(md.DueAt.Add(-time.Millisecond)) {
				early = append(early, fmt.Sprintf("%d: seen %v before due %v", i, seen, md.DueAt))
			}
		}
		mu.Unlock()
		switch outcome(i) {
		case "fail-once":
			if a <= 1 {
				return errTransient
			}
		case "fail-twice":
			if a <= 2 {
				return errTransient
			}
		case "permanent":
			return consumer.Permanent(errors.New("permanent failure"))
		case "always-fail":
			return fmt.Errorf("attempt %d: %w", a, errTransient)
		case "panic":
			panic("handler panic " + strconv.Itoa(i))
		}
		mu.Lock()
		okAt[i]++
		mu.Unlock()
		return nil
	})
	reg := prometheus.NewRegistry()
	// Errors such as failed forwards show; the 120 expected panics do not.
	logger := slog.New(dropPanics{slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})})
	cons, err := consumer.New(b.cfg, h, consumer.WithRegisterer(reg), consumer.WithLogger(logger))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- cons.Run(ctx) }()
	// Lateness is measured in the steady state: a new group's first join
	// waits group.initial.rebalance.delay.ms (3s by default) on the broker.
	b.waitStable(b.cfg.Group, b.cfg.Relay.Group)
	start := time.Now()
	if err := b.cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}

	m, err := metrics.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	wantDLQ := 0
	for i := range n {
		switch outcome(i) {
		case "permanent", "always-fail", "panic":
			wantDLQ++
		}
	}
	done := func() bool {
		mu.Lock()
		defer mu.Unlock()
		for i := range n {
			switch outcome(i) {
			case "ok", "fail-once", "fail-twice":
				if okAt[i] == 0 {
					return false
				}
			}
		}
		return metricValue(t, m.Records.WithLabelValues(b.ladder.Topic(), metrics.OutcomeDeadLettered)) >= float64(wantDLQ)
	}
	waitReal(t, 90*time.Second, "every record's outcome", done)
	took := time.Since(start)
	cancel()
	if err := <-errc; err != nil {
		t.Fatalf("Run: %v", err)
	}

	// Every DLQ-bound record is in the DLQ exactly once, intact.
	dlq := map[int][]*kgo.Record{}
	for _, r := range b.readAll(b.ladder.DLQ()) {
		i, _ := strconv.Atoi(string(r.Key[2:]))
		dlq[i] = append(dlq[i], r)
	}
	for i, orig := range recs {
		got := dlq[i]
		switch o := outcome(i); o {
		case "permanent", "always-fail", "panic":
			if len(got) != 1 {
				t.Errorf("record %d (%s) is %d times in the DLQ, want once", i, o, len(got))
				continue
			}
			d := got[0]
			if !bytes.Equal(d.Key, orig.Key) || !bytes.Equal(d.Value, orig.Value) {
				t.Errorf("record %d: DLQ key/value differ from the produced ones", i)
			}
			if g, w := userHeaders(d.Headers), userHeaders(orig.Headers); g != w {
				t.Errorf("record %d: DLQ user headers %s, want %s", i, g, w)
			}
			md, _, err := headers.Decode(d.Headers)
			if err != nil {
				t.Errorf("record %d: DLQ headers: %v", i, err)
				continue
			}
			wantReason, wantAttempts := map[string]headers.Reason{
				"permanent": headers.ReasonPermanent, "always-fail": headers.ReasonExhausted, "panic": headers.ReasonPanic,
			}[o], map[string]int{"permanent": 1, "always-fail": 4, "panic": 1}[o]
			if md.Reason != wantReason || md.Attempts != wantAttempts || md.OriginalPartition != orig.Partition ||
				md.OriginalOffset != orig.Offset || md.OriginalTopic != orig.Topic {
				t.Errorf("record %d (%s): DLQ metadata %+v", i, o, md)
			}
		default:
			if len(got) != 0 {
				t.Errorf("record %d (%s) is in the DLQ", i, o)
			}
		}
	}
	b.checkCommittedToEnd(b.cfg.Group, b.ladder.Topic())
	for _, s := range b.ladder.Steps() {
		b.checkCommittedToEnd(b.cfg.Relay.Group, s.Topic)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, e := range early {
		t.Errorf("re-fed early: %s", e)
	}
	if len(lateness) == 0 {
		t.Fatal("no re-fed record was handled")
	}
	t.Logf("%d records, %d re-feeds handled in %v", n, len(lateness), took.Round(time.Millisecond))
	for _, l := range []struct {
		name string
		d    []time.Duration
	}{
		{"re-feed lateness (handler time - kretry-due-at)", lateness},
		{"  of which relay (re-fed record's timestamp - kretry-due-at)", relayPart},
		{"  of which main consumer pickup (handler time - re-fed record's timestamp)", pickup},
	} {
		slices.Sort(l.d)
		pct := func(p float64) time.Duration { return l.d[int(p*float64(len(l.d)-1))].Round(time.Millisecond) }
		t.Logf("%s: p50 %v, p99 %v, max %v", l.name, pct(0.5), pct(0.99), pct(1))
	}
}

// A consumer process killed (SIGKILL) after it forwarded records loses nothing: the next consumer of the group handles again whatever was not
// committed. Duplicates are expected and counted.
func TestCrashLosesNothing(t *testing.T) {
	verifyNoLeaks(t)
	b := newRealBroker(t, 4)
	const n = 400
	recs := make([]*kgo.Record, n)
	for i := range recs {
		recs[i] = &kgo.Record{Topic: b.ladder.Topic(), Partition: int32(i) % b.parts, Key: []byte("k-" + strconv.Itoa(i))}
	}
	if err := b.cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	okAt := map[int]int{}     // successful handles, by record
	failedAt := map[int]int{} // failed first deliveries, by record
	note := func(line string) {
		what, i, _ := strings.Cut(line, " ")
		n, _ := strconv.Atoi(i)
		mu.Lock()
		defer mu.Unlock()
		if what == "fail" {
			failedAt[n]++
		} else {
			okAt[n]++
		}
	}

	// A, a process of its own: forwards some records, then is killed
	// (SIGKILL). It commits every 250ms, so the kill falls between commits.
	a := startCrashChild(t, crashSpec{Config: b.cfg, Handler: "fail-even-once", CommitEvery: 250 * time.Millisecond}, note)
	tier := b.ladder.Steps()[0].Topic
	waitReal(t, 60*time.Second, "A's forwards", func() bool {
		ends, err := b.adm.ListEndOffsets(context.Background(), tier)
		var sum int64
		ends.Each(func(o kadm.ListedOffset) { sum += o.Offset })
		return err == nil && sum >= 40
	})
	a.kill()
	mu.Lock()
	handledByA := len(okAt) + len(failedAt)
	mu.Unlock()

	// B finishes the work.
	bCons, err := consumer.New(b.cfg, failEvenOnce(crashSpec{}, note))
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	ctx, cancel := context.WithCancel(context.Background())
	go func() { errc <- bCons.Run(ctx) }()
	waitReal(t, 60*time.Second, "every record handled", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(okAt) == n
	})
	cancel()
	if err := <-errc; err != nil {
		t.Fatalf("B's Run: %v", err)
	}

	mu.Lock()
	defer mu.Unlock()
	dupOK, dupFail := 0, 0
	for i := range n {
		if okAt[i] == 0 {
			t.Errorf("record %d was never handled successfully", i)
		}
		dupOK += max(okAt[i]-1, 0)
		dupFail += max(failedAt[i]-1, 0)
	}
	forwards := map[string]int{}
	for _, r := range b.readAll(tier) {
		forwards[string(r.Key)]++
	}
	dupForward := 0
	for i := 0; i < n; i += 2 {
		if forwards["k-"+strconv.Itoa(i)] == 0 {
			t.Errorf("failing record %d was never forwarded", i)
		}
		dupForward += max(forwards["k-"+strconv.Itoa(i)]-1, 0)
	}
	b.checkCommittedToEnd(b.cfg.Group, b.ladder.Topic())
	t.Logf("crash after A handled %d records: duplicates: %d successful handles, %d failed first deliveries, %d forwards to %s",
		handledByA, dupOK, dupFail, dupForward, tier)
}

// failEvenOnce fails the first delivery of the even records (keys "k-<i>"),
// noting "fail <i>" for each failure and "ok <i>" for each success.
func failEvenOnce(_ crashSpec, note func(string)) consumer.Handler {
	return consumer.HandlerFunc(func(_ context.Context, r *kgo.Record) error {
		i, _ := strconv.Atoi(string(r.Key[2:]))
		md, _, _ := headers.Decode(r.Headers)
		time.Sleep(5 * time.Millisecond)
		if i%2 == 0 && md.Group == "" {
			note("fail " + strconv.Itoa(i))
			return errTransient
		}
		note("ok " + strconv.Itoa(i))
		return nil
	})
}
