package relay

import (
	"context"

	"github.com/twmb/franz-go/pkg/kgo"
)

// revoked runs in kgo's group goroutine, between polls (BlockRebalanceOnPoll).
// What the revoked partitions re-fed is marked once acknowledged, then
// committed.
func (s *session) revoked(ctx context.Context, cl *kgo.Client, tps map[string][]int32) {
	s.r.health.Revoked(tps)
	if s.txn != nil {
		// The open transaction aborts (the session's wrapper dooms it):
		// nothing of these partitions is committed outside it.
		s.doomed.Store(true)
		s.release(cl, tps)
		return
	}
	sctx, cancel := context.WithTimeout(ctx, s.r.cfg.deliveryTimeout)
	s.settleAll(tps, sctx.Done())
	cancel()
	s.release(cl, tps)
	if err := cl.CommitMarkedOffsets(ctx); err != nil {
		s.log.Error("kretry relay could not commit offsets of revoked partitions; their records will be re-fed again",
			"error", err)
	}
}

// lost drops what the lost partitions have in flight, unmarked: another
// member may own them already.
func (s *session) lost(_ context.Context, cl *kgo.Client, tps map[string][]int32) {
	s.r.health.Lost()
	s.doomed.Store(s.txn != nil)
	s.mu.Lock()
	for topic, ps := range tps {
		for _, p := range ps {
			delete(s.inflight, topicPartition{topic, p})
		}
	}
	s.mu.Unlock()
	s.release(cl, tps)
}

// release drops the pauses of partitions that are leaving this member and
// resumes them: kgo keeps pauses across rebalances, and a partition that
// comes back later must be fetched from its committed offset.
func (s *session) release(cl *kgo.Client, tps map[string][]int32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for topic, ps := range tps {
		for _, p := range ps {
			tp := topicPartition{topic, p}
			delete(s.held, tp) // unmarked: the next owner fetches them again
			delete(s.holdPaused, tp)
			delete(s.refedIDs, tp) // the next owner re-feeds from its commit: it skips what it re-feeds again
			if st := s.paused[tp]; st != nil {
				st.timer.Stop()
				delete(s.paused, tp)
			}
		}
	}
	s.countHeld()
	s.countPaused()
	cl.ResumeFetchPartitions(tps)
}

// stop drops every timer; after it no timer touches the client.
func (s *session) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	clear(s.held)
	clear(s.holdPaused)
	clear(s.refedIDs)
	for _, p := range s.paused {
		p.timer.Stop()
	}
	clear(s.paused)
	s.countHeld()
	s.countPaused()
}
