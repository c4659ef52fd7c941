package relay

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/internal/telemetry"
	"github.com/kretry/kretry/topics"
)

// clientOpts returns the options of the producing client, or with consume
// set of the group's consuming client: the user's first, then the relay's.
func (r *Relay) clientOpts(consume bool, hooks kgo.Opt, extra ...kgo.Opt) []kgo.Opt {
	name := "producer"
	if consume {
		name = "consumer"
	}
	var opts []kgo.Opt
	if consume {
		// Defaults the caller may override: a resumed partition needs only
		// its due records, and smaller fetches bound the memory that a burst
		// of resumed partitions (or well-compressed batches) can take.
		opts = append(opts, kgo.FetchMaxBytes(fetchMaxBytes), kgo.FetchMaxPartitionBytes(fetchMaxPartitionBytes),
			kgo.SessionTimeout(DefaultSessionTimeout), kgo.HeartbeatInterval(DefaultHeartbeatInterval),
			kgo.AutoCommitInterval(r.cfg.commitInterval))
	}
	opts = append(opts, r.cfg.clientOpts...)
	if consume {
		opts = append(opts, r.cfg.groupOpts...)
	}
	opts = append(opts, kgo.WithLogger(telemetry.Logger(r.cfg.logger.With("component", "kgo", "client", "relay-"+name))))
	if hooks != nil {
		opts = append(opts, hooks)
	}
	if !consume {
		opts = append(opts, kgo.RecordDeliveryTimeout(r.cfg.deliveryTimeout))
		opts = append(opts, r.cfg.producerOpts...)
		opts = append(opts,
			kgo.RecordPartitioner(kgo.ManualPartitioner()),
			kgo.RequiredAcks(kgo.AllISRAcks()),
			kgo.ProducerLinger(0),
		)
		return append(opts, extra...)
	}
	opts = append(opts,
		kgo.ConsumerGroup(r.cfg.group),
		kgo.ConsumeTopics(r.topics...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.BlockRebalanceOnPoll(),
		kgo.FetchMaxWait(r.cfg.fetchMaxWait),
	)
	if !r.cfg.exactlyOnce {
		return append(append(opts, kgo.AutoCommitMarks()), extra...)
	}
	// The transaction timeout is a default the producer options (the
	// config's, derived from session_timeout) may override.
	opts = append(opts, kgo.RecordDeliveryTimeout(r.cfg.deliveryTimeout), kgo.TransactionTimeout(r.transactionTimeout()))
	opts = append(opts, r.cfg.producerOpts...)
	opts = append(opts,
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(0),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.TransactionalID(r.TransactionalID()),
		// The group's description so names each member's transactional id:
		// the fencer tells a dead member's open transaction by it.
		kgo.ClientID(r.TransactionalID()),
	)
	return append(opts, extra...)
}

// targets returns the topics the relay writes to: every main topic, DLQ and
// tier (re-parks).
func (r *Relay) targets() []string {
	var out []string
	for _, l := range r.ladders {
		out = append(out, l.Topic(), l.DLQ())
		for _, st := range l.Steps() { // re-parks go back to their tier
			out = append(out, st.Topic)
		}
	}
	return out
}

// checkTopics checks that every main, tier and DLQ topic exists and returns
// the partition count of each.
func (r *Relay) checkTopics(ctx context.Context, cl *kgo.Client) (map[string]int32, error) {
	parts, err := topics.Check(ctx, kadm.NewClient(cl), r.ladders)
	if err != nil {
		return nil, fmt.Errorf("relay: %w", err)
	}
	return parts, nil
}

// idleFetchBytes is the most the tier consumer fetches in all while the
// relay has nothing to re-feed soon (see fetchSizes).
const idleFetchBytes = 256 << 10

// fetchSizes switches the tier consumer between two fetch sizes: the
// configured one (fetchMaxBytes, or that of WithClientOpts) while the relay
// is busy, and idleFetchBytes (or the configured one if smaller) while it is
// not, as when it joins. A broker returns a fetch's first partition's first
// batch whole, and of the other partitions what fits: idle, a fetch brings
// about one batch. The per-partition limit stays as configured: a fetch
// session keeps a partition's limit until its offset moves.
//
// kgo decompresses a whole fetch into records before a poll sees any, about
// five times its bytes for compressed tier batches, and sends the next fetch
// as soon as a poll takes one. A relay that joins tiers whose heads wait for
// minutes needs only each partition's first batch, to learn its head's due
// time and pause it; fetched at the configured sizes those batches took tens
// of MiB (B4). Busy, a burst coming due is fetched in full batches of every
// partition at once.
type fetchSizes struct {
	mu                  sync.Mutex
	cl                  *kgo.Client // nil until start
	maxBytes, partBytes int32       // as configured
	busy                bool
}

// start reads cl's configured fetch sizes and sets the idle one, once:
// before its first fetch, the relay knows of nothing due. The group's
// assigned callback calls it (see assigned; kgo runs that before the
// partitions' first fetch), and so does runSession once the client is
// built: a group joined on a loaded machine could fetch before that.
func (f *fetchSizes) start(cl *kgo.Client) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cl != nil {
		return
	}
	f.cl, f.busy = cl, true
	f.maxBytes, _ = cl.OptValue(kgo.FetchMaxBytes).(int32)
	f.partBytes, _ = cl.OptValue(kgo.FetchMaxPartitionBytes).(int32)
	f.setLocked(false)
}

// assigned is the group's assigned callback next, after start.
func (f *fetchSizes) assigned(next func(context.Context, *kgo.Client, map[string][]int32)) func(context.Context, *kgo.Client, map[string][]int32) {
	return func(ctx context.Context, cl *kgo.Client, assigned map[string][]int32) {
		f.start(cl)
		next(ctx, cl, assigned)
	}
}

func (f *fetchSizes) set(busy bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cl != nil {
		f.setLocked(busy)
	}
}

func (f *fetchSizes) setLocked(busy bool) {
	if busy == f.busy {
		return
	}
	f.busy = busy
	if busy {
		f.cl.UpdateFetchMaxBytes(f.maxBytes, f.partBytes)
		return
	}
	f.cl.UpdateFetchMaxBytes(min(f.maxBytes, idleFetchBytes), f.partBytes)
}

// sizeFetches sets the fetch sizes after a poll that got records (fetches,
// handled): busy while re-feeds are in flight, a partition holds a record
// due within holdAhead, or a partition that got records is still fetched
// (neither paused nor holding: it re-fed what it got); idle when everything
// it got waits past holdAhead, paused. A poll without records changes
// nothing: a busy relay that has re-fed everything stays busy (its fetches
// bring nothing) until records arrive that are not due soon.
func (s *session) sizeFetches(fetches kgo.Fetches) {
	if fetches.NumRecords() == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	busy := len(s.inflight) > 0
	soon := time.Now().Add(holdAhead)
	for _, h := range s.held {
		busy = busy || !h.due.After(soon)
	}
	fetches.EachPartition(func(p kgo.FetchTopicPartition) {
		tp := topicPartition{p.Topic, p.Partition}
		busy = busy || len(p.Records) > 0 && s.paused[tp] == nil && !s.holdPaused[tp]
	})
	s.fetch.set(busy)
}
