package consumer

import "github.com/kretry/kretry/internal/partitions"

// WithPauseAt sets how many queued records pause a partition's fetching and
// how few resume it.
func WithPauseAt(pause, resume int) Opt {
	return optionFunc(func(o *options) { o.pauseAt, o.resumeAt = pause, resume })
}

// PartitionRefreshEvery is how often Run reads a tier's or DLQ's partition
// count again, at most.
const PartitionRefreshEvery = partitions.RefreshEvery

// WithDeadLetterHookQueue sets how many calls of the dead-letter hook may wait.
func WithDeadLetterHookQueue(n int) Opt {
	return optionFunc(func(o *options) { o.hookQueue = n })
}

// WithJitterSeed seeds the workers' jitter sources (with the partition), so
// that a test's draws are the same on every run.
func WithJitterSeed(seed uint64) Opt {
	return optionFunc(func(o *options) { o.jitterSeed = &seed })
}
