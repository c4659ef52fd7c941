package relay

import "github.com/kretry/kretry/internal/partitions"

// PartitionRefreshEvery is how often a Run reads a topic's partition count
// again, at most.
const PartitionRefreshEvery = partitions.RefreshEvery
