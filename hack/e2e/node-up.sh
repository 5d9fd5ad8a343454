#!/usr/bin/env bash
# Brings up a single-node Kubernetes cluster on this machine from an empty
# work folder: etcd, kube-apiserver, kube-controller-manager, kube-scheduler
# and a kubelet on Debian's containerd and runc. Everything it makes lives in
# E2E_WORK (files, sockets, mounts) or in the cgroup E2E_CGROUP; node-down.sh
# removes all of it. Loopback only: every listener is on 127.0.0.1 and Pods
# must use hostNetwork (README.md beside this file says why).
#
#   E2E_WORK=/tmp/scriptlock-e2e E2E_NODE_BIN=bin/e2e/node-... E2E_TOOLS=bin/e2e/tools \
#   E2E_IMAGES="a.tar b.tar" hack/e2e/node-up.sh
#
# It writes $E2E_WORK/kubeconfig (cluster admin) and returns once the node is
# Ready. Ports are fixed (hack/e2e/ports.sh) and checked to be free first.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
. "$here/ports.sh"
: "${E2E_WORK:?E2E_WORK must name the work folder}"
: "${E2E_NODE_BIN:?E2E_NODE_BIN must name the folder of the node binaries}"
: "${E2E_TOOLS:?E2E_TOOLS must name the folder of pause and imagetar}"
W=$E2E_WORK
BIN=$E2E_NODE_BIN
# The sandbox ("pause") image the node's containerd runs for every Pod.
PAUSE_IMAGE=${E2E_PAUSE_IMAGE:-e2e.scriptlock.local/pause:e2e}

log() { printf '%s  node-up: %s\n' "$(date +%T)" "$*" >&2; }
die() { log "$*"; exit 1; }

for b in etcd kube-apiserver kube-controller-manager kube-scheduler kubelet; do
	[ -x "$BIN/$b" ] || die "$BIN/$b is missing: run 'make e2e-node-binaries'"
done
for b in pause imagetar; do
	[ -x "$E2E_TOOLS/$b" ] || die "$E2E_TOOLS/$b is missing: run 'make e2e-tools'"
done
for b in containerd containerd-shim-runc-v2 runc ctr openssl; do
	command -v "$b" >/dev/null || die "$b is not installed: run 'make e2e-deps'"
done
[ -x /usr/lib/cni/loopback ] || die "/usr/lib/cni/loopback is missing: run 'make e2e-deps'"
[ "$(id -u)" = 0 ] || die "the node needs root (containerd, runc, kubelet)"
[ ! -e "$W" ] || die "$W exists: a node is running or was not torn down (hack/e2e/node-down.sh)"
for p in $E2E_ALL_PORTS; do
	if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
		die "port 127.0.0.1:$p is in use; the e2e node needs it (hack/e2e/ports.sh)"
	fi
done

mkdir -p "$W"/{pki,logs,pids,etcd,containerd/root,containerd/state,cni/net.d,kubelet,pod-logs}
W=$(cd "$W" && pwd)
log "work folder $W"
# Paths outside the work folder that the kubelet, containerd and mount(8)
# make whatever they are told: node-down.sh removes those that were not
# here before.
for p in $E2E_FIXED_PATHS; do
	[ -e "$p" ] || echo "$p" >>"$W/created-paths"
done

# --- PKI: one CA signs the API server's serving certificate and every
# client certificate; the same CA is what Pods get as kube-root-ca.crt, so
# the manager verifies the API server with it.
pki=$W/pki
ossl() { openssl "$@" 2>/dev/null; }
ossl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -days 2 \
	-subj /CN=scriptlock-e2e-ca -keyout "$pki/ca.key" -out "$pki/ca.crt" \
	-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
# cert NAME SUBJECT EXTENSIONS
cert() {
	ossl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -subj "$2" \
		-keyout "$pki/$1.key" -out "$pki/$1.csr"
	printf '%s\n' "$3" >"$pki/$1.ext"
	ossl x509 -req -in "$pki/$1.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial \
		-days 2 -extfile "$pki/$1.ext" -out "$pki/$1.crt"
}
client=$'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth'
cert apiserver /CN=kube-apiserver \
	$'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc'
cert kubelet-serving /CN=127.0.0.1 \
	$'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1'
