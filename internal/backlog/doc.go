// Package backlog tells a poll loop that ends Kafka transactions early when
// it is idle (kretry's consumer and relay in exactly_once) whether what it
// fetched last left records to fetch: then a poll that brings nothing is the
// round trip of the next fetch, not idleness.
//
// A fetch brings at most the fetch size of each partition. The next fetch
// is sent only once a poll took the last one, and takes a round trip or
// more, during which polls bring nothing. A loop that took such a gap for
// idle ended a transaction after every fetch of a backlog, stopping for the
// flush and the end each time: B2eos measured the relay ending one every
// 250 ms, each stopping it for 50 to 400 ms, and the consumer alike while it
// handled the re-feeds.
package backlog
