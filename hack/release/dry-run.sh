#!/usr/bin/env bash
# Builds every release artifact into OUT, with nothing but the Go module
# proxy: what .github/workflows/release.yml attaches to a release (and
# pushes, and signs, which only the workflow does). `make release-dry-run`
# runs it, then the tests that check the artifacts.
#
#   VERSION       the release (v1.2.3), or v0.0.0-<git describe> untagged
#   IMAGE         the image's name without tag (ghcr.io/scriptlock/customer-operator)
#   OUT           the folder to (re)write (dist/release)
#   KUSTOMIZE, CYCLONEDX_GOMOD   the tools (the Makefile installs them)
#
# OUT afterwards:
#   crds.yaml, install.yaml                    hack/build-installer.sh for IMAGE:VERSION
#   customer-operator-image.oci.tar            the image for linux/amd64 and linux/arm64,
#                                              an OCI layout (hack/e2e/cmd/imagetar -oci)
#   scriptlock-customer-operator-<v>.tgz       the chart, appVersion VERSION
#   kubectl-scriptlock_<os>_<arch>.tar.gz,     the plugin and its krew manifest
#   scriptlock.yaml                            (make plugin-archives)
#   customer_v1alpha1.json                     the Customer's JSON schema (dist/schemas)
#   sbom-manager-linux-<arch>.cdx.json,        CycloneDX SBOMs of the image's binary, per
#   sbom-kubectl-scriptlock.cdx.json           platform, and of the plugin (cyclonedx-gomod,
#                                              from the binaries' build info)
#   checksums.txt                              sha256 of every file above
set -euo pipefail
cd "$(dirname "$0")/../.."
: "${VERSION:?}" "${IMAGE:?}" "${OUT:?}" "${KUSTOMIZE:?}" "${CYCLONEDX_GOMOD:?}"
case $OUT in /*) ;; *) OUT=$PWD/$OUT ;; esac

rm -rf "$OUT"
mkdir -p "$OUT"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"; rm -f "$PWD/manager"' EXIT

echo ">> install.yaml and crds.yaml for $IMAGE:$VERSION"
KUSTOMIZE=$KUSTOMIZE hack/build-installer.sh "$IMAGE:$VERSION" "$OUT/install.yaml"

echo ">> the image, without Docker"
# Every platform's manager built with the Dockerfile's own build line
# (its builder stage's WORKDIR holds what its COPY lines copy, which is
# this checkout's layout), as buildx runs it for that TARGETARCH: the
# other platform's goes into the image, each one's build info into its SBOM.
build=$(sed -n 's/^RUN \(.*go build .*\)$/\1/p' Dockerfile)
[ -n "$build" ] || { echo "no 'RUN ... go build' line in the Dockerfile" >&2; exit 1; }
binaries=()
host=$(go env GOARCH)
for arch in amd64 arm64; do
	rm -f manager
	TARGETOS=linux TARGETARCH=$arch VERSION=$VERSION sh -c "$build"
	mv manager "$tmp/manager-$arch"
	[ "$arch" = "$host" ] || binaries+=(-arch-binary "$arch=$tmp/manager-$arch")
done
# hack/e2e/cmd/imagetar runs the Dockerfile for this machine's platform and
# adds the same image with the other platform's manager.
CGO_ENABLED=0 go build -o "$tmp/imagetar" ./hack/e2e/cmd/imagetar
"$tmp/imagetar" -dockerfile "$PWD/Dockerfile" -version "$VERSION" -tag "$IMAGE:$VERSION" -oci "${binaries[@]}" -out "$OUT/customer-operator-image.oci.tar"

echo ">> the chart, appVersion $VERSION"
(cd hack/helmchart && go run . -config ../../config -out "$tmp/chart" -version "${VERSION#v}" -app-version "$VERSION" -package "$OUT")
cp dist/schemas/licensing.scriptlock.com/customer_v1alpha1.json "$OUT/"

echo ">> the kubectl plugin and its krew manifest"
make --no-print-directory plugin-archives VERSION="$VERSION" PLUGIN_DIST="$tmp/plugin"
cp "$tmp"/plugin/kubectl-scriptlock_*.tar.gz "$tmp/plugin/scriptlock.yaml" "$OUT/"

echo ">> SBOMs (CycloneDX), from the build info of the binaries that ship"
for arch in amd64 arm64; do
	"$CYCLONEDX_GOMOD" bin -json -version "$VERSION" -output "$OUT/sbom-manager-linux-$arch.cdx.json" "$tmp/manager-$arch"
done
mkdir -p "$tmp/plugin-bin"
tar -xzf "$OUT/kubectl-scriptlock_linux_amd64.tar.gz" -C "$tmp/plugin-bin" kubectl-scriptlock
"$CYCLONEDX_GOMOD" bin -json -version "$VERSION" -output "$OUT/sbom-kubectl-scriptlock.cdx.json" "$tmp/plugin-bin/kubectl-scriptlock"

echo ">> checksums"
(cd "$OUT" && sha256sum -- * >"$tmp/checksums.txt" && mv "$tmp/checksums.txt" checksums.txt)
ls -l "$OUT"
