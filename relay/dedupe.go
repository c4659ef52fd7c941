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
	at   map[copyID]int64 // tier offset of the record re-fed with the identity
	ring []copyID         // in the order remembered, up to copiesKept; next is the oldest once full
	next int
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
	at, ok := m.at[id]
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
	if at, ok := m.at[id]; ok {
		if at > offset { // rewound before it: the lower offset is the one re-fed
			m.at[id] = offset
		}
		return
	}
	if m.at == nil {
		m.at = map[copyID]int64{}
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
