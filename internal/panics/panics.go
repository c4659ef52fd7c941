// Package panics reports what a recovered panic left.
package panics

import "runtime/debug"

// Stack is the recovering goroutine's stack, its top 4 KiB: called in the
// deferred function that recovered, it shows where the panic came from.
func Stack() string {
	st := debug.Stack()
	if len(st) > 4<<10 {
		st = append(st[:4<<10:4<<10], "..."...)
	}
	return string(st)
}
