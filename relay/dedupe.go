package relay

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
type refedIDs struct {
	at   map[copyKey]int64 // tier offset of the record re-fed with the identity
	ring []copyKey         // in the order remembered, up to copiesKept; next is the oldest once full
	next int

	// The original topics of the identities remembered, by index: a key of
	// integers hashes and compares faster than one with a string. last is
	// the topic looked up last, almost always the tier's main topic.
	topics map[string]int32
	last   string
	lastAt int32
}

// copyKey is a copyID with its topic as an index into refedIDs.topics.
type copyKey struct {
	offset    int64
	partition int32
	topic     int32
	attempts  int32 // at most headers.MaxAttempts, as replays
	replays   int32
}

// maxTopics bounds the original topics remembered: past it (a tier whose
// records name thousands of original topics, which only forged headers do)
// the partition forgets what it re-fed and starts again. Forgetting costs
// at most a copy re-fed, never a record skipped.
const maxTopics = 1024

// key returns id's key; false when id's topic is not known and add is
// false.
func (m *refedIDs) key(id copyID, add bool) (copyKey, bool) {
	k := copyKey{offset: id.offset, partition: id.partition, attempts: int32(id.attempts), replays: int32(id.replays)}
	if id.topic == m.last && m.topics != nil {
		k.topic = m.lastAt
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
	k.topic = i
	return k, true
}

// copyOf reports whether the record at offset carrying id is a copy of one
// re-fed earlier from a lower offset of the partition. The record itself,
// fetched again after a rewind (a failed re-feed, an aborted transaction),
// is not a copy: it is re-fed again. A record without a
// kretry-original-topic names no first delivery and is never a copy.
func (m *refedIDs) copyOf(id copyID, offset int64) bool {
	if id.topic == "" {
		return false
	}
	k, ok := m.key(id, false)
	if !ok {
		return false
	}
	at, ok := m.at[k]
	return ok && at < offset
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
	if at, ok := m.at[k]; ok {
		if at > offset { // rewound before it: the lower offset is the one re-fed
			m.at[k] = offset
		}
		return
	}
	if m.at == nil {
		m.at = make(map[copyKey]int64, copiesKept)
	}
	if len(m.ring) < copiesKept {
		m.ring = append(m.ring, k)
	} else {
		delete(m.at, m.ring[m.next])
		m.ring[m.next] = k
		m.next = (m.next + 1) % copiesKept
	}
	m.at[k] = offset
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