cert admin "/O=system:masters/CN=e2e-admin" "$client"
cert apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" "$client"
cert controller-manager /CN=system:kube-controller-manager "$client"
cert scheduler /CN=system:kube-scheduler "$client"
cert kubelet "/O=system:nodes/CN=system:node:127.0.0.1" "$client"
ossl genrsa -out "$pki/sa.key" 2048
ossl rsa -in "$pki/sa.key" -pubout -out "$pki/sa.pub"

# kubeconfig NAME: a kubeconfig for the client certificate NAME.
kubeconfig() {
	cat >"$W/$1.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: e2e
  cluster:
    server: https://127.0.0.1:$E2E_APISERVER_PORT
    certificate-authority: $pki/ca.crt
users:
- name: $1
  user:
    client-certificate: $pki/$1.crt
    client-key: $pki/$1.key
contexts:
- name: e2e
  context: {cluster: e2e, user: $1}
current-context: e2e
EOF
}
for n in admin controller-manager scheduler kubelet; do kubeconfig "$n"; done

# start NAME CMD...: a daemon in its own session (so no terminal signal
# reaches it), logging to logs/NAME.log, its pid in pids/NAME.
start() {
	local name=$1
	shift
	setsid "$@" </dev/null >"$W/logs/$name.log" 2>&1 &
	echo $! >"$W/pids/$name"
}
# wait_for WHAT SECONDS CMD...: retry CMD until it succeeds.
wait_for() {
	local what=$1 secs=$2
	shift 2
	for _ in $(seq $((secs * 5))); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.2
	done
	die "$what did not come up in ${secs}s; logs in $W/logs"
}
https_ok() { curl -fsS --cacert "$pki/ca.crt" --cert "$pki/admin.crt" --key "$pki/admin.key" "$1"; }

# --- etcd
log "etcd"
start etcd "$BIN/etcd" --name e2e --data-dir "$W/etcd" \
	--listen-client-urls "http://127.0.0.1:$E2E_ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$E2E_ETCD_PORT" \
	--listen-peer-urls "http://127.0.0.1:$E2E_ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$E2E_ETCD_PEER_PORT" \
	--initial-cluster "e2e=http://127.0.0.1:$E2E_ETCD_PEER_PORT" --unsafe-no-fsync
wait_for etcd 30 curl -fsS "http://127.0.0.1:$E2E_ETCD_PORT/health"

# --- kube-apiserver. The kubernetes Service's endpoints are not reconciled:
# its only address would be 127.0.0.1, which Endpoints may not hold, and no
# Pod uses the Service (the manager is told 127.0.0.1 instead). The
# ClusterIP range is TEST-NET-2 (RFC 5737), never routed: nothing here may
# hold a private-range address, and no packet is ever sent to a ClusterIP
# (there is no kube-proxy).
log "kube-apiserver"
start kube-apiserver "$BIN/kube-apiserver" \
	--etcd-servers "http://127.0.0.1:$E2E_ETCD_PORT" \
	--bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$E2E_APISERVER_PORT" \
	--tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
	--client-ca-file "$pki/ca.crt" \
	--kubelet-client-certificate "$pki/apiserver-kubelet-client.crt" --kubelet-client-key "$pki/apiserver-kubelet-client.key" \
	--kubelet-preferred-address-types InternalIP \
	--service-account-issuer https://kubernetes.default.svc --service-account-key-file "$pki/sa.pub" \
	--service-account-signing-key-file "$pki/sa.key" \
	--service-cluster-ip-range 198.51.100.0/24 --endpoint-reconciler-type none \
	--authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction \
	--allow-privileged=false --profiling=false
wait_for kube-apiserver 90 https_ok "https://127.0.0.1:$E2E_APISERVER_PORT/readyz"

# --- kube-controller-manager and kube-scheduler; no serving port of their
# own (the test never scrapes them).
log "kube-controller-manager, kube-scheduler"
start kube-controller-manager "$BIN/kube-controller-manager" \
	--kubeconfig "$W/controller-manager.kubeconfig" --secure-port 0 --leader-elect=false \
	--use-service-account-credentials --root-ca-file "$pki/ca.crt" \
	--service-account-private-key-file "$pki/sa.key" --profiling=false
start kube-scheduler "$BIN/kube-scheduler" \
	--kubeconfig "$W/scheduler.kubeconfig" --secure-port 0 --leader-elect=false --profiling=false

