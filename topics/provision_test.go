package topics_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/internal/kafkatest"
	"github.com/kretry/kretry/ladder"
	"github.com/kretry/kretry/topics"
)

const day = 24 * time.Hour

func TestTierRetention(t *testing.T) {
	for _, tc := range []struct {
		delay, want time.Duration
	}{
		{5 * time.Second, day},
		{10 * time.Minute, day},
		{12 * time.Hour, day},
		{13 * time.Hour, 26 * time.Hour},
		{3 * day, 6 * day},
	} {
		if got := topics.TierRetention(tc.delay); got != tc.want {
			t.Errorf("TierRetention(%v) = %v, want %v", tc.delay, got, tc.want)
		}
	}
}

func TestFormatRetention(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{
		{topics.Unlimited, "unlimited"},
		{day, "1d"},
		{14 * day, "14d"},
		{26 * time.Hour, "1d2h"},
		{time.Hour, "1h"},
		{90 * time.Minute, "1h30m"},
	} {
		if got := topics.FormatRetention(tc.d); got != tc.want {
			t.Errorf("FormatRetention(%v) = %q, want %q", tc.d, got, tc.want)
		}
	}
}

// provisionFixture is a kfake cluster holding the main topic (3 partitions)
// of a ladder with tiers 5s, 1m and 30h.
type provisionFixture struct {
	ctx    context.Context
	adm    *kadm.Client
	ladder *ladder.Ladder
	main   string
	mainRF int
}

func newProvisionFixture(t *testing.T, opts ...kfake.Opt) *provisionFixture {
	t.Helper()
	main := kafkatest.Name(t, "orders")
	_, seeds := kafkatest.Fake(t, append(opts, kfake.SeedTopics(3, main))...)
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	l, err := ladder.New(main, "g", []ladder.Tier{
		{Delay: 5 * time.Second}, {Delay: time.Minute}, {Delay: 30 * time.Hour, Attempts: 2},
	})
	if err != nil {
		t.Fatal(err)
	}
	f := &provisionFixture{ctx: t.Context(), adm: kadm.NewClient(cl), ladder: l, main: main}
	td, err := f.adm.ListTopics(f.ctx, main)
	if err != nil || td[main].Err != nil {
		t.Fatalf("list main topic: %v %v", err, td[main].Err)
	}
	f.mainRF = td[main].Partitions.NumReplicas()
	return f
}

// wanted are the topics of the fixture's ladder with the retention each
// should have, by default.
func (f *provisionFixture) wanted() map[string]time.Duration {
	return map[string]time.Duration{
		f.main + ".retry-5s":  day,
		f.main + ".retry-1m":  day,
		f.main + ".retry-30h": 60 * time.Hour,
		f.main + ".dlq":       14 * day,
	}
}

