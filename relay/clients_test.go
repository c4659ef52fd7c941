package relay

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// The tier consumer fetches at its configured size only while the relay is
// busy: re-feeds in flight, a record held due within holdAhead, or a
// partition that got records and is still fetched; idleFetchBytes (or the
// configured size if smaller) otherwise, from its start. A poll without
// records changes nothing; the per-partition limit never changes.
func TestSizeFetches(t *testing.T) {
	tp := func(p int32) topicPartition { return topicPartition{"t", p} }
	polled := func(ps ...int32) kgo.Fetches {
		ft := kgo.FetchTopic{Topic: "t"}
		for _, p := range ps {
			ft.Partitions = append(ft.Partitions, kgo.FetchPartition{Partition: p, Records: []*kgo.Record{{Topic: "t", Partition: p}}})
		}
		return kgo.Fetches{{Topics: []kgo.FetchTopic{ft}}}
	}
	const busy, idle = "busy", "idle"
	now := time.Now()
	for _, tc := range []struct {
		name       string
		fetches    kgo.Fetches
		paused     []int32 // rewound, resumed by a timer
		holdPaused []int32
		held       map[int32]time.Duration // due in
		inflight   []int32
		want       string
	}{
		{name: "polled, still fetched", fetches: polled(0), want: busy},
		{name: "polled, rewound", fetches: polled(0), paused: []int32{0}, want: idle},
		{name: "polled, held far and paused", fetches: polled(0), holdPaused: []int32{0}, held: map[int32]time.Duration{0: 5 * time.Second}, want: idle},
		{name: "held within holdAhead, paused", fetches: polled(1), holdPaused: []int32{1}, held: map[int32]time.Duration{1: holdAhead / 2}, want: busy},
		{name: "held within holdAhead, not polled", fetches: polled(0), paused: []int32{0}, held: map[int32]time.Duration{1: holdAhead / 2}, want: busy},
		{name: "re-feeds in flight", fetches: polled(0), paused: []int32{0}, inflight: []int32{2}, want: busy},
		{name: "one of two polled still fetched", fetches: polled(0, 1), paused: []int32{0}, want: busy},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cl, err := kgo.NewClient(kgo.FetchMaxBytes(4<<20), kgo.FetchMaxPartitionBytes(1<<20))
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			s := &session{cons: cl, fetch: started(cl), paused: map[topicPartition]*pause{}, holdPaused: map[topicPartition]bool{},
				held: map[topicPartition]held{}, inflight: map[topicPartition][]*refeed{}}
			sizes := func(when, want string) {
				t.Helper()
				maxBytes, partBytes := int32(idleFetchBytes), int32(1<<20)
				if want == busy {
					maxBytes = 4 << 20
				}
				if got, gotPart := cl.OptValue(kgo.FetchMaxBytes), cl.OptValue(kgo.FetchMaxPartitionBytes); got != maxBytes || gotPart != partBytes {
					t.Errorf("%s: fetch max bytes %v, per partition %v; want %s: %d, %d", when, got, gotPart, want, maxBytes, partBytes)
				}
			}
			sizes("before the first poll", idle)
			for _, p := range tc.paused {
				s.paused[tp(p)] = &pause{}
			}
			for _, p := range tc.holdPaused {
				s.holdPaused[tp(p)] = true
			}
			for p, in := range tc.held {
				s.held[tp(p)] = held{due: now.Add(in), tail: now.Add(in)}
			}
			for _, p := range tc.inflight {
				s.inflight[tp(p)] = []*refeed{{}}
			}
			s.sizeFetches(tc.fetches)
			sizes("after the poll", tc.want)
			s.sizeFetches(polled())
			sizes("after a poll without records", tc.want)
			// Then records that wait past holdAhead, and nothing else.
			clear(s.held)
			clear(s.inflight)
			clear(s.holdPaused)
			s.paused[tp(3)] = &pause{}
			s.sizeFetches(polled(3))
			sizes("after a poll of records that wait", idle)
		})
	}
	// A configured size under idleFetchBytes stays as it is.
	cl, err := kgo.NewClient(kgo.FetchMaxBytes(100<<10), kgo.FetchMaxPartitionBytes(50<<10))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	started(cl)
	if got, gotPart := cl.OptValue(kgo.FetchMaxBytes), cl.OptValue(kgo.FetchMaxPartitionBytes); got != int32(100<<10) || gotPart != int32(50<<10) {
		t.Errorf("configured 100 KiB and 50 KiB, idle: fetch max bytes %v, per partition %v; want them as they are", got, gotPart)
	}
}

// started is the fetch sizes of cl, started as runSession starts them.
func started(cl *kgo.Client) *fetchSizes {
	f := &fetchSizes{}
	f.start(cl)
	return f
}

// The group's assigned callback sets the idle size before the partitions'
// first fetch, whether or not runSession has started the sizes yet, and a
// second start does not take the idle size for the configured one.
func TestFetchSizesStartAtAssign(t *testing.T) {
	cl, err := kgo.NewClient(kgo.FetchMaxBytes(4<<20), kgo.FetchMaxPartitionBytes(1<<20))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	f := &fetchSizes{}
	f.set(true) // before start: nothing to size yet
	var atAssign any
	f.assigned(func(_ context.Context, cl *kgo.Client, _ map[string][]int32) {
		atAssign = cl.OptValue(kgo.FetchMaxBytes)
	})(context.Background(), cl, map[string][]int32{"t": {0}})
	if atAssign != int32(idleFetchBytes) {
		t.Errorf("fetch max bytes %v when the partitions were assigned; want the idle %d", atAssign, idleFetchBytes)
	}
	f.start(cl) // runSession, after the client is built
	f.set(true)
	if got := cl.OptValue(kgo.FetchMaxBytes); got != int32(4<<20) {
		t.Errorf("busy after two starts: fetch max bytes %v; want the configured %d", got, 4<<20)
	}
}
