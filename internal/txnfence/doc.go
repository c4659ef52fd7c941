// Package txnfence aborts at once the open transactions that dead kretry
// instances of a group left behind (exactly_once).
//
// A kretry consumer or relay killed in the middle of a transaction leaves it
// open: the transaction holds the last stable offset of every partition it
// wrote to (forwards to tiers and the DLQ, Emit outputs, re-feeds into a
// main topic) and may hold the group's committed offsets (OffsetFetch
// answers UNSTABLE_OFFSET_COMMIT), so read_committed readers of those
// partitions, the surviving instances included, stall until the brokers
// abort it after the transaction timeout and their abort-check interval.
// An instance restarted with the same instance_id reuses the transactional
// id and fences it at once; an instance with a random id never comes back.
//
// A Fencer sweeps when its instance is assigned partitions, which happens
// when a dead member's partitions move: it lists the ongoing transactions
// whose transactional id has the group's kretry prefix
// (kretry/<group>/consumer/ or kretry/<group>/relay/), describes the group,
// and fences each transaction no live member owns by initializing its
// transactional id (InitProducerID): the coordinator bumps the id's epoch
// and aborts the transaction, and the last stable offsets move.
//
// A live member is never fenced: each kretry instance's group client
// reports its transactional id as its client id, or is a static member
// whose group instance id ends its transactional id. When the group has a
// member it cannot tell (another client id and no instance id: an older
// kretry, another program), or the description lacks the sweeping instance
// itself, the sweep fences nothing.
package txnfence
