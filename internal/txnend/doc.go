// Package txnend ends the transactions of a kgo.GroupTransactSession that
// blocks rebalances while it polls (kgo.BlockRebalanceOnPoll), as kretry's
// consumer and relay do in exactly_once, without waiting out a group
// session that is already lost.
//
// Before it commits, GroupTransactSession.End forces a heartbeat and waits
// for its answer, or for the revoke or lost callback that tells it the
// session ended. When the group's heartbeat loop has already stopped on an
// error (the brokers were unreachable for a moment: a broker restarted, the
// group coordinator moved), nothing answers the forced heartbeat, and the
// lost callback that would end the wait is held by BlockRebalanceOnPoll
// until the poller allows rebalances, which it does after End returns
// (franz-go's pkg/kgo/txn.go, GroupTransactSession.End, and
// pkg/kgo/consumer_group.go, manageFailWait). End then waits for its
// context: 30s (the consumer's end timeout, the relay's delivery timeout),
// while the open transaction holds back every read_committed reader of the
// partitions it wrote to, the other instances' consumers included.
//
// An Ender ends a transaction with End and, when End still runs Stall
// after its flush while a rebalance callback waits for the poller
// (kgo.OnPartitionsCallbackBlocked), allows the rebalance: the lost or
// revoke callback runs, and End aborts the transaction, as after any
// rebalance during a transaction; its records are handled again. A heartbeat
// that answers takes one round trip, so a commit is never given up for a
// live session's heartbeat; an End held up by a slow offset commit or a join
// in flight may abort, which loses nothing either.
package txnend
