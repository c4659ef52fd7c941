package dlq

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/topics"
)

// checkTargets returns the partition count of every target, or an error
// naming the ones that do not exist.
func (r *Reader) checkTargets(ctx context.Context, targets []string) (map[string]int, error) {
	counts := map[string]int{}
	if len(targets) == 0 {
		return counts, nil
	}
	if slices.Contains(targets, r.topic) {
		return nil, fmt.Errorf("records name %s itself as their original topic: replaying them would loop; name a target topic", r.topic)
	}
	parts, missing, err := topics.Partitions(ctx, r.adm, targets...)
	if err != nil {
		return nil, fmt.Errorf("looking up the target topics %s: %w", strings.Join(targets, ", "), err)
	}
	for t, n := range parts {
		counts[t] = int(n)
	}
	if len(missing) > 0 {
		return nil, &unknownTopicError{"target topic", missing, "nothing was replayed; create it (`kretry topics apply`), or choose another with --to"}
	}
	return counts, nil
}

// defaultBatchMaxBytes is franz-go's default ProducerBatchMaxBytes.
const defaultBatchMaxBytes = 1_000_012

// batchLimit is the smallest max.message.bytes of the targets, or 0 when it
// cannot be read (then franz-go's default applies).
func (r *Reader) batchLimit(ctx context.Context, targets []string) int32 {
	if len(targets) == 0 {
		return 0
	}
	rcs, err := r.adm.DescribeTopicConfigs(ctx, targets...)
	if err != nil {
		return 0
	}
	limit := int64(math.MaxInt32)
	for _, rc := range rcs {
		if rc.Err != nil {
			return 0
		}
		for _, c := range rc.Configs {
			if c.Key == "max.message.bytes" && c.Value != nil {
				n, err := strconv.ParseInt(*c.Value, 10, 32)
				if err != nil || n <= 0 {
					return 0
				}
				limit = min(limit, n)
			}
		}
	}
	if limit == math.MaxInt32 {
		return 0
	}
	return int32(limit)
}

// replayPartitioner writes a record to the partition set on it (mod the
// partition count), or by its key when it is -1.
type replayPartitioner struct{ byKey kgo.Partitioner }

func (p replayPartitioner) ForTopic(t string) kgo.TopicPartitioner {
	return replayTopicPartitioner{p.byKey.ForTopic(t)}
}

type replayTopicPartitioner struct{ byKey kgo.TopicPartitioner }

func (p replayTopicPartitioner) RequiresConsistency(*kgo.Record) bool { return true }

func (p replayTopicPartitioner) Partition(r *kgo.Record, n int) int {
	if r.Partition >= 0 {
		return int(r.Partition) % n
	}
	return p.byKey.Partition(r, n)
}

func (p replayTopicPartitioner) OnNewBatch() {
	if nb, ok := p.byKey.(kgo.TopicPartitionerOnNewBatch); ok {
		nb.OnNewBatch()
	}
}
