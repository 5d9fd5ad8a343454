#!/usr/bin/env bash
# `make e2e`: the node up (node-up.sh), the e2e test against it
# (test/e2e, build tag e2e), the node down (node-down.sh) whatever happened.
# The variables come from hack/e2e/e2e.mk.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
: "${E2E_WORK:?}" "${E2E_ARTIFACTS:?}"

start=$(date +%s)
down() {
	rc=$?
	"$here/node-down.sh" || rc=1
	echo ">> e2e: $(( $(date +%s) - start )) s in all (node up, test, node down); logs in $E2E_ARTIFACTS" >&2
	exit $rc
}
trap down EXIT
trap 'exit 130' INT TERM

# One node at a time on this machine (its ports are fixed). A node that
# still runs belongs to someone (`make e2e-up`, another clone's run): stop
# rather than tear it down. One left over by an interrupted run goes first.
for f in "$E2E_WORK"/pids/*; do
	if [ -f "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null; then
		trap - EXIT
		echo ">> e2e: a node is running in $E2E_WORK ($(basename "$f") is pid $(cat "$f")); 'make e2e-down' removes it" >&2
		exit 1
	fi
done
"$here/node-down.sh"
rm -rf "$E2E_ARTIFACTS" && mkdir -p "$E2E_ARTIFACTS"
"$here/node-up.sh" 2>&1 | tee "$E2E_ARTIFACTS/node-up.log"
up=$(date +%s)
echo ">> e2e: node Ready in $(( up - start )) s" >&2

cd "$root"
status=0
# shellcheck disable=SC2086 # E2E_TEST_ARGS is a list of flags
E2E_KUBECONFIG=$E2E_WORK/kubeconfig E2E_ARTIFACTS=$E2E_ARTIFACTS \
	go test -tags e2e ./test/e2e -count=1 -v -timeout 30m ${E2E_TEST_ARGS:-} || status=$?
# The node's own logs, for a failure's post-mortem.
cp -r "$E2E_WORK/logs" "$E2E_ARTIFACTS/node-logs" 2>/dev/null || true
cp -r "$E2E_WORK/pod-logs" "$E2E_ARTIFACTS/pod-logs" 2>/dev/null || true
exit $status
