package consumer

import "github.com/kretry/kretry/internal/txnfence"

// Exactly-once mode: a consumer killed in the middle of a transaction leaves
// it open, and it holds the partitions it wrote to (and the group's offsets)
// until the brokers abort it after the transaction timeout. Whenever this
// consumer is assigned partitions (a dead member's partitions move then), its
// fencer looks for the open transactions of the group's consumers that are
// no member any more and fences them, which aborts them at once (txnfence).
// The consumer's client id is its transactional id, so that the group's
// description tells which transactions are live members'.

// newFencer returns the fencer of the consumer whose transactional id is id.
func (s *session) newFencer(id string) *txnfence.Fencer {
	g := s.c.cfg.Group
	return txnfence.New(g, txnfence.Consumer, id, s.log.With("component", "consumer"),
		s.c.metrics.FencedTransactions.WithLabelValues("consumer", g))
}
