package dlq

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// progress returns the group's committed offsets on the DLQ.
func (r *Reader) progress(ctx context.Context, group string) (map[int32]kadm.Offset, error) {
	var resps kadm.OffsetResponses
	err := withCoordinator(ctx, func() (err error) {
		resps, err = r.adm.FetchOffsetsForTopics(ctx, group, r.topic)
		return err
	})
	if err != nil {
		if errors.Is(err, kerr.GroupIDNotFound) {
			return nil, nil
		}
		return nil, fmt.Errorf("reading the progress of replay group %s: %w", group, err)
	}
	out := map[int32]kadm.Offset{}
	for p, o := range resps[r.topic] {
		if o.Err != nil {
			return nil, fmt.Errorf("reading the progress of replay group %s on %s partition %d: %w", group, r.topic, p, o.Err)
		}
		if o.At >= 0 {
			out[p] = o.Offset
		}
	}
	return out, nil
}

func (r *Reader) deleteProgress(ctx context.Context, group string, ps []Partition) error {
	set := kadm.TopicsSet{}
	for _, p := range ps {
		set.Add(r.topic, p.Partition)
	}
	var resps kadm.DeleteOffsetsResponses
	err := withCoordinator(ctx, func() (err error) {
		resps, err = r.adm.DeleteOffsets(ctx, group, set)
		return err
	})
	switch {
	case errors.Is(err, kerr.GroupIDNotFound):
		return nil
	case err != nil:
		return fmt.Errorf("deleting the progress of replay group %s: %w (is a replay of this group running?)", group, err)
	}
	for _, ps := range resps {
		for p, err := range ps {
			if err != nil && !errors.Is(err, kerr.UnknownTopicOrPartition) {
				return fmt.Errorf("deleting the progress of replay group %s on partition %d: %w", group, p, err)
			}
		}
	}
	return nil
}

func (r *Reader) commit(ctx context.Context, group string, p int32, at int64, meta string) error {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	os := kadm.Offsets{}
	os.Add(kadm.Offset{Topic: r.topic, Partition: p, At: at, LeaderEpoch: -1, Metadata: meta})
	err := withCoordinator(cctx, func() error {
		resps, err := r.adm.CommitOffsets(cctx, group, os)
		if err == nil {
			err = resps.Error()
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("committing the progress of replay group %s on %s partition %d at %d: %w", group, r.topic, p, at, err)
	}
	return nil
}

// coordinatorWait bounds how long a replay waits for its group's
// coordinator: on a new cluster there is none until the offsets topic is
// created, and anywhere one may be loading or moving.
const coordinatorWait = 30 * time.Second

// withCoordinator calls fn again, backing off, while it fails for want of
// the group's coordinator, for up to coordinatorWait or until ctx is done;
// then it returns fn's last error.
func withCoordinator(ctx context.Context, fn func() error) error {
	deadline := time.Now().Add(coordinatorWait)
	backoff := 50 * time.Millisecond
	for {
		err := fn()
		if !errors.Is(err, kerr.CoordinatorNotAvailable) && !errors.Is(err, kerr.CoordinatorLoadInProgress) && !errors.Is(err, kerr.NotCoordinator) ||
			time.Now().Add(backoff).After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Second)
	}
}

// txnCommitProgress commits progress as the replay group's offsets within
// the open transaction of cl (KIP-98's AddOffsetsToTxn and TxnOffsetCommit:
// franz-go does this only for a group it consumes with, and a replay reads
// without one).
func (r *Reader) txnCommitProgress(ctx context.Context, cl *kgo.Client, t *replayTxn, group string, progress map[int32]int64, meta string) error {
	if len(progress) == 0 {
		return nil
	}
	id, epoch, err := cl.ProducerID(ctx)
	if err != nil {
		return fmt.Errorf("replay transaction %s: producer id: %w", t.id, err)
	}
	err = withCoordinator(ctx, func() error {
		req := kmsg.NewPtrAddOffsetsToTxnRequest()
		req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Group = t.id, id, epoch, group
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			return err
		}
		return kerr.ErrorForCode(resp.ErrorCode)
	})
	if err != nil {
		return fmt.Errorf("replay transaction %s: adding the progress of group %s: %w", t.id, group, err)
	}
	err = withCoordinator(ctx, func() error {
		req := kmsg.NewPtrTxnOffsetCommitRequest()
		req.TransactionalID, req.Group, req.ProducerID, req.ProducerEpoch = t.id, group, id, epoch
		req.Generation = -1
		rt := kmsg.NewTxnOffsetCommitRequestTopic()
		rt.Topic, rt.TopicID = r.topic, t.topicID
		for p, at := range progress {
			rp := kmsg.NewTxnOffsetCommitRequestTopicPartition()
			rp.Partition, rp.Offset, rp.LeaderEpoch, rp.Metadata = p, at, -1, &meta
			rt.Partitions = append(rt.Partitions, rp)
		}
		req.Topics = append(req.Topics, rt)
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			return err
		}
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
					return fmt.Errorf("partition %d: %w", p.Partition, err)
				}
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("replay transaction %s: committing the progress of group %s on %s: %w", t.id, group, r.topic, err)
	}
	return nil
}

// newTxn returns the transaction state of an exactly-once replay whose
// progress group is group: a transactional id of its own and the DLQ's
// topic id (TxnOffsetCommit v6 names topics by id).
func (r *Reader) newTxn(ctx context.Context, group string) (*replayTxn, error) {
	var b [8]byte
	if _, err := crand.Read(b[:]); err != nil {
		return nil, err
	}
	t := &replayTxn{id: "kretry/" + group + "/replay/" + hex.EncodeToString(b[:]), progress: map[int32]int64{}}
	details, err := r.adm.ListTopics(ctx, r.topic)
	if err == nil {
		err = details[r.topic].Err
	}
	if err != nil {
		return nil, fmt.Errorf("looking up %s: %w", r.topic, err)
	}
	t.topicID = details[r.topic].ID
	return t, nil
}
