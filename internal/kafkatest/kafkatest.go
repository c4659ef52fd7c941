package kafkatest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Fake starts an in-process kfake cluster, closed when the test ends, and
// returns it with its seed addresses. kfake's defaults apply (three brokers);
// opts are passed through.
func Fake(t testing.TB, opts ...kfake.Opt) (*kfake.Cluster, []string) {
	t.Helper()
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		t.Fatalf("kafkatest: starting kfake: %v", err)
	}
	t.Cleanup(c.Close)
	return c, c.ListenAddrs()
}

// VirtualFake starts kfake on a kfake.VirtualNetwork, for tests inside a
// testing/synctest bubble (call it with the bubble's t, so the cluster is
// closed inside the bubble). The returned kgo options, SeedBrokers and Dialer,
// connect a client to it; real TCP would stop synctest's clock from advancing.
// Brokers without a port from kfake.Ports get distinct virtual ports.
func VirtualFake(t testing.TB, opts ...kfake.Opt) (*kfake.Cluster, []kgo.Opt) {
	t.Helper()
	vn := new(kfake.VirtualNetwork)
	var next atomic.Int32
	next.Store(40000)
	listen := func(network, address string) (net.Listener, error) {
		// kfake listens on port 0 for "any port"; on the virtual network
		// every 0 would be the same port, so pick one per broker.
		if host, port, err := net.SplitHostPort(address); err == nil && port == "0" {
			address = net.JoinHostPort(host, strconv.Itoa(int(next.Add(1))))
		}
		return vn.Listen(network, address)
	}
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.ListenFn(listen)}, opts...)...)
	if err != nil {
		t.Fatalf("kafkatest: starting kfake on a virtual network: %v", err)
	}
	t.Cleanup(c.Close)
	return c, []kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...), kgo.Dialer(vn.DialContext)}
}

// Name returns a unique topic (or group) name that starts with prefix and
// carries the test's name, so a leftover on a shared broker says where it came
// from: prefix-TestName-1a2b3c4d. Characters Kafka does not allow in a topic
// name become '-'.
func Name(t testing.TB, prefix string) string {
	t.Helper()
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatalf("kafkatest: %v", err)
	}
	name := sanitize(t.Name())
	// Kafka allows 249 characters; leave room for prefix and suffix.
	if len(name) > 150 {
		name = name[:150]
	}
	if prefix != "" {
		name = prefix + "-" + name
	}
	return name + "-" + hex.EncodeToString(b[:])
}

func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '_', r == '-':
			return r
		}
		return '-'
	}, s)
}

// WaitTopics waits until every topic is in adm's broker metadata with a leader
// for each of its partitions. A KRaft broker learns of a topic shortly after
// CreateTopics returns, so a test that creates a topic and uses it at once can
// see UNKNOWN_TOPIC_OR_PARTITION without this. It fails the test after 30s.
func WaitTopics(t testing.TB, adm *kadm.Client, topics ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		var missing error
		tds, err := adm.ListTopics(ctx, topics...)
		if err != nil {
			missing = err
		}
		for _, topic := range topics {
			td, ok := tds[topic]
			switch {
			case missing != nil:
			case !ok:
				missing = fmt.Errorf("topic %s is not in the metadata", topic)
			case td.Err != nil:
				missing = fmt.Errorf("topic %s: %w", topic, td.Err)
			case len(td.Partitions) == 0:
				missing = fmt.Errorf("topic %s has no partitions yet", topic)
			default:
				for _, p := range td.Partitions {
					if p.Err != nil || p.Leader < 0 {
						missing = fmt.Errorf("topic %s partition %d has no leader yet (%v)", topic, p.Partition, p.Err)
						break
					}
				}
			}
		}
		if missing == nil {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("kafkatest: waiting for topics %v: %v", topics, missing)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// WaitFor polls cond every interval until it holds, and fails the test when it
// still does not after within. Inside a synctest bubble both are virtual time,
// so a long bound costs nothing: it is a liveness bound, not a speed check.
func WaitFor(t testing.TB, what string, interval, within time.Duration, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(within); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("still waiting for %s after %s", what, within)
		}
		time.Sleep(interval)
	}
}

// RefuseProduce answers req, in a kfake ControlKey function, with code for
// every partition it writes to: a broker that refuses the whole request.
func RefuseProduce(req *kmsg.ProduceRequest, code int16) *kmsg.ProduceResponse {
	resp := req.ResponseKind().(*kmsg.ProduceResponse)
	for _, rt := range req.Topics {
		st := kmsg.NewProduceResponseTopic()
		st.Topic, st.TopicID = rt.Topic, rt.TopicID
		for _, rp := range rt.Partitions {
			sp := kmsg.NewProduceResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.ErrorCode = code
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp
}

// Buffer collects what a running client, logger or command writes while a
// test reads it: Write and String are safe at the same time.
type Buffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// EndOffsets returns the end offset of each partition of topic.
func EndOffsets(t testing.TB, ctx context.Context, adm *kadm.Client, topic string) map[int32]int64 {
	t.Helper()
	offs, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	out := map[int32]int64{}
	offs.Each(func(o kadm.ListedOffset) {
		if o.Err != nil {
			t.Fatalf("end offset of %s[%d]: %v", topic, o.Partition, o.Err)
		}
		out[o.Partition] = o.Offset
	})
	return out
}
