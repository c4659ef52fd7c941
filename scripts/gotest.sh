#!/usr/bin/env bash
# gotest.sh NAME [go test flags and packages...] runs go test -v with the flags
# given, prints its output without the per-test start lines, and ends with one
# summary line for the run NAME:
#
#   NAME: 480 passed, 2 skipped, 0 failed (0 panics, 0 timeouts, 0 packages that did not build); exit status 0
#
# failed counts failing tests and every package that failed without a failing
# test line: a panic, a test binary's timeout (-timeout), a build failure, a
# TestMain that failed (goleak). The exit status is go test's, or 1 when the
# output shows a failure go test's status hid.
set -uo pipefail

name=$1
shift
log=$(mktemp)
trap 'rm -f "$log"' EXIT

go test -v "$@" 2>&1 | awk '!/^=== (RUN|PAUSE|CONT|NAME)/ { print; fflush() }' | tee "$log"
status=${PIPESTATUS[0]}

count() { grep -cE -- "$1" "$log" || true; }
passed=$(count '^ *--- PASS:')
skipped=$(count '^ *--- SKIP:')
failed_tests=$(count '^ *--- FAIL:')
panics=$(count '^panic: ')
timeouts=$(count '^panic: test timed out after ')
builds=$(count '^FAIL[[:space:]].*\[(build|setup) failed\]')
pkg_failed=$(count '^FAIL[[:space:]]+[^[:space:]]')
# A package that failed with no --- FAIL line in its block of output failed by
# a panic outside a test, a timeout, its build or its TestMain (goleak): no
# test line counted it.
orphans=$(awk '
	/^ *--- FAIL:/ { f = 1 }
	$1 == "FAIL" && NF >= 2 { if (!f) n++; f = 0; next }
	($1 == "ok" || $1 == "?") && NF >= 2 { f = 0 }
	END { print n + 0 }
' "$log")
failed=$((failed_tests + orphans))
if ((failed > 0 && status == 0)); then
	status=1
fi
if ((status != 0 && failed == 0)); then
	# go test failed and printed nothing we recognise: count it, never say 0.
	failed=1
fi
echo "$name: $passed passed, $skipped skipped, $failed failed ($panics panics, $timeouts timeouts, $builds packages that did not build; $pkg_failed packages failed); exit status $status"
exit "$status"
