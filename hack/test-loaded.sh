#!/usr/bin/env bash
# make test, RUNS times in a row (default 3), while stress-ng keeps every
# core busy: the suite must not depend on how fast the machine is. Tests
# assert order and counts, never seconds; a test that passes idle and fails
# here is measuring the machine. stress-ng comes from Debian's packages.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-3}
if ! command -v stress-ng >/dev/null; then
	apt-get update -qq && apt-get install -y -qq stress-ng
fi
stress-ng --cpu "$(nproc)" --quiet &
load=$!
trap 'kill "$load" 2>/dev/null || true' EXIT
for i in $(seq 1 "$runs"); do
	start=$(date +%s)
	make test
	echo "== run $i of $runs passed in $(($(date +%s) - start)) s with $(nproc) stress-ng workers beside it"
done
