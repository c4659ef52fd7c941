// Package kretrytest tests a service's kretry handler in process: it starts
// an in-process Kafka (franz-go's kfake) holding the main, tier and DLQ
// topics of a config's ladders, runs the consumer (with its relay) over it
// with the service's handler, and tells where a record went: handled at
// which attempt, through which tiers, or dead-lettered and why.
//
//	func TestChargeIsRetried(t *testing.T) {
//		synctest.Test(t, func(t *testing.T) {
//			k := kretrytest.New(t, cfg) // cfg from config.Parse or built in Go; stopped when t ends
//			if err := k.Run(handler); err != nil {
//				t.Fatal(err)
//			}
//			rec := &kgo.Record{Topic: "orders", Value: body}
//			if err := k.Produce(t.Context(), rec); err != nil {
//				t.Fatal(err)
//			}
//			fate, err := k.Fate(t.Context(), rec) // waits until handled or dead-lettered
//			// fate.Handled, fate.Tiers() ([retry-5s retry-1m]), fate.Reason, fate.DeadLetter
//		})
//	}
//
// The broker listens on an in-memory network, never on a port, so a test can
// run inside a testing/synctest bubble: the ladder's delays then pass in
// virtual time, and a 5s → 1m → 10m ladder takes milliseconds. Outside a
// bubble everything works the same in real time. Cluster is the type that
// matters; New stops everything it starts when the test ends, Start is for
// code without a testing.TB and is stopped with Close.
package kretrytest
