#!/usr/bin/env bash
# Installs the runc this module pins (from the Go module proxy, built with cgo and
# libseccomp) as /usr/local/sbin/runc when the runc found on PATH is older
# than 1.2: Debian 12's 1.1.5 cannot do id-mapped mounts, which user
# namespaces need. /usr/local/sbin comes before /usr/sbin on the default
# PATH of root and of systemd units, so the default config's `runc` finds it.
# The binary is cached by version; a second run only compares versions.
# CRISERVER_CACHE moves the cache (/var/cache/criserver), RUNC_DEST the
# installed binary (/usr/local/sbin/runc).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# The version is the one the tools module pins.
RUNC_VERSION=$(sed -n 's|^[[:space:]]*github.com/opencontainers/runc \(v[^ ]*\).*|\1|p' "$here/go.mod")
CACHE=${CRISERVER_CACHE:-/var/cache/criserver}/runc-${RUNC_VERSION}
DEST=${RUNC_DEST:-/usr/local/sbin/runc}

# runc_version prints "major minor" of the runc binary $1, or nothing.
runc_version() {
	"$1" --version 2>/dev/null | sed -n 's/^runc version \([0-9]*\)\.\([0-9]*\).*/\1 \2/p'
}

current=$(command -v runc || true)
if [[ -n $current ]]; then
	read -r major minor <<<"$(runc_version "$current")" || true
	if ((${major:-0} > 1 || (${major:-0} == 1 && ${minor:-0} >= 2))); then
		echo "install-runc: $current is ${major}.${minor}, new enough"
		exit 0
	fi
fi

if [[ ! -x $CACHE/runc ]]; then
	go=$(command -v go || echo /usr/local/go/bin/go)
	echo "install-runc: building runc ${RUNC_VERSION} into $CACHE"
	mkdir -p "$CACHE"
	(cd "$here" && CGO_ENABLED=1 GOFLAGS=-mod=mod "$go" build -trimpath \
		-tags 'seccomp urfave_cli_no_docs' \
		-ldflags "-X main.gitCommit=${RUNC_VERSION}" \
		-o "$CACHE/runc.tmp" github.com/opencontainers/runc)
	mv "$CACHE/runc.tmp" "$CACHE/runc"
fi
install -D -m 0755 "$CACHE/runc" "$DEST"
echo "install-runc: installed $("$DEST" --version | sed -n 1p) as $DEST"
