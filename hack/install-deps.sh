#!/usr/bin/env bash
# Installs what the daemon and its tests need on Debian, only what is missing.
# Safe to run again: a second run changes nothing and makes no network call.
set -euo pipefail

packages=(
	runc crun conmon containernetworking-plugins
	iptables iproute2 util-linux
	docker-registry skopeo busybox-static
	ca-certificates make openssl curl
	libseccomp-dev gcc libc6-dev
)

missing=()
for p in "${packages[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing+=("$p")
	fi
done

if ((${#missing[@]} == 0)); then
	echo "install-deps: all packages present"
else
	if [[ $(id -u) -ne 0 ]]; then
		echo "install-deps: missing ${missing[*]}; run as root to install them" >&2
		exit 1
	fi
	echo "install-deps: installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	# docker-registry's package starts nothing without systemd; tests run their own.
	apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if ! command -v go >/dev/null 2>&1 && [[ ! -x /usr/local/go/bin/go ]]; then
	echo "install-deps: Go 1.26 is required (expected at /usr/local/go)" >&2
	exit 1
fi

# Debian 12's runc (1.1.5) cannot do id-mapped mounts, which user namespaces
# need: build a pinned current runc, cached by version, when PATH has none.
if [[ $(id -u) -eq 0 ]]; then
	PATH=$PATH:/usr/local/go/bin bash "$(dirname "$0")/runc/install.sh"
fi

# crun refuses a hybrid cgroup host whose cgroup2 hierarchy holds a controller.
if [[ $(id -u) -eq 0 ]]; then
	bash "$(dirname "$0")/hybrid-cgroups.sh"
fi
