package relay

import (
	"net/http"

	"github.com/kretry/kretry/health"
)

// HealthState returns what the relay knows of its health now: whether Run
// runs, its poll loop, its group membership and its re-feeds (see
// health.State). It is safe to call at any time, from any goroutine.
func (r *Relay) HealthState() health.State { return r.health.State() }

// HealthHandler returns an http.Handler serving the relay's /healthz and
// /readyz (see health.Handler).
func (r *Relay) HealthHandler(opts ...health.Opt) http.Handler {
	return health.Handler([]health.Source{r}, opts...)
}
