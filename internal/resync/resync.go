// Package resync moves a group member's fetch positions to the offsets
// its group has committed on the brokers.
//
// kgo's transact session rewinds to the offsets it last saw committed after
// a transaction whose end failed. But an end can fail after the brokers took
// the EndTxn (they went away before they answered, as in a broker restart):
// that transaction then commits, and fetching from kgo's older offsets would
// handle or re-feed its records again, and commit their writes a second
// time. The brokers' offsets say which it was.
package resync

import (
	"context"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Committed sets the fetch position of each partition cl consumes to the
// offset group has committed for it, once no transaction of the group's is
// pending on it (RequireStable); partitions without a committed offset
// keep theirs. cl is the group member of group; call it from the goroutine
// that polls, before AllowRebalance, with BlockRebalanceOnPoll.
func Committed(ctx context.Context, cl *kgo.Client, group string) error {
	resp, err := kadm.NewClient(cl).FetchOffsets(kadm.RequireStable(ctx), group)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		return err
	}
	set := map[string]map[int32]kgo.EpochOffset{}
	resp.Each(func(o kadm.OffsetResponse) {
		if o.At < 0 {
			return
		}
		if set[o.Topic] == nil {
			set[o.Topic] = map[int32]kgo.EpochOffset{}
		}
		set[o.Topic][o.Partition] = kgo.EpochOffset{Epoch: o.LeaderEpoch, Offset: o.At}
	})
	cl.SetOffsets(set) // kgo skips the partitions cl does not consume
	return nil
}
