package consumer

import (
	"context"
	"time"

	"github.com/kretry/kretry/internal/resync"
)

// resyncOffsets moves fetching to the offsets committed on the brokers
// after a transaction whose end failed, which may have committed (see
// package committed). It retries until it has them or ctx ends (kgo's
// rewind stands then: the consumer is stopping).
func (s *session) resyncOffsets(ctx context.Context) {
	for backoff := txnAbortBackoff; ; backoff = min(2*backoff, txnAbortMaxBackoff) {
		fctx, cancel := context.WithTimeout(ctx, commitTimeout)
		err := resync.Committed(fctx, s.cl, s.c.cfg.Group)
		cancel()
		if err == nil {
			return
		}
		s.log.Error("kretry consumer could not read its committed offsets after a failed transaction; retrying",
			"group", s.c.cfg.Group, "in", backoff, "error", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
	}
}
