package chaos

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/headers"
)

// MalformedBase is the first id of the records with broken kretry headers.
const MalformedBase = 1_000_000

type producer struct {
	cl     *kgo.Client
	cancel context.CancelFunc
	done   chan struct{}

	mu        sync.Mutex
	acked     []int64
	malformed []int64
	err       error
}

// startProducer produces scn.Rate records a second to the main topic (and
// scn.Malformed records with broken kretry headers, spread over the first
// minute) until stop.
func startProducer(brokers []string, r *Run, scn Scenario) (*producer, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(r.topic),
		kgo.RecordDeliveryTimeout(3*time.Minute), kgo.ProducerLinger(5*time.Millisecond))
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &producer{cl: cl, cancel: cancel, done: make(chan struct{})}
	go p.loop(ctx, r, scn)
	return p, nil
}

func (p *producer) loop(ctx context.Context, r *Run, scn Scenario) {
	defer close(p.done)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	perTick := max(1, scn.Rate/10)
	var next int64
	for n := 0; ; n++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		for range perTick {
			id := next
			next++
			p.produce(ctx, &kgo.Record{Key: []byte(strconv.FormatInt(id, 10)), Value: RecordValue(id)}, id, false)
		}
		if m := n / 5; n%5 == 0 && m < scn.Malformed {
			id := int64(MalformedBase + m)
			p.produce(ctx, r.malformed(id, m), id, true)
		}
	}
}

func (p *producer) produce(ctx context.Context, rec *kgo.Record, id int64, malformed bool) {
	p.cl.Produce(ctx, rec, func(_ *kgo.Record, err error) {
		p.mu.Lock()
		defer p.mu.Unlock()
		switch {
		case err == nil && malformed:
			p.malformed = append(p.malformed, id)
		case err == nil:
			p.acked = append(p.acked, id)
		case !errors.Is(err, context.Canceled):
			p.err = errors.Join(p.err, fmt.Errorf("record %d not produced: %w", id, err))
		}
	})
}

// malformed builds record id with broken kretry headers, one of three kinds:
// on the main topic with a kretry-attempts that is not a number, on the main
// topic with a kretry-due-at that is not a time, in the first tier with a
// kretry-due-at that is not a time.
func (r *Run) malformed(id int64, kind int) *kgo.Record {
	rec := &kgo.Record{Topic: r.topic, Key: []byte(strconv.FormatInt(id, 10)), Value: RecordValue(id)}
	hs := []kgo.RecordHeader{
		{Key: headers.HeaderVersion, Value: []byte("1")},
		{Key: headers.HeaderGroup, Value: []byte(r.group)},
		{Key: headers.HeaderTier, Value: []byte(r.steps[0].Name)},
		{Key: headers.HeaderOriginalTopic, Value: []byte(r.topic)},
	}
	due := time.Now().UTC().Format(headers.TimeLayout)
	switch kind % 3 {
	case 0:
		hs = append(hs, kgo.RecordHeader{Key: headers.HeaderAttempts, Value: []byte("one")},
			kgo.RecordHeader{Key: headers.HeaderDueAt, Value: []byte(due)})
	case 1:
		hs = append(hs, kgo.RecordHeader{Key: headers.HeaderAttempts, Value: []byte("1")},
			kgo.RecordHeader{Key: headers.HeaderDueAt, Value: []byte("soon")})
	case 2:
		rec.Topic = r.steps[0].Topic
		hs = append(hs, kgo.RecordHeader{Key: headers.HeaderAttempts, Value: []byte("1")},
			kgo.RecordHeader{Key: headers.HeaderDueAt, Value: []byte("soon")})
	}
	rec.Headers = hs
	return rec
}

// stop stops producing, waits for the acknowledgements, and returns the ids
// produced.
func (p *producer) stop() (acked, malformed []int64, err error) {
	p.cancel()
	<-p.done
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if ferr := p.cl.Flush(ctx); ferr != nil {
		err = fmt.Errorf("flushing the producer: %w", ferr)
	}
	p.cl.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.acked, p.malformed, errors.Join(err, p.err)
}

// rec is what the analysis needs of a record read back.
type rec struct {
	Topic         string
	Partition     int32
	Offset        int64
	Timestamp     time.Time
	ID            int64
	IDOK          bool
	Attempts      string // kretry-attempts as written
	DueAt         time.Time
	Reason        string
	Transactional bool
	Reparked      bool   // carries kretry-parked-at: the relay wrote it again to its tier, not a ladder copy
	Handling      string // an output's HeaderHandling
}

// reader reads every topic of a run from the start, read_committed, as a
// user's read_committed consumer would see them.
type reader struct {
	cl   *kgo.Client
	done chan struct{}

	mu   sync.Mutex
	recs []rec
	last time.Time
	dlq  map[int64]bool
}

func startReader(brokers []string, topics []string) (*reader, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topics...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.FetchMaxWait(500*time.Millisecond))
	if err != nil {
		return nil, err
	}
	rd := &reader{cl: cl, done: make(chan struct{}), last: time.Now(), dlq: map[int64]bool{}}
	dlqTopic := topics[len(topics)-1]
	go func() {
		defer close(rd.done)
		for {
			fs := cl.PollFetches(context.Background())
			if fs.IsClientClosed() {
				return
			}
			var batch []rec
			fs.EachRecord(func(r *kgo.Record) {
				x := rec{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Timestamp: r.Timestamp,
					Transactional: r.Attrs.IsTransactional()}
				x.ID, x.IDOK = ParseValue(r.Value)
				x.Attempts, _ = header(r.Headers, headers.HeaderAttempts)
				x.Reason, _ = header(r.Headers, headers.HeaderReason)
				_, x.Reparked = header(r.Headers, headers.HeaderParkedAt)
				x.Handling, _ = header(r.Headers, HeaderHandling)
				if v, ok := header(r.Headers, headers.HeaderDueAt); ok {
					x.DueAt, _ = time.Parse(headers.TimeLayout, v)
				}
				batch = append(batch, x)
			})
			if len(batch) > 0 {
				rd.mu.Lock()
				rd.recs = append(rd.recs, batch...)
				rd.last = time.Now()
				for _, x := range batch {
					if x.Topic == dlqTopic && x.IDOK {
						rd.dlq[x.ID] = true
					}
				}
				rd.mu.Unlock()
			}
		}
	}()
	return rd, nil
}

func (rd *reader) dlqIDs(string) map[int64]bool {
	rd.mu.Lock()
	defer rd.mu.Unlock()
	out := make(map[int64]bool, len(rd.dlq))
	for id := range rd.dlq {
		out[id] = true
	}
	return out
}

// drain waits until nothing new arrived for idle (at most a minute), then
// stops reading and returns every record read.
func (rd *reader) drain(idle time.Duration) []rec {
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		rd.mu.Lock()
		quiet := time.Since(rd.last) >= idle
		rd.mu.Unlock()
		if quiet {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	rd.close()
	rd.mu.Lock()
	defer rd.mu.Unlock()
	return rd.recs
}

func (rd *reader) close() {
	rd.cl.Close()
	<-rd.done
}
