// Package ladder resolves a retry ladder: the ordered tiers of one main
// topic for one consumer group, and the names of their topics.
//
// A Ladder (New) holds a Step per tier, each with a delay, a number of
// attempts, a name ("retry-5s") and a topic ("orders.retry-5s" by
// DefaultNaming), and the DLQ ("orders.dlq" by DefaultDLQ). Ladder.For maps
// failure number k to the tier that takes it, or to the DLQ once the ladder
// is used up.
package ladder
