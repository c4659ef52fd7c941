package topics_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kretry/kretry/internal/kafkatest"
	"github.com/kretry/kretry/ladder"
	"github.com/kretry/kretry/topics"
)

// TestPlanCreatesDeclaredMainTopic: a main topic with MainPartitions is
// planned first and created by Apply; its tier and DLQ topics follow its
// partition count and get their extra configs.
func TestPlanCreatesDeclaredMainTopic(t *testing.T) {
	f := newProvisionFixture(t)
	main := kafkatest.Name(t, "fresh")
	l, err := ladder.New(main, "g", []ladder.Tier{{Delay: 5 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	prov := topics.Provision{Ladder: l, MainPartitions: 4,
		TierConfigs: map[string]string{"compression.type": "zstd"},
		DLQConfigs:  map[string]string{"compression.type": "gzip", "min.insync.replicas": "1"}}
	p := f.plan(t, prov)
	if len(p.Topics) != 3 || p.Topics[0].Topic != main || p.Topics[0].Kind != topics.KindMain {
		t.Fatalf("plan rows %+v, want the main topic %s first", p.Topics, main)
	}
	if rf := p.Topics[0].WantReplication; rf != -1 {
		t.Errorf("main topic without MainReplication wants replication factor %d, want -1 (the brokers' default)", rf)
	}
	for _, s := range p.Topics {
		if !slices.Equal(s.Actions, []topics.Action{topics.ActionCreate}) || s.WantPartitions != 4 {
			t.Errorf("%s: actions %v, want partitions %d; want create with 4", s.Topic, s.Actions, s.WantPartitions)
		}
	}
	if _, err := topics.Apply(f.ctx, f.adm, p); err != nil {
		t.Fatal(err)
	}
	for topic, want := range map[string]string{main + ".retry-5s": "zstd", main + ".dlq": "gzip"} {
		if parts, _, _ := f.topic(t, topic); parts != 4 {
			t.Errorf("%s has %d partitions, want 4", topic, parts)
		}
		if got := f.config(t, topic, "compression.type"); got != want {
			t.Errorf("%s: compression.type %q, want %q", topic, got, want)
		}
	}
	if parts, _, _ := f.topic(t, main); parts != 4 {
		t.Errorf("main topic %s has %d partitions, want 4", main, parts)
	}
	if got := f.config(t, main, "compression.type"); got == "zstd" || got == "gzip" {
		t.Errorf("main topic got a tier or DLQ config: compression.type %q", got)
	}
	if pend := f.plan(t, prov).Pending(); len(pend) != 0 {
		t.Errorf("plan after apply has pending rows: %+v", pend)
	}
}

// TestPlanMainPartitions: an existing main topic's partitions are raised
// only WithRaisePartitions (held otherwise, and pending for a CI gate),
// never lowered (*PartitionsError), and its replication factor is never
// changed (a warning).
func TestPlanMainPartitions(t *testing.T) {
	f := newProvisionFixture(t) // main: 3 partitions
	held := f.plan(t, topics.Provision{Ladder: f.ladder, MainPartitions: 6, MainReplication: int16(f.mainRF) + 1})
	m := held.Topics[0]
	if m.Topic != f.main || !m.OK() || !slices.Equal(m.Held, []topics.Action{topics.ActionAddPartitions}) {
		t.Fatalf("main row %+v: want no actions and add-partitions held", m)
	}
	if len(m.Warnings) != 2 || !strings.Contains(m.Warnings[0], "never changes a replication factor") || !strings.Contains(m.Warnings[1], "--raise-partitions") {
		t.Errorf("main row warnings %q, want the replication factor and the held raise", m.Warnings)
	}
	if len(held.Pending()) != len(held.Topics) {
		t.Errorf("pending rows %d, want all %d (the held raise and the missing topics)", len(held.Pending()), len(held.Topics))
	}
	for _, s := range held.Topics[1:] {
		if s.WantPartitions != 3 {
			t.Errorf("%s wants %d partitions without the raise, want the main topic's 3", s.Topic, s.WantPartitions)
		}
	}
	if _, err := topics.Apply(f.ctx, f.adm, held); err != nil {
		t.Fatal(err)
	}
	if parts, _, _ := f.topic(t, f.main); parts != 3 {
		t.Fatalf("apply without the raise changed the main topic to %d partitions", parts)
	}

	prov := topics.Provision{Ladder: f.ladder, MainPartitions: 6}
	raise, err := topics.Plan(f.ctx, f.adm, []topics.Provision{prov}, topics.WithRaisePartitions(true))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range raise.Topics {
		if !slices.Equal(s.Actions, []topics.Action{topics.ActionAddPartitions}) || s.WantPartitions != 6 {
			t.Errorf("%s: actions %v to %d partitions, want add-partitions to 6", s.Topic, s.Actions, s.WantPartitions)
		}
	}
	if _, err := topics.Apply(f.ctx, f.adm, raise); err != nil {
		t.Fatal(err)
	}
	for _, s := range raise.Topics {
		if parts, _, _ := f.topic(t, s.Topic); parts != 6 {
			t.Errorf("%s has %d partitions after the raise, want 6", s.Topic, parts)
		}
	}

	_, err = topics.Plan(f.ctx, f.adm, []topics.Provision{{Ladder: f.ladder, MainPartitions: 2}}, topics.WithRaisePartitions(true))
	var pe *topics.PartitionsError
	if !errors.As(err, &pe) || pe.Have != 6 || pe.Want != 2 || !strings.Contains(err.Error(), "Kafka cannot remove partitions") {
		t.Errorf("Plan with fewer partitions: %v, want a *PartitionsError 6 > 2", err)
	}
}

// TestPlanConfigDrift: an extra config with another value on a tier topic
// is set again by Apply, the other configs are left alone.
func TestPlanConfigDrift(t *testing.T) {
	f := newProvisionFixture(t)
	tier := f.main + ".retry-5s"
	f.create(t, tier, 3, "86400000")
	prov := topics.Provision{Ladder: f.ladder, TierConfigs: map[string]string{"compression.type": "zstd"}}
	if _, err := topics.EnsureTopics(f.ctx, f.adm, []topics.Provision{{Ladder: f.ladder}}); err != nil {
		t.Fatal(err)
	}
	p := f.plan(t, prov)
	for _, s := range p.Topics {
		var want []topics.Action
		if s.Kind == topics.KindTier {
			want = []topics.Action{topics.ActionSetConfigs}
		}
		if !slices.Equal(s.Actions, want) {
			t.Errorf("%s: actions %v, want %v", s.Topic, s.Actions, want)
		}
		if s.Kind == topics.KindTier && !slices.Equal(s.ConfigDrift(), []string{"compression.type"}) {
			t.Errorf("%s: drift %v (has %v), want compression.type", s.Topic, s.ConfigDrift(), s.Configs)
		}
	}
	if _, err := topics.Apply(f.ctx, f.adm, p); err != nil {
		t.Fatal(err)
	}
	if got := f.config(t, tier, "compression.type"); got != "zstd" {
		t.Errorf("%s: compression.type %q after apply, want zstd", tier, got)
	}
	if got := f.config(t, tier, "retention.ms"); got != "86400000" {
		t.Errorf("%s: retention.ms %q after apply, want it kept", tier, got)
	}
	if ch := f.plan(t, prov).Changes(); len(ch) != 0 {
		t.Errorf("plan after apply has changes: %+v", ch)
	}
}

func TestCheckConfigName(t *testing.T) {
	for _, tc := range []struct {
		name, err string
	}{
		{"min.insync.replicas", ""},
		{"compression.type", ""},
		{"segment.ms", ""},
		{"retention.ms", "is kretry's"},
		{"max.message.bytes", "is kretry's"},
		{"cleanup.policy", "never compact"},
		{"Compression.Type", "not a Kafka topic config name"},
		{"compression..type", "not a Kafka topic config name"},
		{"compression.type ", "not a Kafka topic config name"},
		{"", "not a Kafka topic config name"},
	} {
		err := topics.CheckConfigName(tc.name)
		if (tc.err == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), tc.err) {
			t.Errorf("CheckConfigName(%q) = %v, want %q", tc.name, err, tc.err)
		}
	}
	_, err := topics.Plan(t.Context(), nil, []topics.Provision{{Ladder: mustLadder(t), DLQConfigs: map[string]string{"retention.ms": "1"}}})
	if err == nil || !strings.Contains(err.Error(), "retention.ms is kretry's") {
		t.Errorf("Plan with retention.ms among DLQConfigs: %v, want it refused", err)
	}
}

func mustLadder(t *testing.T) *ladder.Ladder {
	l, err := ladder.New("orders", "g", []ladder.Tier{{Delay: time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	return l
}
