#!/usr/bin/env bash
# Installs Debian's containerd (1.6.20 on Debian 12), the reference runtime
# the conformance suites also run against: `make test-critest
# RUNTIME=containerd` and `make test-node-e2e RUNTIME=containerd`. It is not
# a dependency of criserver (hack/install-deps.sh does not call this). The
# tests start containerd themselves, with their own config and directories,
# and stop it; the package's own service is left stopped and disabled.
set -euo pipefail

if ! command -v containerd >/dev/null; then
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends containerd >&2
	# With systemd as PID 1 the package starts its service on install.
	if [[ -d /run/systemd/system ]]; then
		systemctl disable --now containerd.service >&2
	fi
fi
containerd --version
