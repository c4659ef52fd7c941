package consumer

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// joinCommits commits the marked offsets while franz-go cannot: at least once,
// with the classic protocol.
//
// franz-go commits nothing while it joins and syncs a classic group, and a
// join waits until every member has joined again or its session has
// expired. A member killed with kill -9 holds every join up to
// session_timeout, during which the live members go on handling the
// partitions they own (cooperative rebalancing) and commit none of it; a
// kill then repeats all of it. While a join waits for members (the group is
// preparing a rebalance), the brokers still take a commit of the generation
// that is ending, so when franz-go's auto-commit has not committed for two
// commit intervals while marks wait, kretry commits them with that generation
// itself, once per commit interval. Once the join completes, a commit of the
// old generation is refused (ILLEGAL_GENERATION, REBALANCE_IN_PROGRESS): it
// commits nothing and changes nothing, and franz-go commits again.
type joinCommits struct {
	last     atomic.Int64 // Unix nanoseconds of franz-go's last auto-commit that committed every partition, or of the start
	lastOwn  atomic.Int64 // of the last commit made here
	inFlight atomic.Bool
	made     atomic.Int64 // commits made here that the brokers took

	// ids holds the topic IDs of the main topics, which OffsetCommit v10
	// (Kafka 4.0+) names topics by; only commitMarked's goroutine uses it.
	ids map[string][16]byte
}

func newJoinCommits(now time.Time) *joinCommits {
	j := &joinCommits{}
	j.last.Store(now.UnixNano())
	return j
}

// autoCommitted is franz-go's auto-commit callback: it logs a failed commit
// as franz-go's default callback does, and notes one that committed.
func (s *session) autoCommitted(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
	if err != nil {
		if !errors.Is(err, context.Canceled) {
			s.log.Error("kretry consumer auto-commit failed; it is tried again at the next commit interval", "group", s.c.cfg.Group, "error", err)
		}
		return
	}
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
				s.log.Error("kretry consumer auto-commit failed for a partition; it is tried again at the next commit interval",
					"group", s.c.cfg.Group, "topic", t.Topic, "partition", p.Partition, "error", err)
				return
			}
		}
	}
	s.joins.last.Store(time.Now().UnixNano())
}

// commitIfStuck starts a commit of the marked offsets when franz-go's
// auto-commit has not committed for two commit intervals and none was made
// here within one (see joinCommits).
func (s *session) commitIfStuck(ctx context.Context, now time.Time) {
	j := s.joins
	if j == nil {
		return
	}
	interval := s.c.commitInterval.Nanoseconds()
	if now.UnixNano()-j.last.Load() < 2*interval || now.UnixNano()-j.lastOwn.Load() < interval {
		return
	}
	if !j.inFlight.CompareAndSwap(false, true) {
		return
	}
	j.lastOwn.Store(now.UnixNano())
	go func() {
		defer j.inFlight.Store(false)
		s.commitMarked(ctx)
	}()
}

// commitMarked commits the offsets marked and not committed with the
// generation franz-go last joined.
func (s *session) commitMarked(ctx context.Context) {
	marked := s.cl.MarkedOffsets()
	member, generation := s.cl.GroupMetadata()
	if len(marked) == 0 || member == "" || generation < 0 {
		return
	}
	ids, err := s.topicIDs(ctx, marked)
	if err != nil {
		s.log.Debug("kretry consumer commit during a join: no topic IDs", "group", s.c.cfg.Group, "error", err)
		return
	}
	req := kmsg.NewPtrOffsetCommitRequest()
	req.Group = s.c.cfg.Group
	req.MemberID = member
	req.Generation = generation
	if id := s.c.cfg.InstanceID; id != "" {
		req.InstanceID = &id
	}
	for topic, ps := range marked {
		t := kmsg.NewOffsetCommitRequestTopic()
		t.Topic = topic
		t.TopicID = ids[topic]
		for p, eo := range ps {
			rp := kmsg.NewOffsetCommitRequestTopicPartition()
			rp.Partition = p
			rp.Offset = eo.Offset
			rp.LeaderEpoch = eo.Epoch
			t.Partitions = append(t.Partitions, rp)
		}
		req.Topics = append(req.Topics, t)
	}
	ctx, cancel := context.WithTimeout(ctx, commitTimeout)
	defer cancel()
	resp, err := req.RequestWith(ctx, s.cl)
	if err != nil {
		s.log.Debug("kretry consumer commit during a join failed", "group", s.c.cfg.Group, "error", err)
		return
	}
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
				// The join completed meanwhile, or the member left:
				// franz-go commits again with its new generation. A
				// topic recreated since has another ID.
				if errors.Is(err, kerr.UnknownTopicID) {
					clear(s.joins.ids)
				}
				s.log.Debug("kretry consumer commit during a join refused", "group", s.c.cfg.Group, "error", err)
				return
			}
		}
	}
	s.joins.made.Add(1)
	s.log.Debug("kretry consumer committed its marked offsets while franz-go waited for a rebalance's join",
		"group", s.c.cfg.Group, "generation", generation)
}

// topicIDs returns the topic IDs of the topics of marked, from a metadata
// request for those it does not know yet.
func (s *session) topicIDs(ctx context.Context, marked map[string]map[int32]kgo.EpochOffset) (map[string][16]byte, error) {
	j := s.joins
	if j.ids == nil {
		j.ids = make(map[string][16]byte)
	}
	req := kmsg.NewPtrMetadataRequest()
	for topic := range marked {
		if _, ok := j.ids[topic]; !ok {
			rt := kmsg.NewMetadataRequestTopic()
			rt.Topic = kmsg.StringPtr(topic)
			req.Topics = append(req.Topics, rt)
		}
	}
	if len(req.Topics) == 0 {
		return j.ids, nil
	}
	ctx, cancel := context.WithTimeout(ctx, commitTimeout)
	defer cancel()
	resp, err := req.RequestWith(ctx, s.cl)
	if err != nil {
		return nil, err
	}
	for _, t := range resp.Topics {
		if err := kerr.ErrorForCode(t.ErrorCode); err != nil || t.Topic == nil {
			return nil, fmt.Errorf("topic %v: %w", t.Topic, err)
		}
		j.ids[*t.Topic] = t.TopicID
	}
	return j.ids, nil
}
