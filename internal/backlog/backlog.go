package backlog

import "github.com/twmb/franz-go/pkg/kgo"

type topicPartition struct {
	topic     string
	partition int32
}

// Partitions holds the partitions whose last fetched records ended before
// the partition's last stable offset. The zero value is empty; it is not
// safe for concurrent use.
type Partitions struct {
	behind map[topicPartition]struct{}
}

// Note takes a poll's fetches: each partition with records is behind when
// its last record is more than one offset before the partition's last
// stable offset (one: the marker of the transaction that wrote the last
// record, which a read_committed fetch skips), caught up otherwise. waits
// reports a partition whose next records wait anyway (paused, or holding
// records not yet due): it is never behind. A partition without records in
// fetches keeps its state.
func (b *Partitions) Note(fetches kgo.Fetches, waits func(topic string, partition int32) bool) {
	fetches.EachPartition(func(p kgo.FetchTopicPartition) {
		if len(p.Records) == 0 {
			return
		}
		tp := topicPartition{p.Topic, p.Partition}
		next := p.Records[len(p.Records)-1].Offset + 1
		if p.LastStableOffset-next > 1 && (waits == nil || !waits(p.Topic, p.Partition)) {
			if b.behind == nil {
				b.behind = map[topicPartition]struct{}{}
			}
			b.behind[tp] = struct{}{}
			return
		}
		delete(b.behind, tp)
	})
}

// Behind reports whether a partition is behind.
func (b *Partitions) Behind() bool { return len(b.behind) > 0 }

// Reset forgets every partition, at the end of a transaction: a partition
// whose rest is aborted records, which no fetch brings, or one revoked
// since, holds back an early end at most one transaction.
func (b *Partitions) Reset() { clear(b.behind) }
