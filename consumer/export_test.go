package consumer

import "github.com/kretry/kretry/internal/partitions"

// WithCrash makes Run stop like a killed process when ch is closed: handlers
// are cancelled at once, nothing more is committed, and Run returns ErrCrashed.
func WithCrash(ch <-chan struct{}) Option {
	return optionFunc(func(o *options) { o.crash = ch })
}

// WithPauseAt sets how many queued records pause a partition's fetching and
// how few resume it.
func WithPauseAt(pause, resume int) Option {
	return optionFunc(func(o *options) { o.pauseAt, o.resumeAt = pause, resume })
}

// ErrCrashed is what Run returns after WithCrash fired.
var ErrCrashed = errCrashed

// PartitionRefreshEvery is how often Run reads a tier's or DLQ's partition
// count again, at most.
const PartitionRefreshEvery = partitions.RefreshEvery