# --- containerd, with its own root, state and socket. restrict_oom_score_adj:
# root here lacks CAP_SYS_RESOURCE, so runc cannot lower a container's
# oom_score_adj below containerd's own and every sandbox would fail.
log "containerd"
cat >"$W/cni/net.d/10-loopback.conflist" <<EOF
{"cniVersion": "0.4.0", "name": "e2e-loopback", "plugins": [{"type": "loopback"}]}
EOF
cat >"$W/containerd/config.toml" <<EOF
version = 2
root = "$W/containerd/root"
state = "$W/containerd/state"
[grpc]
  address = "$W/containerd/containerd.sock"
[ttrpc]
  address = "$W/containerd/containerd.sock.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "$W/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  restrict_oom_score_adj = true
  disable_apparmor = true
  enable_selinux = false
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$W/cni/net.d"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "$W/runc"
EOF
start containerd containerd --config "$W/containerd/config.toml"
ctr_() { ctr --address "$W/containerd/containerd.sock" --namespace k8s.io "$@"; }
wait_for containerd 30 ctr_ version

# --- images: docker-archive tars, imported (there is no registry).
log "importing the pause image"
"$E2E_TOOLS/imagetar" -binary "$E2E_TOOLS/pause" -entrypoint /pause -tag "$PAUSE_IMAGE" -user 65535:65535 -out "$W/pause.tar"
ctr_ images import "$W/pause.tar" >/dev/null
for img in ${E2E_IMAGES:-}; do
	log "importing $img"
	ctr_ images import "$img" >/dev/null
done

# --- kubelet, in the cgroup E2E_CGROUP of every v1 hierarchy (hybrid
# cgroups: failCgroupV1 false, the cgroupfs driver). The cgroup root is our
# own so that node-down.sh can remove all it made.
log "kubelet"
for h in /sys/fs/cgroup/*/; do
	case $h in */unified/) continue ;; esac
	mkdir -p "$h$E2E_CGROUP"
done
# A new cpuset cgroup starts with no CPUs or memory nodes; give it the parent's.
if [ -d "/sys/fs/cgroup/cpuset/$E2E_CGROUP" ]; then
	cat /sys/fs/cgroup/cpuset/cpuset.cpus >"/sys/fs/cgroup/cpuset/$E2E_CGROUP/cpuset.cpus"
	cat /sys/fs/cgroup/cpuset/cpuset.mems >"/sys/fs/cgroup/cpuset/$E2E_CGROUP/cpuset.mems"
fi
cat >"$W/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: 127.0.0.1
port: $E2E_KUBELET_PORT
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $E2E_KUBELET_HEALTHZ_PORT
tlsCertFile: $pki/kubelet-serving.crt
tlsPrivateKeyFile: $pki/kubelet-serving.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $pki/ca.crt}
authorization: {mode: Webhook}
containerRuntimeEndpoint: unix://$W/containerd/containerd.sock
cgroupDriver: cgroupfs
failCgroupV1: false
cgroupRoot: /$E2E_CGROUP
podLogsDir: $W/pod-logs
volumePluginDir: $W/kubelet/volume-plugins
failSwapOn: false
resolvConf: /etc/resolv.conf
rotateCertificates: false
serverTLSBootstrap: false
maxPods: 30
# The images are imported, not pulled: never collect them, and evict
# nothing for a disk or memory that other work on this machine uses.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: "1Mi"
  nodefs.available: "0%"
  imagefs.available: "0%"
  nodefs.inodesFree: "0%"
imageMinimumGCAge: 24h
EOF
start kubelet "$BIN/kubelet" --config "$W/kubelet.yaml" --kubeconfig "$W/kubelet.kubeconfig" \
	--root-dir "$W/kubelet" --cert-dir "$W/kubelet/pki" --hostname-override 127.0.0.1

cp "$W/admin.kubeconfig" "$W/kubeconfig"
node_ready() {
	https_ok "https://127.0.0.1:$E2E_APISERVER_PORT/api/v1/nodes/127.0.0.1" |
		tr -d ' \n' | grep -q '"type":"Ready","status":"True"'
}
wait_for "the node" 120 node_ready
log "node 127.0.0.1 is Ready; kubeconfig $W/kubeconfig"
