package consumer

import (
	"net/http"

	"github.com/kretry/kretry/health"
)

// HealthState returns what the consumer knows of its health now: whether
// Run runs, its poll loop, its group membership and its forwards (see
// health.State). It is safe to call at any time, from any goroutine.
func (c *Consumer) HealthState() health.State {
	st := c.health.State()
	for _, b := range c.breakers {
		if why := b.openReason(); why != "" {
			st.BreakerOpen, st.BreakerReason = true, why
			break
		}
	}
	return st
}

// HealthHandler returns an http.Handler serving /healthz and /readyz (see
// health.Handler) for the consumer and, with the in-process relay
// (WithRelay, the default), for the relay too: /readyz passes once both
// have joined their groups. Mount it next to /metrics:
//
//	mux.Handle("/healthz", c.HealthHandler())
//	mux.Handle("/readyz", c.HealthHandler())
func (c *Consumer) HealthHandler(opts ...health.Opt) http.Handler {
	sources := []health.Source{c}
	if c.relay != nil {
		sources = append(sources, c.relay)
	}
	return health.Handler(sources, opts...)
}
