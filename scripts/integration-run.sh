#!/usr/bin/env bash
# integration-run.sh UNIT_LOG prints the go test -run pattern of make test's
# integration pass: the top-level tests of the files built with the
# integration tag, and those the unit pass skipped in whole or in part
# (UNIT_LOG is its go test -v output): they need a broker. Every other test
# passed in the unit pass, which the integration pass does not repeat. A
# name shared by tests of two packages runs in both: a test may run twice,
# never not at all.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

log=${1:?usage: integration-run.sh UNIT_LOG}
[[ -s $log ]] || { echo "integration-run.sh: $log is empty: no unit pass output to read" >&2; exit 1; }

tagged=$(grep -rl --include='*_test.go' -E '^//go:build integration\b' . || true)
[[ -n $tagged ]] || { echo "integration-run.sh: no test file is built with the integration tag" >&2; exit 1; }

names=$( {
	sed -nE 's/^func (Test[A-Za-z0-9_]*)\([A-Za-z_][A-Za-z0-9_]* \*testing\.T\).*/\1/p' $tagged
	sed -nE 's/^ *--- SKIP: (Test[A-Za-z0-9_]*).*/\1/p' "$log"
} | sort -u | paste -sd'|')
echo "^($names)\$"
