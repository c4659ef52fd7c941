// Package consumer runs a user's Handler over the records of Kafka topics and
// gives it non-blocking, tiered retries: a failed record is forwarded to the next
// retry tier of its ladder or to the DLQ, and its offset is committed only after
// that forward is acknowledged.
//
// The types that matter are Consumer (New, Run), Handler and HandlerFunc, and
// Permanent for errors that must not be retried.
package consumer
