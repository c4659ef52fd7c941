// Package relay re-feeds the records waiting in a retry ladder's tier topics
// to their main topic when they are due.
//
// A Relay (New, Run) consumes every tier topic of its ladders in one
// consumer group. A record that is due is produced to the main topic at its
// original partition (modulo the main topic's partition count, read again
// when a record's partition is not below it, so a raised main topic is
// followed without a restart), acknowledged, and only then committed. A
// record whose kretry headers cannot be read goes to the DLQ.
//
// # How the relay waits: holding and pausing
//
// A record that is not yet due waits without a sleeping goroutine, held in
// memory or in its partition.
//
// Held: a partition's first record that is not due is kept in memory with
// the records polled after it, and the poll loop polls with a deadline at the
// earliest due time and re-feeds it then, from memory. A rewind would cost
// more: kgo's SetOffsets restarts the fetch session of every partition and
// drops what they had buffered, which at a steady flow into a tier costs
// seconds of lateness; and a held record costs no fetch when it falls due,
// when a burst of re-feeds needs the CPU and the broker.
//
// What is held is bounded, nearest due first, by a budget over all
// partitions (WithHoldBytes, default 64 MiB of keys, values and headers,
// and one record per 640 bytes of it): partitions whose first waiting record
// is due within the next second may take all of it, those whose first is due
// within 10 seconds a sixteenth; one due later is paused and rewound (holding
// it would only save a fetch, at the price of memory while it waits).
//
// Paused while holding: a holding partition is paused, without a rewind,
// while the last record it holds is due more than a second from now or while
// it holds a quarter of the budget's records, and every holding partition is
// paused while the relay holds three quarters of the budget, so that what
// one more poll brings still fits. It is resumed once it holds nothing, or
// once its last record is due within the second, it holds no more than an
// eighth of the budget's records and the relay less than three quarters.
//
// Paused and rewound: a partition whose waiting records do not fit the
// budget is paused, rewound to its first waiting record, and resumed by a
// timer a second before that record is due (a partition whose re-feed failed
// likewise, after a backoff). It holds nothing meanwhile, so a backlog of
// millions costs no more memory than the budget.
//
// A burst of records that fall due together is so fetched and held in the
// second before it is due, and re-fed from memory when it is.
// kretry_held_bytes shows what is held, kretry_paused_partitions the
// partitions paused either way, per tier.
package relay
