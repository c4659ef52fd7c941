// Package bench holds the helpers of kretry's benchmark program
// (internal/bench/cmd): process CPU and peak-RSS readings, percentiles and
// medians, machine and version facts, and the table that `make bench` prints and
// writes to BENCHMARKS.md.
package bench
