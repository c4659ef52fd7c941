// Package topics provisions and checks the tier and DLQ topics of retry
// ladders.
//
// Plan compares what the ladders want (partitions, retention,
// max.message.bytes) with the cluster, Apply makes the changes, and
// EnsureTopics does both; none of them ever creates a main topic, deletes a
// topic or shortens a retention. Check reports the ladders' topics that do
// not exist as a *MissingTopicsError.
package topics
