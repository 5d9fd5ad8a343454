#!/usr/bin/env bash
# fill.sh VERSION DIR: writes DIR/scriptlock.yaml from hack/krew/scriptlock.yaml
# with VERSION and the sha256 of every DIR/kubectl-scriptlock_<os>_<arch>.tar.gz,
# and fails if the manifest and the archives in DIR do not name each other
# one to one, or if a placeholder is left.
set -euo pipefail
version=$1 dir=$2
here=$(cd "$(dirname "$0")" && pwd)
# The template's comment is about the template: not copied.
out=$(grep -v "^#" "$here/scriptlock.yaml" | sed "s/\${VERSION}/$version/g")
named=$(grep -o 'kubectl-scriptlock_[a-z0-9]*_[a-z0-9]*\.tar\.gz' <<<"$out" | sort -u)
built=$(cd "$dir" && ls kubectl-scriptlock_*_*.tar.gz | sort -u)
if [ "$named" != "$built" ]; then
	echo "hack/krew/scriptlock.yaml and the archives in $dir differ:" >&2
	diff <(echo "$named") <(echo "$built") >&2 || true
	exit 1
fi
for a in $built; do
	platform=${a#kubectl-scriptlock_}; platform=${platform%.tar.gz}
	sum=$(sha256sum "$dir/$a" | cut -d' ' -f1)
	out=${out//\$\{SHA256_${platform}\}/$sum}
done
if grep -n '\${' <<<"$out" >&2; then
	echo "placeholders left in the krew manifest (above)" >&2
	exit 1
fi
printf '%s\n' "$out" >"$dir/scriptlock.yaml"
echo "wrote $dir/scriptlock.yaml for $(wc -w <<<"$built") archives"
