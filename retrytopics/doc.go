// Package retrytopics holds kretry's retry ladder, the names of its topics,
// the header contract that a record carries across hops, and the Relay that
// re-feeds a waiting record to its main topic when it is due.
//
// A Ladder (NewLadder) is the ordered list of retry tiers of one main topic
// for one consumer group: each Step has a delay, a number of attempts, a
// name ("retry-5s") and a topic ("orders.retry-5s" by DefaultNaming).
// Ladder.For maps failure number k to the tier that takes it, or to the DLQ
// (DefaultDLQ, "orders.dlq") once the ladder is used up.
//
// Encode and Decode write and read the kretry-* headers (the Header*
// constants, version 1): Encode replaces every kretry header and keeps the
// user's headers in order; Decode is strict and reports a bad, missing or
// repeated header as a *HeaderError, never as a zero value.
//
// A Relay (NewRelay, Run) consumes every tier topic in one consumer group.
// A record that is due is produced to the main topic at its original
// partition (modulo the main topic's partition count, read again when a
// record's partition is not below it, so a raised main topic is followed
// without a restart), acknowledged, and only then committed. A record due within the
// next second is held in memory with the records polled after it, its
// partition paused without a rewind, and re-fed by the poll loop at its due
// time; what is held is bounded (WithRelayHoldBytes, default 64 MiB, nearest
// due first, a quarter of it for records due later). Past that bound a
// partition is paused, rewound to its head and resumed by a timer a second
// before the head is due, so a backlog of waiting records costs no more
// memory than the bound, and no goroutine.
package retrytopics
