#!/usr/bin/env bash
# Builds CoreDNS (with the plugins main.go imports) at the version this
# module pins, once: the binary is cached under $CACHE/coredns-<version>/
# and a re-run with the same version only prints that directory. It goes
# into the local cluster's CoreDNS image (hack/cluster), so it is built
# without symbol tables: a third of the size to import into every node.
set -euo pipefail
cd "$(dirname "$0")"
export PATH="/usr/local/go/bin:$PATH"
# The daemon's build tags are meaningless here.
unset GOFLAGS

cache=${CACHE:-/var/cache/criserver}
version=$(go list -m -f '{{.Version}}' github.com/coredns/coredns)
dir=$cache/coredns-$version

if [[ ! -x $dir/coredns ]]; then
	mkdir -p "$dir"
	tmp=$(mktemp "$dir/.coredns.XXXXXX")
	trap 'rm -f "$tmp"' EXIT
	CGO_ENABLED=0 nice -n 10 go build -trimpath -ldflags "-s -w" -o "$tmp" . >&2
	mv "$tmp" "$dir/coredns"
fi
echo "$dir"
