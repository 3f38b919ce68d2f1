#!/usr/bin/env bash
# Builds critest and crictl at the cri-tools version this module pins, once:
# the binaries are cached under $CACHE/cri-tools-<version>/ and a re-run with
# the same version only prints that directory.
set -euo pipefail
cd "$(dirname "$0")"
export PATH="/usr/local/go/bin:$PATH"
# The daemon's build tags are meaningless here.
unset GOFLAGS

cache=${CACHE:-/var/cache/criserver}
version=$(go list -m -f '{{.Version}}' sigs.k8s.io/cri-tools)
dir=$cache/cri-tools-$version

if [[ -x $dir/critest && -x $dir/crictl ]]; then
	echo "$dir"
	exit 0
fi

mkdir -p "$dir"
tmp=$(mktemp -d "$dir/.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
ldflags="-X sigs.k8s.io/cri-tools/pkg/version.Version=${version#v}"
# critest is cmd/critest's ginkgo test binary, built the way cri-tools does.
CGO_ENABLED=0 nice -n 10 go test -c -trimpath -ldflags "$ldflags" -o "$tmp/critest" sigs.k8s.io/cri-tools/cmd/critest >&2
CGO_ENABLED=0 nice -n 10 go build -trimpath -ldflags "$ldflags" -o "$tmp/crictl" sigs.k8s.io/cri-tools/cmd/crictl >&2
mv "$tmp/critest" "$tmp/crictl" "$dir/"
echo "$dir"
