//go:build integration

package consumer_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/config"
	"github.com/kretry/kretry/consumer"
	"github.com/kretry/kretry/headers"
	"github.com/kretry/kretry/internal/kafkatest"
	"github.com/kretry/kretry/ladder"
	"github.com/kretry/kretry/topics"
)

// run runs a Consumer on b's config until the test's cleanup.
func (b *realBroker) run(h consumer.Handler, opts ...consumer.Opt) func() error {
	b.t.Helper()
	cons, err := consumer.New(b.cfg, h, opts...)
	if err != nil {
		b.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- cons.Run(ctx) }()
	var once sync.Once
	var runErr error
	stop := func() error {
		once.Do(func() { cancel(); runErr = <-errc })
		return runErr
	}
	b.t.Cleanup(func() { stop() })
	return stop
}

// seenCall is one handler call on the real broker.
type seenCall struct {
	at time.Time
	md headers.Metadata
}

type seenCalls struct {
	mu sync.Mutex
	by map[string][]seenCall
}

func (s *seenCalls) add(t *testing.T, r *kgo.Record) int {
	md, _, err := headers.Decode(r.Headers)
	if err != nil {
		t.Errorf("unreadable kretry headers: %v", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.by == nil {
		s.by = map[string][]seenCall{}
	}
	s.by[string(r.Key)] = append(s.by[string(r.Key)], seenCall{time.Now(), md})
	return len(s.by[string(r.Key)])
}

func (s *seenCalls) get(key string) []seenCall {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]seenCall(nil), s.by[key]...)
}

// RetryAfter on the real broker (ladder 1s, 2s, 3s): 1.5s lands in retry-2s
// as its attempt (2) due 1.5s after the failure; 10s lands in the last tier,
// retry-3s (attempt 3), due 10s after the failure, past the tier's delay (the
// in-process relay re-parks it in retry-3s every 3s); neither is re-fed
// before its due time.
func TestRetryAfterOnRealBroker(t *testing.T) {
	verifyNoLeaks(t)
	b := newRealBroker(t, 2)
	after := map[string]time.Duration{"a": 1500 * time.Millisecond, "b": 10 * time.Second}
	var seen seenCalls
	h := consumer.HandlerFunc(func(_ context.Context, r *kgo.Record) error {
		if seen.add(t, r) == 1 {
			return consumer.RetryAfter(errTransient, after[string(r.Key)])
		}
		return nil
	})
	stop := b.run(h)
	b.produceSync(&kgo.Record{Topic: b.ladder.Topic(), Partition: 0, Key: []byte("a")},
		&kgo.Record{Topic: b.ladder.Topic(), Partition: 1, Key: []byte("b")})
	waitReal(t, 60*time.Second, "both records handled twice", func() bool {
		return len(seen.get("a")) == 2 && len(seen.get("b")) == 2
	})
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	for _, c := range []struct {
		key      string
		tier     string
		attempts int
		wait     time.Duration
	}{
		{"a", "retry-2s", 2, 1500 * time.Millisecond},
		{"b", "retry-3s", 3, 10 * time.Second},
	} {
		got := seen.get(c.key)
		md := got[1].md
		if md.Tier != c.tier || md.Attempts != c.attempts {
			t.Errorf("%s: re-fed from %q with kretry-attempts %d, want %q and %d", c.key, md.Tier, md.Attempts, c.tier, c.attempts)
		}
		if d := md.DueAt.Sub(md.LastFailureAt); d != c.wait {
			t.Errorf("%s: due %v after its failure, want %v", c.key, d, c.wait)
		}
		// Due times have millisecond precision.
		if got[1].at.Before(md.DueAt.Add(-time.Millisecond)) {
			t.Errorf("%s: handled at %v, before its due time %v", c.key, got[1].at, md.DueAt)
		}
		t.Logf("%s: Retry-After %v, re-fed from %s %v after the failure (due after %v)", c.key, after[c.key], md.Tier,
			got[1].at.Sub(md.LastFailureAt).Round(time.Millisecond), c.wait)
	}
	if n := len(b.readAll(b.ladder.DLQ())); n != 0 {
		t.Errorf("the DLQ holds %d records, want 0", n)
	}
	b.checkCommittedToEnd(b.cfg.Group, b.ladder.Topic())
}

func (b *realBroker) produceSync(recs ...*kgo.Record) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := b.cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		b.t.Fatalf("produce: %v", err)
	}
}

