// Package rejoin bounds how often an exactly-once consumer or relay without
// instance_id starts a new session after its transaction was fenced (see
// docs/design.md §7.2): a fence that keeps coming back stops it with the
// fence's error instead of looping.
package rejoin

import "time"

// The bound: the Limit-th fence within Window stops the component.
const (
	Limit  = 5
	Window = time.Minute
)

// Budget counts the fences of one Run. Its zero value is ready; it is not
// safe for concurrent use (Run's goroutine only).
type Budget struct {
	at []time.Time // the fences within the window, oldest first
}

// Allow records a fence at now and reports whether a new session may
// start: false when it is the Limit-th within Window.
func (b *Budget) Allow(now time.Time) bool {
	keep := b.at[:0]
	for _, t := range b.at {
		if now.Sub(t) < Window {
			keep = append(keep, t)
		}
	}
	b.at = append(keep, now)
	return len(b.at) < Limit
}
