// Package health serves kretry's liveness and readiness: /healthz (the
// poll loop of every consumer and relay given is alive) and /readyz (each
// has joined its group and is not stuck behind writes that keep failing),
// as JSON that says why when the answer is no.
//
// A consumer.Consumer and a relay report their State; Handler judges the
// States of the components it is given against its bounds (WithStallAfter,
// WithFailingAfter) on every request. consumer.Consumer.HealthHandler and
// the relay's HealthHandler build one for a service to mount, and
// `kretry relay --metrics ADDR` serves one next to /metrics.
package health