// A backoff ladder on the real broker: backoff {initial 500ms, multiplier 2,
// max 1s, attempts 3, jitter 0.5} is the tiers 500ms and 1s ×2, which
// topics.Plan and Apply create (as `kretry topics apply` does); a record that
// always fails walks them into the DLQ, each wait jittered within
// [delay × 0.5, delay] and never re-fed before its due time.
func TestBackoffLadderOnRealBroker(t *testing.T) {
	verifyNoLeaks(t)
	seeds := kafkatest.Brokers(t)
	cfg := &config.Config{Brokers: seeds, Group: kafkatest.Name(t, "g"), Topics: []config.Topic{{
		Name:    kafkatest.Name(t, "orders"),
		Backoff: &ladder.Backoff{Initial: 500 * time.Millisecond, Multiplier: 2, Max: time.Second, Attempts: 3, Jitter: 0.5},
	}}}
	cfg.SetDefaults()
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	main := cfg.Topics[0].Name
	if _, err := adm.CreateTopic(ctx, 2, 1, nil, main); err != nil {
		t.Fatal(err)
	}
	kafkatest.WaitTopics(t, adm, main)
	ps, err := cfg.Provisions()
	if err != nil {
		t.Fatal(err)
	}
	l := ps[0].Ladder
	var created []string
	for _, s := range l.Steps() {
		created = append(created, s.Topic)
	}
	created = append(created, l.DLQ())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		adm.DeleteTopics(ctx, append([]string{main}, created...)...)
		adm.DeleteGroups(ctx, cfg.Group, cfg.Relay.Group)
	})
	plan, err := topics.Plan(ctx, adm, ps)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := topics.Apply(ctx, adm, plan); err != nil {
		t.Fatal(err)
	}
	kafkatest.WaitTopics(t, adm, created...)
	if want := []string{main + ".retry-500ms", main + ".retry-1s", main + ".dlq"}; !slices.Equal(created, want) {
		t.Fatalf("the backoff's topics are %v, want %v", created, want)
	}

	b := &realBroker{t: t, seeds: seeds, cl: cl, adm: adm, cfg: cfg, ladder: l, parts: 2}
	var seen seenCalls
	stop := b.run(consumer.HandlerFunc(func(_ context.Context, r *kgo.Record) error {
		seen.add(t, r)
		return errTransient
	}))
	b.produceSync(&kgo.Record{Topic: main, Partition: 1, Key: []byte("k")})
	waitReal(t, 60*time.Second, "the DLQ record", func() bool { return len(b.readAll(l.DLQ())) == 1 })
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	got := seen.get("k")
	wantTier := []string{"", "retry-500ms", "retry-1s", "retry-1s"}
	wantDelay := []time.Duration{0, 500 * time.Millisecond, time.Second, time.Second}
	if len(got) != 4 {
		t.Fatalf("handled %d times, want 4", len(got))
	}
	for i, c := range got[1:] {
		md := c.md
		if md.Tier != wantTier[i+1] || md.Attempts != i+1 {
			t.Errorf("delivery %d: from %q attempts %d, want %q and %d", i+2, md.Tier, md.Attempts, wantTier[i+1], i+1)
		}
		wait := md.DueAt.Sub(md.LastFailureAt)
		if wait < wantDelay[i+1]/2 || wait > wantDelay[i+1] {
			t.Errorf("delivery %d: due %v after its failure, outside [%v, %v]", i+2, wait, wantDelay[i+1]/2, wantDelay[i+1])
		}
		if c.at.Before(md.DueAt.Add(-time.Millisecond)) {
			t.Errorf("delivery %d at %v, before its due time %v", i+2, c.at, md.DueAt)
		}
		t.Logf("delivery %d from %s: due %v after its failure (tier delay %v), handled %v after it",
			i+2, md.Tier, wait, wantDelay[i+1], c.at.Sub(md.LastFailureAt).Round(time.Millisecond))
	}
	dlq, err := headersOf(b.readAll(l.DLQ())[0])
	if err != nil || dlq.Reason != headers.ReasonExhausted || dlq.Attempts != 4 {
		t.Errorf("DLQ record: %+v, %v; want exhausted after 4 failures", dlq, err)
	}
}

// retry_in_place on the real broker ({attempts 2, backoff 200ms, max_backoff
// 300ms}): a record failing three calls in a row is called in place after
// 200ms and 300ms, then forwarded to retry-1s as its first failure (with
// kretry-in-place-retries 2), re-fed no earlier than due, handled as
// consumer.Attempt 4; the group is committed to the end.
func TestRetryInPlaceOnRealBroker(t *testing.T) {
	verifyNoLeaks(t)
	b := newRealBroker(t, 2)
	b.cfg.Topics[0].RetryInPlace = &config.RetryInPlace{Attempts: 2, Backoff: 200 * time.Millisecond, MaxBackoff: 300 * time.Millisecond}
	var seen seenCalls
	stop := b.run(consumer.HandlerFunc(func(_ context.Context, r *kgo.Record) error {
		n := seen.add(t, r)
		if a := consumer.Attempt(r); a != n {
			t.Errorf("call %d: consumer.Attempt = %d", n, a)
		}
		if n <= 3 {
			return errTransient
		}
		return nil
	}))
	b.produceSync(&kgo.Record{Topic: b.ladder.Topic(), Partition: 1, Key: []byte("k")})
	waitReal(t, 60*time.Second, "the fourth call", func() bool { return len(seen.get("k")) == 4 })
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	got := seen.get("k")
	for i, want := range []time.Duration{200 * time.Millisecond, 300 * time.Millisecond} {
		if got[i+1].md.Group != "" {
			t.Errorf("call %d carries kretry headers: not in place", i+2)
		}
		if gap := got[i+1].at.Sub(got[i].at); gap < want {
			t.Errorf("call %d came %v after the one before, before its in-place wait %v", i+2, gap, want)
		}
	}
	md := got[3].md
	if md.Tier != "retry-1s" || md.Attempts != 1 || md.InPlaceRetries != 2 {
		t.Errorf("call 4 from %q with kretry-attempts %d, kretry-in-place-retries %d; want retry-1s, 1 and 2", md.Tier, md.Attempts, md.InPlaceRetries)
	}
	if got[3].at.Before(md.DueAt.Add(-time.Millisecond)) {
		t.Errorf("call 4 at %v, before its due time %v", got[3].at, md.DueAt)
	}
	t.Logf("calls after %v and %v in place, then from %s %v after the third failure",
		got[1].at.Sub(got[0].at).Round(time.Millisecond), got[2].at.Sub(got[1].at).Round(time.Millisecond), md.Tier,
		got[3].at.Sub(md.LastFailureAt).Round(time.Millisecond))
	b.checkCommittedToEnd(b.cfg.Group, b.ladder.Topic())
}
