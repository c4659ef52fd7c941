package relay

import "math/rand/v2"

// copyID is what makes two tier records copies of one attempt: the same
// first delivery (kretry-original-topic, -partition, -offset), the same
// kretry-attempts and kretry-replays. The group is the tier's (another
// group's record is never re-fed), so it is the same too.
type copyID struct {
	topic     string // kretry-original-topic
	offset    int64  // kretry-original-offset
	partition int32  // kretry-original-partition
	attempts  int
	replays   int
}

// copiesKept is how many identities a tier partition remembers, the most
// recently re-fed: a copy is written by a consumer that was killed before
// it committed, so it lands within about a commit interval of forwards
// after the first.
const copiesKept = 4096

// refedIDs remembers the identities of the records one tier partition
// re-fed (or dead-lettered as too large) in this session, with the tier
// offset of the record that carried each, the copiesKept most recent. Only
// the partition's goroutine of a poll uses it; the session's map of them is
// under s.mu.
//
// Every re-feed looks an identity up and remembers one, so it is a hash
// table of its own rather than a map: ring holds the identities, and slots
// indexes them by a hash of the integers, with linear probing; a slot also
// holds 16 bits of its identity's hash, so that a look-up reads ring (a
// cache miss, most of the time) only for a likely match. An identity
// forgotten (its place in ring taken by a new one) leaves its slot pointing
// at the new one, which is found from its own slot, and is never found
// itself again; once half the slots are taken they are built again from
// ring.
type refedIDs struct {
	ring  []refedAt // in the order remembered, up to copiesKept; next is the oldest once full
	next  int
	slots []uint32 // tag<<16 | 1 + an index into ring (see find), 0 for a free slot; a power of two long
	used  int      // slots not free
	seed  uint64   // of the hash, so that forged headers cannot choose to collide

	// The original topics of the identities remembered, by index: a key of
	// integers hashes and compares faster than one with a string. last is
	// the topic looked up last, almost always the tier's main topic.
	topics map[string]int32
	last   string
	lastAt int32
}

// refedAt is an identity remembered, with the tier offset of the record
// re-fed with it.
type refedAt struct {
	k  copyKey
	at int64
}

// copyKey is a copyID with its topic as an index into refedIDs.topics, in
// three words: it is hashed and compared in registers.
type copyKey struct {
	offset int64
	pt     uint64 // partition<<32 | topic
	ar     uint64 // attempts<<32 | replays, each at most headers.MaxAttempts
}

// minSlots and maxSlots bound the slots of a refedIDs: it starts small
// and doubles them while more than a quarter hold identities in ring, so
// that, full, it builds them again every copiesKept identities.
const (
	minSlots = 64
	maxSlots = 4 * copiesKept
)

// An index into ring, plus one, fits the low 16 bits of a slot.
const _ = uint16(copiesKept)

// maxTopics bounds the original topics remembered: past it (a tier whose
// records name thousands of original topics, which only forged headers do)
// the partition forgets what it re-fed and starts again. Forgetting costs
// at most a copy re-fed, never a record skipped.
const maxTopics = 1024

// key returns id's key; false when id's topic is not known and add is
// false.
func (m *refedIDs) key(id copyID, add bool) (copyKey, bool) {
	k := copyKey{offset: id.offset, pt: uint64(uint32(id.partition)) << 32, ar: uint64(uint32(id.attempts))<<32 | uint64(uint32(id.replays))}
	if id.topic == m.last && m.topics != nil {
		k.pt |= uint64(uint32(m.lastAt))
		return k, true
	}
	i, ok := m.topics[id.topic]
	if !ok {
		if !add {
			return k, false
		}
		if len(m.topics) >= maxTopics {
			*m = refedIDs{}
		}
		if m.topics == nil {
			m.topics = map[string]int32{}
		}
		i = int32(len(m.topics))
		m.topics[id.topic] = i
	}
	m.last, m.lastAt = id.topic, i
	k.pt |= uint64(uint32(i))
	return k, true
}

// hash mixes every field of k, the offset last, so that the consecutive
// offsets of one original partition spread over the slots.
func (m *refedIDs) hash(k copyKey) uint64 {
	h := k.pt*0xc2b2ae3d27d4eb4f ^ k.ar*0x165667b19e3779f9
	h = (h ^ uint64(k.offset) ^ m.seed) * 0x9e3779b97f4a7c15
	return h ^ h>>32
}

// find returns the slot of k, or the free slot where it would go, and k's
// tag: the top 16 bits of its hash, in the top 16 bits of a slot.
func (m *refedIDs) find(k copyKey) (slot int, tag uint32, ok bool) {
	h := m.hash(k)
	tag = uint32(h>>48) << 16
	mask := len(m.slots) - 1
	for i := int(h) & mask; ; i = (i + 1) & mask {
		switch s := m.slots[i]; {
		case s == 0:
			return i, tag, false
		case s&^0xffff == tag && m.ring[s&0xffff-1].k == k:
			return i, tag, true
		}
	}
}

// copyOf reports whether the record at offset carrying id is a copy of one
// re-fed earlier from a lower offset of the partition. The record itself,
// fetched again after a rewind (a failed re-feed, an aborted transaction),
// is not a copy: it is re-fed again. A record without a
// kretry-original-topic names no first delivery and is never a copy.
func (m *refedIDs) copyOf(id copyID, offset int64) bool {
	if id.topic == "" || len(m.ring) == 0 {
		return false
	}
	k, ok := m.key(id, false)
	if !ok {
		return false
	}
	i, _, ok := m.find(k)
	return ok && m.ring[m.slots[i]&0xffff-1].at < offset
}

// remember records that the record at offset carrying id is being re-fed.
// Its copies behind it are done only after it: marks go in offset order and
// stop at a re-feed that failed, so a skipped copy is never committed
// without the re-feed it is a copy of.
func (m *refedIDs) remember(id copyID, offset int64) {
	if id.topic == "" {
		return
	}
	k, _ := m.key(id, true)
	if m.slots == nil {
		m.slots, m.seed = make([]uint32, minSlots), rand.Uint64()
	}
	i, tag, ok := m.find(k)
	if ok {
		if e := &m.ring[m.slots[i]&0xffff-1]; e.at > offset { // rewound before it: the lower offset is the one re-fed
			e.at = offset
		}
		return
	}
	e := refedAt{k: k, at: offset}
	if len(m.ring) < copiesKept {
		m.ring = append(m.ring, e)
		m.slots[i] = tag | uint32(len(m.ring))
	} else { // the oldest is forgotten
		m.ring[m.next] = e
		m.slots[i] = tag | uint32(m.next+1)
		m.next = (m.next + 1) % copiesKept
	}
	if m.used++; 2*m.used >= len(m.slots) {
		m.rebuild()
	}
}

// rebuild indexes ring in free slots, twice as many when more than a
// quarter of them would hold identities.
func (m *refedIDs) rebuild() {
	n := len(m.slots)
	if 4*len(m.ring) > n && n < maxSlots {
		n *= 2
	}
	if n == len(m.slots) {
		clear(m.slots)
	} else {
		m.slots = make([]uint32, n)
	}
	for j, e := range m.ring {
		i, tag, _ := m.find(e.k)
		m.slots[i] = tag | uint32(j+1)
	}
	m.used = len(m.ring)
}

// refedOf returns tp's memory of re-fed identities, creating it.
func (s *session) refedOf(tp topicPartition) *refedIDs {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.refedIDs[tp]
	if m == nil {
		m = &refedIDs{}
		s.refedIDs[tp] = m
	}
	return m
}
