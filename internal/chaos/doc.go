// Package chaos is kretry's fault suite (make chaos, and the short version
// TestShortFaultSuite that make test runs): it starts Apache Kafka brokers with
// scripts/kafka/cluster.sh, runs real kretry processes against them — the
// chaosworker program (cmd/chaosworker: consumer.New + Run with a
// deterministic handler, see Outcome) and `kretry relay` — breaks things
// (kill -9 of consumers and relays, a broker stopped and restarted, a
// rebalance storm, partition leaders of a 3-node cluster killed, malformed
// kretry headers), and then reads every topic back read_committed to count
// what was lost, handled twice or copied twice down the ladder, how long the
// survivors took to take over, and whether any record was re-fed early.
//
// Each scenario runs in both modes (exactly_once off and on). A build that
// does not really run exactly_once — the config refuses the key, or a
// consumer with it forwards outside transactions — gets "not available" and
// the reason, not figures.
package chaos