// topic reads a topic's partitions, replication factor and retention.ms with
// kadm, independently of the code under test.
func (f *provisionFixture) topic(t *testing.T, name string) (parts, rf int, retentionMs int64) {
	t.Helper()
	// WithAuthorizedOps: fresh metadata, not kadm's cache of the plan's.
	td, err := f.adm.ListTopics(kadm.WithAuthorizedOps(f.ctx), name)
	if err != nil || td[name].Err != nil {
		t.Fatalf("list topic %s: %v %v", name, err, td[name].Err)
	}
	rcs, err := f.adm.DescribeTopicConfigs(f.ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := rcs.On(name, nil)
	if err != nil {
		t.Fatal(err)
	}
	retentionMs = -2
	for _, c := range rc.Configs {
		if c.Key == "retention.ms" {
			retentionMs, err = strconv.ParseInt(c.MaybeValue(), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	return len(td[name].Partitions), td[name].Partitions.NumReplicas(), retentionMs
}

// create creates a topic with a retention, and with a max.message.bytes
// (8 MiB) above what Plan wants, so that tests of other settings see no
// raise-max-message-bytes.
func (f *provisionFixture) create(t *testing.T, name string, parts int32, retention string) {
	t.Helper()
	f.createWith(t, name, parts, map[string]*string{"retention.ms": &retention, "max.message.bytes": kadm.StringPtr("8388608")})
}

func (f *provisionFixture) createWith(t *testing.T, name string, parts int32, configs map[string]*string) {
	t.Helper()
	if _, err := f.adm.CreateTopic(f.ctx, parts, -1, configs, name); err != nil {
		t.Fatal(err)
	}
}

// config reads one config of a topic with kadm, independently of the code
// under test.
func (f *provisionFixture) config(t *testing.T, topic, key string) string {
	t.Helper()
	rcs, err := f.adm.DescribeTopicConfigs(f.ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := rcs.On(topic, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range rc.Configs {
		if c.Key == key {
			return c.MaybeValue()
		}
	}
	t.Fatalf("topic %s has no %s", topic, key)
	return ""
}

// TestPlanRaisesMaxMessageBytes: a record the main topic accepts must fit
// in its tier and DLQ topics with kretry's headers. Plan wants the main
// topic's max.message.bytes plus room for them, creates topics with it,
// raises a topic that takes less and never lowers one that takes more.
func TestPlanRaisesMaxMessageBytes(t *testing.T) {
	f := newProvisionFixture(t)
	const mainMax = 2 << 20
	rs, err := f.adm.AlterTopicConfigs(f.ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "max.message.bytes", Value: kadm.StringPtr(strconv.Itoa(mainMax))}}, f.main)
	if err == nil {
		_, err = rs.On(f.main, func(r *kadm.AlterConfigsResponse) error { return r.Err })
	}
	if err != nil {
		t.Fatal(err)
	}
	want := topics.WantMaxMessageBytes(f.ladder, mainMax)
	if min := int32(mainMax + topics.HeaderRoom + len(f.ladder.Group()) + len(f.ladder.Topic())); want != min {
		t.Fatalf("WantMaxMessageBytes = %d, want %d", want, min)
	}
	if got := topics.WantMaxMessageBytes(f.ladder, 1<<31-1); got != 1<<31-1 {
		t.Errorf("WantMaxMessageBytes of the largest main topic = %d, want the int32 maximum", got)
	}
	small := f.main + ".retry-5s" // the broker's default, 1 MiB
	large := f.main + ".retry-1m" // 16 MiB: kept
	f.createWith(t, small, 3, map[string]*string{"retention.ms": kadm.StringPtr("86400000")})
	f.createWith(t, large, 3, map[string]*string{"retention.ms": kadm.StringPtr("86400000"), "max.message.bytes": kadm.StringPtr("16777216")})

	p := f.plan(t)
	for _, s := range p.Topics {
		var wantActions []topics.Action
		switch s.Topic {
		case small:
			wantActions = []topics.Action{topics.ActionRaiseMaxMessageBytes}
		case large:
		default:
			wantActions = []topics.Action{topics.ActionCreate}
		}
		if !slices.Equal(s.Actions, wantActions) || s.WantMaxMessageBytes != want {
			t.Errorf("%s: actions %v, want max.message.bytes %d; want %v and %d", s.Topic, s.Actions, s.WantMaxMessageBytes, wantActions, want)
		}
	}
	if _, err := topics.Apply(f.ctx, f.adm, p); err != nil {
		t.Fatal(err)
	}
	for _, s := range p.Topics {
		wantBytes := strconv.Itoa(int(want))
		if s.Topic == large {
			wantBytes = "16777216"
		}
		if got := f.config(t, s.Topic, "max.message.bytes"); got != wantBytes {
			t.Errorf("%s: max.message.bytes %s after apply, want %s", s.Topic, got, wantBytes)
		}
	}
	if ch := f.plan(t).Changes(); len(ch) != 0 {
		t.Errorf("plan after apply has changes: %+v", ch)
	}
}

func (f *provisionFixture) plan(t *testing.T, provs ...topics.Provision) *topics.TopicPlan {
	t.Helper()
	if len(provs) == 0 {
		provs = []topics.Provision{{Ladder: f.ladder}}
	}
	p, err := topics.Plan(f.ctx, f.adm, provs)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPlanEmptyClusterThenApply(t *testing.T) {
	f := newProvisionFixture(t)
	p := f.plan(t)

	want := f.wanted()
	if len(p.Topics) != len(want) {
		t.Fatalf("plan has %d topics, want %d: %+v", len(p.Topics), len(want), p.Topics)
	}
	order := []string{f.main + ".retry-5s", f.main + ".retry-1m", f.main + ".retry-30h", f.main + ".dlq"}
	for i, s := range p.Topics {
		if s.Topic != order[i] {
			t.Errorf("row %d is %s, want %s", i, s.Topic, order[i])
		}
		if s.Exists || !slices.Equal(s.Actions, []topics.Action{topics.ActionCreate}) {
			t.Errorf("%s: exists %v, actions %v; want missing and [create]", s.Topic, s.Exists, s.Actions)
		}
		if s.WantPartitions != 3 || s.WantRetention != want[s.Topic] || int(s.WantReplication) != f.mainRF {
			t.Errorf("%s: want partitions %d, rf %d, retention %v; want 3, %d, %v", s.Topic, s.WantPartitions, s.WantReplication, s.WantRetention, f.mainRF, want[s.Topic])
		}
		kind := topics.KindTier
		if i == 3 {
			kind = topics.KindDLQ
		}
		if s.Kind != kind || s.MainTopic != f.main {
			t.Errorf("%s: kind %s main %s, want %s %s", s.Topic, s.Kind, s.MainTopic, kind, f.main)
		}
	}
	if got := p.Missing(); !slices.Equal(got, order) {
		t.Errorf("Missing() = %v, want %v", got, order)
	}

	done, err := topics.Apply(f.ctx, f.adm, p)
	if err != nil {
		t.Fatal(err)
	}
	if len(done) != 4 {
		t.Errorf("Apply made %d changes, want 4: %+v", len(done), done)
	}
	for name, ret := range want {
		parts, rf, ms := f.topic(t, name)
		if parts != 3 || rf != f.mainRF || ms != ret.Milliseconds() {
			t.Errorf("%s: %d partitions, rf %d, retention.ms %d; want 3, %d, %d", name, parts, rf, ms, f.mainRF, ret.Milliseconds())
		}
	}

	again := f.plan(t)
	if ch := again.Changes(); len(ch) != 0 {
		t.Errorf("plan after apply has changes: %+v", ch)
	}
	done, err = topics.Apply(f.ctx, f.adm, again)
	if err != nil || len(done) != 0 {
		t.Errorf("second apply: %d changes, err %v; want none", len(done), err)
	}
}

func TestPlanRaisesRetentionAndPartitionsNeverShrinks(t *testing.T) {
	f := newProvisionFixture(t)
	short := f.main + ".retry-5s" // 1h retention, 3 partitions
	few := f.main + ".retry-1m"   // right retention, 1 partition
	long := f.main + ".retry-30h" // unlimited retention, 5 partitions
	dlq := f.main + ".dlq"        // 30 days, 3 partitions
	f.create(t, short, 3, "3600000")
	f.create(t, few, 1, "86400000")
	f.create(t, long, 5, "-1")
	f.create(t, dlq, 3, strconv.FormatInt((30*day).Milliseconds(), 10))

	p := f.plan(t)
	got := map[string][]topics.Action{}
	for _, s := range p.Topics {
		got[s.Topic] = s.Actions
		if !s.Exists {
			t.Errorf("%s: Exists false", s.Topic)
		}
	}
	for topic, want := range map[string][]topics.Action{
		short: {topics.ActionRaiseRetention},
		few:   {topics.ActionAddPartitions},
		long:  nil,
		dlq:   nil,
	} {
		if !slices.Equal(got[topic], want) {
			t.Errorf("%s: actions %v, want %v", topic, got[topic], want)
		}
	}
	if s := p.Topics[2]; s.Retention != topics.Unlimited || s.Partitions != 5 {
		t.Errorf("%s: retention %v partitions %d, want unlimited and 5", s.Topic, s.Retention, s.Partitions)
	}

	done, err := topics.Apply(f.ctx, f.adm, p)
	if err != nil {
		t.Fatal(err)
	}
	if len(done) != 2 {
		t.Errorf("Apply made %d changes, want 2: %+v", len(done), done)
	}
	for name, want := range map[string]struct {
		parts int
		ms    int64
	}{
		short: {3, day.Milliseconds()},
		few:   {3, day.Milliseconds()},
		long:  {5, -1},
		dlq:   {3, (30 * day).Milliseconds()},
	} {
		parts, _, ms := f.topic(t, name)
		if parts != want.parts || ms != want.ms {
			t.Errorf("%s: %d partitions, retention.ms %d; want %d, %d", name, parts, ms, want.parts, want.ms)
		}
	}
	if ch := f.plan(t).Changes(); len(ch) != 0 {
		t.Errorf("plan after apply has changes: %+v", ch)
	}
}

func TestPlanRetentionOverrides(t *testing.T) {
	f := newProvisionFixture(t)
	p := f.plan(t, topics.Provision{Ladder: f.ladder, TierRetention: 3 * day, DLQRetention: 30 * day})
	for _, s := range p.Topics {
		want := 3 * day
		if s.Kind == topics.KindDLQ {
			want = 30 * day
		}
		if s.WantRetention != want {
			t.Errorf("%s: want retention %v, want %v", s.Topic, s.WantRetention, want)
		}
	}
	if _, err := topics.Apply(f.ctx, f.adm, p); err != nil {
		t.Fatal(err)
	}
	if _, _, ms := f.topic(t, f.main+".dlq"); ms != (30 * day).Milliseconds() {
		t.Errorf("dlq retention.ms %d, want %d", ms, (30 * day).Milliseconds())
	}
}

func TestPlanMainTopicMissing(t *testing.T) {
	f := newProvisionFixture(t)
	absent := kafkatest.Name(t, "absent")
	l, err := ladder.New(absent, "g", []ladder.Tier{{Delay: time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = topics.Plan(f.ctx, f.adm, []topics.Provision{{Ladder: f.ladder}, {Ladder: l}})
	var mte *topics.MissingTopicError
	if !errors.As(err, &mte) || mte.Topic != absent {
		t.Fatalf("Plan error %v, want a *MissingTopicError naming %s", err, absent)
	}
	if td, err := f.adm.ListTopics(kadm.WithAuthorizedOps(f.ctx), f.main+".dlq"); err != nil || td[f.main+".dlq"].Err == nil {
		t.Errorf("Plan with a missing main topic created %s", f.main+".dlq")
	}
}

func TestPlanSharedDLQ(t *testing.T) {
	f := newProvisionFixture(t)
	other := kafkatest.Name(t, "payments")
	f.create(t, other, 6, "604800000")
	shared := kafkatest.Name(t, "all") + ".dlq"
	l1, err := ladder.New(f.main, "g", []ladder.Tier{{Delay: time.Second}}, ladder.WithDLQ(shared))
	if err != nil {
		t.Fatal(err)
	}
	l2, err := ladder.New(other, "g", []ladder.Tier{{Delay: time.Second}}, ladder.WithDLQ(shared))
	if err != nil {
		t.Fatal(err)
	}
	p := f.plan(t, topics.Provision{Ladder: l1}, topics.Provision{Ladder: l2, DLQRetention: 20 * day})
	var rows []topics.TopicState
	for _, s := range p.Topics {
		if s.Topic == shared {
			rows = append(rows, s)
		}
	}
	if len(rows) != 1 {
		t.Fatalf("shared DLQ has %d rows, want 1", len(rows))
	}
	if rows[0].WantPartitions != 6 || rows[0].WantRetention != 20*day {
		t.Errorf("shared DLQ wants %d partitions, retention %v; want the most of both ladders: 6, 20d", rows[0].WantPartitions, rows[0].WantRetention)
	}
	if len(p.Topics) != 3 {
		t.Errorf("plan has %d rows, want 3 (two tiers, one DLQ)", len(p.Topics))
	}
}

func TestApplyTopicCreatedAfterPlan(t *testing.T) {
	f := newProvisionFixture(t)
	p := f.plan(t)
	// Another process creates the DLQ between our plan and our apply, with
	// one partition and a short retention.
	dlq := f.main + ".dlq"
	f.create(t, dlq, 1, "3600000")

	done, err := topics.Apply(f.ctx, f.adm, p)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range done {
		if d.Topic == dlq {
			got = append(got, fmt.Sprintf("%s %v", d.Action, d.AlreadyExisted))
		}
	}
	if want := []string{"create true", "raise-retention false", "add-partitions false"}; !slices.Equal(got, want) {
		t.Errorf("changes to %s: %v, want %v", dlq, got, want)
	}
	if parts, _, ms := f.topic(t, dlq); parts != 3 || ms != (14*day).Milliseconds() {
		t.Errorf("%s: %d partitions, retention.ms %d; want 3 and 14d", dlq, parts, ms)
	}
}

func TestEnsureTopics(t *testing.T) {
	f := newProvisionFixture(t)
	provs := []topics.Provision{{Ladder: f.ladder}}
	done, err := topics.EnsureTopics(f.ctx, f.adm, provs)
	if err != nil || len(done) != 4 {
		t.Fatalf("EnsureTopics: %d changes, %v; want 4 creations", len(done), err)
	}
	for name, ret := range f.wanted() {
		if parts, _, ms := f.topic(t, name); parts != 3 || ms != ret.Milliseconds() {
			t.Errorf("%s: %d partitions, retention.ms %d", name, parts, ms)
		}
	}
	if done, err := topics.EnsureTopics(f.ctx, f.adm, provs); err != nil || len(done) != 0 {
		t.Errorf("second EnsureTopics: %d changes, %v; want none", len(done), err)
	}
}
