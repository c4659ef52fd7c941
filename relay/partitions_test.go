package relay_test

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/headers"
	"github.com/kretry/kretry/internal/kafkatest"
	"github.com/kretry/kretry/relay"
)

// A main topic and a DLQ raised from 3 to 6 partitions while the relay runs
// get the records of partition 5 at partition 5, without a restart; before
// the raise, at 5 mod 3.
func TestRelayFollowsRaisedPartitions(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := testLadder(t)
		var tiers []string
		for _, s := range l.Steps() {
			tiers = append(tiers, s.Topic)
		}
		fake, kopts := kafkatest.VirtualFake(t, kfake.NumBrokers(1),
			kfake.SeedTopics(3, l.Topic(), l.DLQ()), kfake.SeedTopics(6, tiers...))
		e := newEnvOn(t, fake, kopts, l)
		// A record to re-feed, from original partition 5, and one in tier
		// partition 5 whose kretry headers cannot be read, for the DLQ.
		records := func(key string) (good *kgo.Record, md headers.Metadata, bad *kgo.Record) {
			good, md = e.tierRecord(0, 5, key, time.Now())
			bad = &kgo.Record{Topic: e.step(0).Topic, Partition: 5, Key: []byte(key), Value: []byte("v")}
			return good, md, bad
		}
		arrived := func(n int) func() bool {
			return func() bool { return len(e.read(relayTopic)) == n && len(e.read(l.DLQ())) == n }
		}

		r := e.start()
		before, beforeMD, bad := records("before")
		e.produce(bad, before)
		waitFor(t, "the records before the raise", arrived(1))

		for _, topic := range []string{l.Topic(), l.DLQ()} {
			resp, err := e.adm.UpdatePartitions(context.Background(), 6, topic)
			if err == nil {
				err = resp.Error()
			}
			if err != nil {
				t.Fatalf("raising %s to 6 partitions: %v", topic, err)
			}
		}
		// The records before the raise had the counts read; the next
		// read is due this long after.
		time.Sleep(relay.PartitionRefreshEvery)
		after, afterMD, bad := records("after")
		start := time.Now()
		e.produce(bad, after)
		waitFor(t, "the records after the raise", arrived(2))
		// Not failed and retried: the producer knows the new partitions.
		// Virtual time. On a loaded machine this once took 5.05s (the
		// cause not found); a producer that never learned of the new
		// partitions waits for its metadata max age, 5m.
		if took := time.Since(start); took > time.Minute {
			t.Errorf("the records after the raise took %v to arrive, want well under kgo's metadata max age (5m)", took)
		}
		if err := r.stop(); err != nil {
			t.Fatalf("Run: %v", err)
		}

		// By partition, then offset.
		main, dlq := e.read(relayTopic), e.read(l.DLQ())
		for i, want := range []struct {
			key       string
			partition int32
		}{{"before", 2}, {"after", 5}} {
			if got := main[i]; string(got.Key) != want.key || got.Partition != want.partition {
				t.Errorf("re-fed %q to %s[%d], want %q at partition %d", got.Key, relayTopic, got.Partition, want.key, want.partition)
			}
			if got := dlq[i]; string(got.Key) != want.key || got.Partition != want.partition {
				t.Errorf("dead-lettered %q to %s[%d], want %q at partition %d", got.Key, l.DLQ(), got.Partition, want.key, want.partition)
			}
		}
		checkRefed(t, main[0], before, beforeMD, 3)
		checkRefed(t, main[1], after, afterMD, 6)
	})
}
