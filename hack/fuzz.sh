#!/usr/bin/env bash
# Runs every fuzz target of the ScriptLock wire decoders, one at a time (Go
# fuzzes one target per invocation), for the given time each (default 60s).
# New crashers land in internal/scriptlock/testdata/fuzz/ and become
# regression tests of `make test`.
set -euo pipefail
fuzztime=${1:-60s}
pkg=./internal/scriptlock
for target in $(go test "$pkg" -list '^Fuzz' | grep '^Fuzz'); do
	echo ">> $target for $fuzztime"
	go test "$pkg" -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime"
done
