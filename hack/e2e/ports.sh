# The e2e node's fixed loopback ports and cgroup, sourced by node-up.sh and
# node-down.sh. Ports away from every default (6443, 2379, 10250, 8081, 8443,
# ...) so that the node runs beside a demo, a benchmark or envtest on the
# same machine; config/e2e names the manager's and the simulator's.
E2E_ETCD_PORT=22379
E2E_ETCD_PEER_PORT=22380
E2E_APISERVER_PORT=26443
E2E_KUBELET_PORT=20250
E2E_KUBELET_HEALTHZ_PORT=20248
# config/e2e: the simulator, the manager's probes and metrics, and the
# standby manager's (test/e2e) probes and metrics.
E2E_SIM_PORT=28089
E2E_MANAGER_PORTS="28081 28443 28082 28444"
E2E_ALL_PORTS="$E2E_ETCD_PORT $E2E_ETCD_PEER_PORT $E2E_APISERVER_PORT $E2E_KUBELET_PORT $E2E_KUBELET_HEALTHZ_PORT $E2E_SIM_PORT $E2E_MANAGER_PORTS"
# The kubelet's cgroup root in every cgroup v1 hierarchy.
E2E_CGROUP=scriptlock-e2e
# Fixed paths the node's programs create outside E2E_WORK: the kubelet's
# device-plugin socket, its log links and the FlexVolume folder, containerd's
# shim sockets (/run/containerd/s), mount(8)'s utab.
E2E_FIXED_PATHS="/var/lib/kubelet /var/log/containers /usr/libexec/kubernetes /run/containerd /run/mount"
