// Command bench measures kretry against raw franz-go on a real Kafka broker
// and writes BENCHMARKS.md. `make bench` runs it through scripts/bench.sh.
//
//	bench [flags]                 run the benchmarks (KRETRY_BROKERS or -brokers)
//	bench child <mode> [flags]    one side of one run, in a process of its own
//
// Every consumer side runs as a child process, so that the CPU time, the heap
// and the peak RSS it reports are its own and not the producer's.
package main

import "os"

func main() {
	if len(os.Args) > 1 && os.Args[1] == "child" {
		os.Exit(childMain(os.Args[2:]))
	}
	os.Exit(runMain(os.Args[1:]))
}
