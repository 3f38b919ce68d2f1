#!/usr/bin/env bash
# Builds etcd at the version this module pins, once: the binary is cached
# under $CACHE/etcd-<version>/ and a re-run with the same version only
# prints that directory.
set -euo pipefail
cd "$(dirname "$0")"
export PATH="/usr/local/go/bin:$PATH"
# The daemon's build tags are meaningless here.
unset GOFLAGS

cache=${CACHE:-/var/cache/criserver}
version=$(go list -m -f '{{.Version}}' go.etcd.io/etcd/server/v3)
dir=$cache/etcd-$version

if [[ ! -x $dir/etcd ]]; then
	mkdir -p "$dir"
	tmp=$(mktemp "$dir/.etcd.XXXXXX")
	trap 'rm -f "$tmp"' EXIT
	CGO_ENABLED=0 nice -n 10 go build -trimpath -o "$tmp" . >&2
	mv "$tmp" "$dir/etcd"
fi
echo "$dir"
