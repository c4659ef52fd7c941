// Package demo runs kretry's whole ladder on an embedded broker: it starts an
// in-process kfake cluster on 127.0.0.1, creates a main topic with a short
// ladder (1s, 3s, 5s×2) and its DLQ, produces records whose handler outcome is
// decided by their key (Plan), runs the consumer and the relay, and tallies
// what became of every record by reading the topics back (Tally).
//
// `kretry demo` is a thin command over Run.
package demo
