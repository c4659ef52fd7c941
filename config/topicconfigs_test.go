package config_test

import (
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/kretry/kretry/config"
	"github.com/kretry/kretry/ladder"
	"github.com/kretry/kretry/topics"
)

// TestMainTopicAndTopicConfigs: partitions, replication_factor and the
// extra topic configs reach the Provision, the kind's configs over the
// topic's.
func TestMainTopicAndTopicConfigs(t *testing.T) {
	c, err := config.Parse([]byte(`brokers: [localhost:9092]
group: g
topics:
  - name: orders
    tiers: [{delay: 5s}]
    partitions: 6
    replication_factor: 3
    topic_configs: {min.insync.replicas: 2, compression.type: lz4}
    tier_configs: {compression.type: zstd}
    dlq_configs: {segment.ms: "3600000"}
`))
	if err != nil {
		t.Fatal(err)
	}
	ps, err := c.Provisions()
	if err != nil {
		t.Fatal(err)
	}
	p := ps[0]
	if p.MainPartitions != 6 || p.MainReplication != 3 {
		t.Errorf("main topic %d partitions, replication %d; want 6 and 3", p.MainPartitions, p.MainReplication)
	}
	if want := map[string]string{"min.insync.replicas": "2", "compression.type": "zstd"}; !maps.Equal(p.TierConfigs, want) {
		t.Errorf("tier configs %v, want %v", p.TierConfigs, want)
	}
	if want := map[string]string{"min.insync.replicas": "2", "compression.type": "lz4", "segment.ms": "3600000"}; !maps.Equal(p.DLQConfigs, want) {
		t.Errorf("DLQ configs %v, want %v", p.DLQConfigs, want)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("Validate of a parsed config: %v", err)
	}
}

func TestMainTopicAndTopicConfigsErrors(t *testing.T) {
	for _, tc := range []struct {
		topic, want string
	}{
		{"partitions: 0", "topics[0].partitions: must be a whole number from 1 to 2147483647"},
		{"partitions: six", "topics[0].partitions: must be a whole number"},
		{"replication_factor: 3", "topics[0].replication_factor: needs partitions"},
		{"{partitions: 3, replication_factor: 40000}", "topics[0].replication_factor: must be a whole number from 1 to 32767"},
		{"topic_configs: {retention.ms: 1000}", "topics[0].topic_configs.retention.ms: topic config retention.ms is kretry's"},
		{"dlq_configs: {cleanup.policy: compact}", "topics[0].dlq_configs.cleanup.policy: topic config cleanup.policy is kretry's"},
		{"tier_configs: {max.message.bytes: 1}", "topics[0].tier_configs.max.message.bytes: topic config max.message.bytes is kretry's"},
		{"tier_configs: {Compression: zstd}", `not a Kafka topic config name`},
		{"tier_configs: [compression.type]", "topics[0].tier_configs: must be a mapping of Kafka topic configs"},
		{"tier_configs: {compression.type: [zstd]}", "topics[0].tier_configs.compression.type: must be a value"},
	} {
		extra := tc.topic
		if strings.HasPrefix(extra, "{") {
			extra = strings.Trim(extra, "{}")
			extra = strings.ReplaceAll(extra, ", ", "\n    ")
		}
		y := "brokers: [localhost:9092]\ngroup: g\ntopics:\n  - name: orders\n    tiers: [{delay: 5s}]\n    " + extra + "\n"
		_, err := config.Parse([]byte(y))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.topic, err, tc.want)
		}
	}
}

// TestValidateMainTopicAndTopicConfigs: a Config built in Go gets the
// file's checks.
func TestValidateMainTopicAndTopicConfigs(t *testing.T) {
	base := func() config.Config {
		return config.Config{Brokers: []string{"localhost:9092"}, Group: "g",
			Topics: []config.Topic{{Name: "orders", Tiers: []ladder.Tier{{Delay: 5 * time.Second}}}}}
	}
	for _, tc := range []struct {
		name string
		set  func(*config.Topic)
		want string
	}{
		{"ok", func(t *config.Topic) {
			t.Partitions, t.ReplicationFactor, t.DLQConfigs = 3, 1, map[string]string{"min.insync.replicas": "1"}
		}, ""},
		{"negative partitions", func(t *config.Topic) { t.Partitions = -1 }, "topics[0].partitions: must be ≥ 1"},
		{"replication without partitions", func(t *config.Topic) { t.ReplicationFactor = 3 }, "topics[0].replication_factor: needs partitions"},
		{"owned config", func(t *config.Topic) { t.TopicConfigs = map[string]string{"retention.ms": "1"} }, "topics[0].topic_configs.retention.ms: topic config retention.ms is kretry's"},
		{"bad name", func(t *config.Topic) { t.TierConfigs = map[string]string{"a b": "1"} }, "not a Kafka topic config name"},
	} {
		c := base()
		tc.set(&c.Topics[0])
		err := c.Validate()
		if (tc.want == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Validate = %v, want %q", tc.name, err, tc.want)
		}
	}
	c := base()
	c.Topics[0].TopicConfigs = map[string]string{"compression.type": "lz4"}
	if got := c.Topics[0].ConfigsOf(topics.KindDLQ); got["compression.type"] != "lz4" {
		t.Errorf("ConfigsOf(dlq) = %v, want the topic's configs", got)
	}
}
