package relay

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// indexed is how many identities m finds, checking that each identity in
// ring is found there and that no slot points past ring.
func (m *refedIDs) indexed() int {
	for _, s := range m.slots {
		if int(s&0xffff) > len(m.ring) {
			panic(fmt.Sprintf("a slot indexes ring[%d] of %d", s&0xffff-1, len(m.ring)))
		}
	}
	for j, e := range m.ring {
		if i, _, ok := m.find(e.k); !ok || m.slots[i]&0xffff != uint32(j+1) {
			panic(fmt.Sprintf("ring[%d] is not found from its hash, or is in ring twice", j))
		}
	}
	return len(m.ring)
}

// mapRefedIDs is refedIDs as a map and a ring of keys: what refedIDs must
// answer.
type mapRefedIDs struct {
	at   map[copyID]int64
	ring []copyID
	next int

	topics map[string]bool
}

func (m *mapRefedIDs) copyOf(id copyID, offset int64) bool {
	at, ok := m.at[id]
	return id.topic != "" && ok && at < offset
}

func (m *mapRefedIDs) remember(id copyID, offset int64) {
	if id.topic == "" {
		return
	}
	if !m.topics[id.topic] {
		if len(m.topics) >= maxTopics {
			*m = mapRefedIDs{}
		}
		if m.topics == nil {
			m.topics, m.at = map[string]bool{}, map[copyID]int64{}
		}
		m.topics[id.topic] = true
	}
	if at, ok := m.at[id]; ok {
		m.at[id] = min(at, offset)
		return
	}
	if len(m.ring) < copiesKept {
		m.ring = append(m.ring, id)
	} else {
		delete(m.at, m.ring[m.next])
		m.ring[m.next] = id
		m.next = (m.next + 1) % copiesKept
	}
	m.at[id] = offset
}

// refedIDs answers every copyOf as a map of the copiesKept identities
// remembered last would, through growing, forgetting the oldest, rewinds
// (the same identity remembered again from a lower offset) and more
// original topics than maxTopics.
func TestRefedIDsAsAMap(t *testing.T) {
	for _, tc := range []struct {
		name      string
		ops       int
		topics    int
		offsets   int64 // identities are drawn from this many original offsets
		revisit   int   // 1 in revisit remembers an identity again, rewound
		zeroTopic bool
	}{
		{"consecutive offsets, one topic", 3 * copiesKept, 1, 1 << 40, 0, false},
		{"few identities, many copies", 4 * copiesKept, 2, 600, 3, false},
		{"about copiesKept identities", 6 * copiesKept, 3, copiesKept, 4, true},
		{"more topics than maxTopics", 6 * maxTopics, 3 * maxTopics, 50, 5, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, uint64(len(tc.name))))
			var got refedIDs
			var want mapRefedIDs
			var done []copyID // remembered, for copies
			next := int64(0)  // tier offset
			random := func() copyID {
				id := copyID{topic: fmt.Sprintf("t%d", rng.IntN(tc.topics)), offset: rng.Int64N(tc.offsets),
					partition: rng.Int32N(4), attempts: 1 + rng.IntN(3), replays: rng.IntN(2)}
				if tc.offsets > 1<<32 {
					id.offset = next // one original partition forwarded in order
				}
				if tc.zeroTopic && rng.IntN(50) == 0 {
					id.topic = ""
				}
				return id
			}
			for op := range tc.ops {
				next++
				id := random()
				if len(done) > 0 && rng.IntN(3) == 0 {
					id = done[rng.IntN(len(done))] // a copy, or a record fetched again
				}
				at := next
				if tc.revisit > 0 && rng.IntN(tc.revisit) == 0 {
					at = next - 1 - rng.Int64N(min(next, 100)) // rewound
				}
				if g, w := got.copyOf(id, at), want.copyOf(id, at); g != w {
					t.Fatalf("op %d: copyOf(%+v, %d) = %v, want %v", op, id, at, g, w)
				}
				got.remember(id, at)
				want.remember(id, at)
				if tc.revisit > 0 && rng.IntN(tc.revisit) == 0 { // fetched again from just before it
					at -= 1 + rng.Int64N(2)
					got.remember(id, at)
					want.remember(id, at)
				}
				for _, at := range []int64{at - 1, at, at + 1} {
					if g, w := got.copyOf(id, at), want.copyOf(id, at); g != w {
						t.Fatalf("op %d: after remember, copyOf(%+v, %d) = %v, want %v", op, id, at, g, w)
					}
				}
				done = append(done, id)
				if len(done) > 2*copiesKept {
					done = done[copiesKept:]
				}
				if op%512 == 0 || op == tc.ops-1 {
					if n := got.indexed(); n != len(want.at) || n != len(got.ring) {
						t.Fatalf("op %d: %d identities indexed, ring %d, want %d", op, n, len(got.ring), len(want.at))
					}
				}
			}
			// Every identity asked once more, from far ahead and from 0.
			for _, id := range done {
				for _, at := range []int64{0, 1 << 62} {
					if g, w := got.copyOf(id, at), want.copyOf(id, at); g != w {
						t.Fatalf("at the end: copyOf(%+v, %d) = %v, want %v", id, at, g, w)
					}
				}
			}
		})
	}
}

// BenchmarkRefedIDs is what every re-feed costs the copy check: copyOf,
// then remember, with the memory full.
func BenchmarkRefedIDs(b *testing.B) {
	var m refedIDs
	topic := "orders"
	b.ReportAllocs()
	i := int64(0)
	for b.Loop() {
		id := copyID{topic: topic, offset: i, partition: int32(i % 8), attempts: 1}
		if m.copyOf(id, i) {
			b.Fatal("copy")
		}
		m.remember(id, i)
		i++
	}
}

// BenchmarkRefedIDsFill is what a partition's memory takes, filled once.
func BenchmarkRefedIDsFill(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		var m refedIDs
		for i := range int64(copiesKept) {
			m.remember(copyID{topic: "orders", offset: i, partition: int32(i % 8), attempts: 1}, i)
		}
	}
}
