package retrytopics

// PartitionRefreshEvery is how often a Run reads a topic's partition count
// again, at most.
const PartitionRefreshEvery = partitionRefreshEvery
