#!/usr/bin/env bash
# Builds the pinned CNI plugins the default network runs (this module's
# go.mod pins the version) into DEST, once per version: a build is cached
# under CACHE/cni-plugins-<version>/ and copied from there.
#
#   hack/cni-plugins/build.sh [DEST]      (default /opt/criserver/cni/bin)
set -euo pipefail

cd "$(dirname "$0")"
dest=${1:-/opt/criserver/cni/bin}
cache=${CRISERVER_CACHE:-/var/cache/criserver}
go=${GO:-$(command -v go || echo /usr/local/go/bin/go)}
version=$(GOFLAGS=-mod=mod "$go" list -m -f '{{.Version}}' github.com/containernetworking/plugins)
plugins="ipam/host-local main/bridge main/loopback meta/bandwidth meta/firewall meta/portmap"
built="$cache/cni-plugins-$version"

if [ ! -x "$built/bridge" ]; then
	echo "building containernetworking/plugins $version into $built"
	mkdir -p "$cache"
	tmp=$(mktemp -d "$cache/.cni-plugins.XXXXXX")
	pkgs=""
	for p in $plugins; do pkgs="$pkgs github.com/containernetworking/plugins/plugins/$p"; done
	# shellcheck disable=SC2086
	GOFLAGS=-mod=mod CGO_ENABLED=0 "$go" build -trimpath -ldflags "-s -w -X github.com/containernetworking/plugins/pkg/utils/buildversion.BuildVersion=$version" -o "$tmp/" $pkgs
	rm -rf "$built"
	mv "$tmp" "$built"
fi
mkdir -p "$dest"
for p in $plugins; do
	install -m 0755 "$built/${p#*/}" "$dest/${p#*/}"
done
echo "CNI plugins $version in $dest"
