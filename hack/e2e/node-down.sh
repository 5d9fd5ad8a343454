#!/usr/bin/env bash
# Tears down what node-up.sh brought up and leaves nothing: every process it
# started (and the containers and shims under its containerd), every mount
# under E2E_WORK, the cgroup E2E_CGROUP, the kubelet's log links, and
# E2E_WORK itself. Safe to run any number of times, on a node that is up,
# half up or gone. It prints what it finds left over and exits non-zero if
# anything stays.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
. "$here/ports.sh"
: "${E2E_WORK:?E2E_WORK must name the work folder}"
[ -d "$E2E_WORK" ] || { [ -z "$(find /sys/fs/cgroup -maxdepth 2 -name "$E2E_CGROUP" 2>/dev/null)" ] && exit 0; }
W=$(cd "$E2E_WORK" 2>/dev/null && pwd || echo "$E2E_WORK")
SOCK=$W/containerd/containerd.sock

log() { printf '%s  node-down: %s\n' "$(date +%T)" "$*" >&2; }

# pid_of NAME: the pid node-up.sh recorded, if that process still runs.
pid_of() {
	local p
	p=$(cat "$W/pids/$1" 2>/dev/null) || return 1
	[ -n "$p" ] && kill -0 "$p" 2>/dev/null && echo "$p"
}
# stop NAME: SIGTERM, up to 10 s, then SIGKILL.
stop() {
	local p
	p=$(pid_of "$1") || return 0
	kill -TERM "$p" 2>/dev/null
	for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || return 0; sleep 0.2; done
	log "$1 ($p) ignored SIGTERM; killing it"
	kill -KILL "$p" 2>/dev/null
	sleep 0.2
}
# shims: the runc shims of our containerd (found by its socket in their
# command line, never by name alone: another containerd may run here).
shims() {
	local d
	for d in /proc/[0-9]*; do
		{ tr '\0' ' ' <"$d/cmdline"; } 2>/dev/null | grep -qF -- "-address $SOCK " && echo "${d#/proc/}"
	done
}
# cgroup_pids: every process in our cgroup, in any hierarchy.
cgroup_pids() {
	find /sys/fs/cgroup/*/"$E2E_CGROUP" -name cgroup.procs -exec cat {} + 2>/dev/null | sort -un
}

# 1. The kubelet first, so that it restarts nothing while the rest goes.
stop kubelet

# 2. The containers: through containerd while it answers, then whatever is
# left in our cgroup, then the shims.
if [ -S "$SOCK" ] && pid_of containerd >/dev/null; then
	ctr_() { timeout 20 ctr --address "$SOCK" --namespace k8s.io "$@"; }
	for id in $(ctr_ tasks ls -q 2>/dev/null); do
		ctr_ tasks kill -s SIGKILL "$id" >/dev/null 2>&1
	done
	sleep 0.5
	for id in $(ctr_ tasks ls -q 2>/dev/null); do ctr_ tasks delete -f "$id" >/dev/null 2>&1; done
	for id in $(ctr_ containers ls -q 2>/dev/null); do ctr_ containers delete "$id" >/dev/null 2>&1; done
fi
for _ in 1 2 3; do
	p=$(cgroup_pids)
	[ -z "$p" ] && break
	kill -KILL $p 2>/dev/null
	sleep 0.5
done
stop containerd
for _ in 1 2 3; do
	p=$(shims)
	[ -z "$p" ] && break
	kill -KILL $p 2>/dev/null
	sleep 0.5
done

# 3. The control plane.
for n in kube-scheduler kube-controller-manager kube-apiserver etcd; do stop "$n"; done

# 4. Mounts under the work folder, deepest first: the kubelet's volumes
# (projected token tmpfs), its root made rshared, containerd's rootfs
# overlays and sandbox /dev/shm.
mounts() { awk -v w="$W/" '{ p = $5; gsub(/\\040/, " ", p); if (index(p "/", w) == 1) print p }' /proc/self/mountinfo | sort -r; }
for _ in 1 2 3; do
	m=$(mounts)
	[ -z "$m" ] && break
	while read -r mp; do umount "$mp" 2>/dev/null || umount -l "$mp" 2>/dev/null; done <<<"$m"
done

# 5. The cgroup (deepest first: a cgroup goes only once it has no children).
find /sys/fs/cgroup/*/"$E2E_CGROUP" -depth -type d -exec rmdir {} + 2>/dev/null

# 6. The kubelet's links in /var/log/containers (a fixed path) into our
# pod logs, then the fixed paths that node-up.sh found absent.
find /var/log/containers -maxdepth 1 -type l -lname "$W/*" -delete 2>/dev/null
if [ -f "$W/created-paths" ]; then
	while read -r p; do
		case $p in /var/lib/kubelet | /var/log/containers | /usr/libexec/kubernetes | /run/containerd | /run/mount) rm -rf "$p" ;; esac
	done <"$W/created-paths"
fi

# 7. The work folder.
rm -rf "$W" 2>/dev/null

# What is left?
left=0
if [ -n "$(mounts)" ]; then log "mounts left: $(mounts | tr '\n' ' ')"; left=1; fi
if [ -n "$(shims)" ]; then log "shims left: $(shims | tr '\n' ' ')"; left=1; fi
if [ -n "$(find /sys/fs/cgroup -maxdepth 2 -name "$E2E_CGROUP" 2>/dev/null)" ]; then log "cgroups left: $(find /sys/fs/cgroup -maxdepth 2 -name "$E2E_CGROUP" | tr '\n' ' ')"; left=1; fi
if [ -e "$W" ]; then log "$W is left"; left=1; fi
for p in /var/lib/kubelet/device-plugins/kubelet.sock /run/containerd/runc/k8s.io; do
	if [ -e "$p" ]; then log "$p is left"; left=1; fi
done
[ $left = 0 ] && log "nothing left"
exit $left
