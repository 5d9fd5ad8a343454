#!/usr/bin/env bash
# Checks what users apply, offline: renders every kustomization under
# config/, scores the workloads with kube-score and validates every object
# against the Kubernetes schemas (built-in ones for the native kinds, the
# generated CRD for Customers) with kubectl-validate. No cluster needed.
#
# Run it through `make check-manifests`, which installs the tools into bin/.
set -euo pipefail

cd "$(dirname "$0")/.."
BIN="${BIN:-$PWD/bin}"
KUSTOMIZE="${KUSTOMIZE:-$BIN/kustomize}"
KUBE_SCORE="${KUBE_SCORE:-$BIN/kube-score}"
KUBECTL_VALIDATE="${KUBECTL_VALIDATE:-$BIN/kubectl-validate}"
# The newest Kubernetes whose built-in schemas kubectl-validate ships.
K8S_SCHEMA_VERSION="${K8S_SCHEMA_VERSION:-1.30}"

out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT

for dir in default cluster namespaced samples prometheus grafana; do
	echo ">> kustomize build config/$dir"
	"$KUSTOMIZE" build "config/$dir" >"$out/$dir.yaml"
done

# kube-score ignores, each a decision rather than an oversight:
#   container-image-tag  config/manager names the placeholder tag "latest";
#                        `make deploy IMG=registry/name:vX.Y.Z` (or your own
#                        overlay's `images:`) sets the real, pinned one.
#   deployment-replicas  one replica on purpose: leader election makes any
#                        other replica a standby that does no work, and the
#                        metrics Service needs no second endpoint.
for dir in default namespaced; do
	echo ">> kube-score config/$dir"
	"$KUBE_SCORE" score \
		--ignore-test container-image-tag \
		--ignore-test deployment-replicas \
		"$out/$dir.yaml"
done

# config/prometheus needs the Prometheus Operator's CRDs, which are not
# here offline: it is rendered above, not validated.
echo ">> kubectl-validate (Kubernetes $K8S_SCHEMA_VERSION schemas + config/crd/bases)"
"$KUBECTL_VALIDATE" --version "$K8S_SCHEMA_VERSION" --local-crds config/crd/bases \
	"$out/default.yaml" "$out/cluster.yaml" "$out/namespaced.yaml" "$out/samples.yaml" "$out/grafana.yaml" \
	config/samples/credentials-secret.example.yaml

echo ">> manifests OK"
