package dlq

import "time"

// WithIdleCheck shortens the wait after which a scan checks for records
// removed under it.
func WithIdleCheck(d time.Duration) Opt { return optFunc(func(c *cfg) { c.idleCheck = d }) }

// MaskError is how Stats groups errors.
var MaskError = maskError
