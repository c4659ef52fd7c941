#!/usr/bin/env bash
# bench.sh runs kretry's benchmarks against a real Apache Kafka broker and
# writes BENCHMARKS.md; `make bench` runs it.
#
#   scripts/bench.sh [bench flags...]    e.g. -only B1,B3 or -b1-rounds 5
#
# With KRETRY_BROKERS set it uses that broker; otherwise it reuses the local
# one of `make kafka-up` when it runs, or starts one with scripts/kafka/kafka.sh
# and stops it when done (as `make test` does).
# BENCH_OUT names the report (default BENCHMARKS.md at the repository root);
# BENCH_PROFILE, when set, is a directory for CPU and allocation profiles of
# the kretry sides. The output ends with the summary lines:
#   B1 ratio=..  B2 ratio=..  B1eos ratio=..  B2eos ratio=..  B3 p50_ms=.. p99_ms=.. max_ms=..  B4 rss_mib=..
#   B5 breaker dlq_pct=.. without_dlq_pct=..
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

say() { printf 'bench.sh: %s\n' "$*" >&2; }

if [[ -z ${KRETRY_BROKERS:-} ]]; then
	if ! line=$(bash scripts/kafka/kafka.sh status 2>/dev/null); then
		line=$(bash scripts/kafka/kafka.sh up | tail -n 1)
		trap 'bash scripts/kafka/kafka.sh down || true' EXIT
	fi
	[[ $line == KRETRY_BROKERS=* ]] || { say "kafka.sh printed no KRETRY_BROKERS line"; exit 1; }
	export KRETRY_BROKERS=${line#KRETRY_BROKERS=}
fi
say "broker: $KRETRY_BROKERS"

mkdir -p bin
go build -o bin/kretry-bench ./internal/bench/cmd

kafka_version=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' scripts/kafka/pom.xml)
args=(-out "${BENCH_OUT:-BENCHMARKS.md}" -command "make bench" -kafka-version "$kafka_version")
if [[ -n ${BENCH_PROFILE:-} ]]; then
	args+=(-profile "$BENCH_PROFILE")
fi
bin/kretry-bench "${args[@]}" "$@"
