package consumer

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Emit produces rec as an output of the record the handler of ctx is
// handling: ctx must be the context Handle was called with. The output is
// produced only if the handler returns nil, after it returns, with acks=all
// on the consumer's idempotent producer; the handled record is marked done
// only once every output it emitted is acknowledged, so a crash never
// commits a record whose outputs are lost (they may be produced twice: at
// least once). With exactly_once, the outputs are produced in the
// transaction that commits the record's offset: a read_committed reader sees
// them once, and never the outputs of an attempt that failed.
//
// rec.Topic must be set. A record with a key goes to the partition of its key
// (Kafka's murmur2 hash, as the Java client and kgo's default partitioner
// place it), one without a key to any partition. Emit keeps rec; the
// handler must not change it after the call. An output that cannot be
// produced (refused by the broker, or not acknowledged within the delivery
// timeout) makes the handling a failure: the record goes to its next retry
// tier with that error. With exactly_once the failed write aborts the
// transaction; a refused output's record then goes to its next tier in the
// next transaction without being handled again, and after a write that
// merely timed out the record is handled again.
//
// Emit returns an error, and produces nothing, when ctx is not the context of
// a running Handle call, or rec has no topic. It is safe to call from several
// goroutines during one Handle call; one that races the call's return may
// be dropped.
func Emit(ctx context.Context, rec *kgo.Record) error {
	e, _ := ctx.Value(emitterKey{}).(*emitter)
	if e == nil {
		return errors.New("consumer.Emit: ctx is not a Handle call's context: pass the ctx Handle was called with")
	}
	if rec == nil || rec.Topic == "" {
		return errors.New("consumer.Emit: the record has no topic: set rec.Topic")
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for {
		st := e.state.Load()
		if st&emitOpen == 0 {
			return errors.New("consumer.Emit: called after Handle returned: emit within the Handle call")
		}
		if e.state.CompareAndSwap(st, st+emitOne) {
			break
		}
	}
	e.recs = append(e.recs, rec) // before finish, which waits for e.mu, takes it
	return nil
}

type emitterKey struct{}

// emitter collects what the handler of one worker emits during one call.
// start and finish run on the worker's goroutine for every record: one
// atomic operation each, without a lock unless something was emitted.
type emitter struct {
	// state is emitOpen while a call runs, plus emitOne per record
	// emitted in it: one word, so that an Emit racing finish either
	// counts in this call or fails.
	state atomic.Uint64
	mu    sync.Mutex
	recs  []*kgo.Record
}

const (
	emitOpen = 1
	emitOne  = 2
)

// start opens the emitter for a handler call.
func (e *emitter) start() { e.state.Store(emitOpen) }

// finish closes the emitter and returns what the call emitted, which the
// caller owns.
func (e *emitter) finish() []*kgo.Record {
	if e.state.Swap(0) < emitOne {
		return nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	recs := e.recs
	e.recs = nil
	return recs
}

// produceEmitted produces the records the handler of rec emitted and waits
// for every acknowledgement. A nil error means all are written. An error
// names the first output that failed; it is the handling's failure.
func (w *worker) produceEmitted(recs []*kgo.Record) error {
	for _, r := range recs {
		r.Context = emittedCtx
	}
	if err := w.s.cl.ProduceSync(w.ctx, recs...).FirstErr(); err != nil {
		if w.txn {
			w.s.broken.Store(true) // the transaction holds a failed produce
		}
		return fmt.Errorf("producing an output emitted by the handler: %w", err)
	}
	return nil
}

// emittedCtx marks the records Emit produces, for the consumer's
// partitioner: kretry's forwards carry the partition they go to, outputs go
// where their key hashes.
var emittedCtx = context.WithValue(context.Background(), emittedKey{}, true)

type emittedKey struct{}

// partitioner places kretry's forwards on the partition they carry and the
// handler's outputs (Emit) as kgo's default partitioner does.
type partitioner struct{ hash kgo.Partitioner }

func newPartitioner() kgo.Partitioner {
	return partitioner{hash: kgo.StickyKeyPartitioner(nil)}
}

func (p partitioner) ForTopic(topic string) kgo.TopicPartitioner {
	return &topicPartitioner{hash: p.hash.ForTopic(topic)}
}

type topicPartitioner struct{ hash kgo.TopicPartitioner }

func (p *topicPartitioner) RequiresConsistency(r *kgo.Record) bool { return true }

func (p *topicPartitioner) Partition(r *kgo.Record, n int) int {
	if r.Context != emittedCtx {
		return int(r.Partition)
	}
	return p.hash.Partition(r, n)
}

// OnNewBatch lets the sticky partitioner move keyless outputs on to another
// partition when a batch fills, as kgo's default does.
func (p *topicPartitioner) OnNewBatch() {
	if nb, ok := p.hash.(kgo.TopicPartitionerOnNewBatch); ok {
		nb.OnNewBatch()
	}
}
