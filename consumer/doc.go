// Package consumer runs a user's Handler over the records of Kafka topics and
// gives it non-blocking, tiered retries: a failed record is forwarded to the next
// retry tier of its ladder or to the DLQ, and its offset is committed only after
// that forward is acknowledged.
//
// The types that matter are Consumer (New, Run), Handler and HandlerFunc, and
// Permanent for errors that must not be retried; a Classifier
// (WithClassifier) may decide otherwise.
//
// # Guarantees
//
// Delivery is at least once. A record's offset is committed when the record is
// done — its handler returned nil, or its forward to a retry tier or the DLQ
// was acknowledged by the broker (acks=all, idempotent producer) — and every
// record before it on its partition is done. A record that is not done when
// its partition is revoked, when Run stops, or when the process dies is
// delivered again: a duplicate, never a loss.
//
// Records of one partition are handled in order, one at a time; partitions run
// in parallel, one goroutine each. A retried record leaves its place: it comes
// back through the main topic after its tier's delay, behind whatever arrived
// meanwhile.
//
// Forwards are pipelined: the handler goes on with the next record of the
// partition (up to 1,000 records ahead) while a forward waits for its
// acknowledgement. A forward the broker refuses is retried in place, with
// backoff and an error log line each time, and the partition's committed
// offset does not move past it meanwhile; if the partition is revoked or Run
// stops first, it and the records after it are delivered again.
//
// Re-fed records are ordinary records of the main topic with kretry-* headers
// (headers.Header*). A kretry consumer of another group commits past them
// without calling its handler; consumers that do not use kretry see them too.
//
// # What goes to the DLQ
//
// A record goes to its ladder's DLQ with a kretry-reason header of
// "permanent" (the classifier said DeadLetter), "exhausted" (the ladder is
// used up), "panic" (the handler panicked; kretry-error holds "panic: " and
// the value), "expired" (older than the topic's max_age, measured from its
// first delivery), "invalid-metadata" (its kretry headers cannot be read;
// the handler is not called), or "too-large" (too large for its forward with
// kretry's headers: written without its value, which kretry-original-* locate
// in the main topic). Otherwise key, value and user headers are kept byte for
// byte. kretry-attempts counts every failure including the last one;
// kretry-tier names the tier the record came from, or "dlq" for a record
// that never went through the ladder.
//
// A forwarded record, to a tier or to the DLQ, is stamped with the time of
// the failure (so a tier's time-based retention counts from then); the first
// delivery's timestamp travels in kretry-original-timestamp, and max_age is
// measured from it. It goes to the partition of its source record modulo the
// target topic's partition count. Run reads the counts when it starts, and
// reads a topic's again when a record's partition is not below it, at most
// every 5 seconds (a failed read is logged and the old count kept): tiers and
// a DLQ raised while Run runs, as "kretry topics apply" does after the main
// topic was raised, get the records of the new partitions at those
// partitions, without a restart.
package consumer

// Implementation notes (not part of the package doc).
//
// A partition's worker (worker.go) takes records off its queue up to 256 at
// a time (one lock, not one per record) and takes each to its fate (fate.go): handled, skipped, discarded, or
// forwarded to a tier or the DLQ. Forwards are pipelined (forward.go): one is
// produced without waiting and the worker goes on, up to maxPending records
// ahead; a failed one is produced again in place (reforward.go). Marks are not
// pipelined (marks.go): a record is marked only when it and every record
// before it is done, so the committed offset never passes a record whose fate
// is not durable.
//
// At a stop, the forwards in flight get the grace period to be acknowledged;
// one still unacknowledged then is abandoned with its record uncommitted (a
// copy acknowledged after all is a duplicate, never a loss), so a silent broker
// cannot hold up a revoke or a shutdown past the grace period.
//
// kgo keeps only a partition's highest mark, so marking the newest record of a
// run of done ones marks them all: one MarkCommitRecords (a sort and the
// group's lock) per run, not per record. The session's flusher also marks,
// every quarter commit interval, so a handler busy for long does not hold back
// the marks of the records before it. The ok counter and handler durations are
// exported in the same bursts, so workers do not contend for a counter's cache
// line on every record.
