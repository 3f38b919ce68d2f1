#!/usr/bin/env bash
# On a hybrid cgroup host (cgroup v1 controllers under /sys/fs/cgroup, a
# cgroup2 mount at /sys/fs/cgroup/unified), mounts each controller still
# bound to the cgroup2 hierarchy as its own v1 hierarchy, as systemd does
# when it boots a host in hybrid mode.
#
# Why: crun refuses hybrid hosts whose cgroup2 hierarchy holds a controller
# ("cgroups in hybrid mode not supported, drop all controllers from
# cgroupv2"), and runc, which drives v1 there, cannot set a limit of a
# controller that only v2 has (hugepage limits, for hugetlb). A controller
# moves only while no cgroup2 cgroup uses it; otherwise this says so and
# leaves the host as it is. Idempotent; the mounts last until reboot.
set -euo pipefail

unified=/sys/fs/cgroup/unified
if [[ $(stat -f -c %T /sys/fs/cgroup) != tmpfs || $(stat -f -c %T "$unified" 2>/dev/null) != cgroup2fs ]]; then
	exit 0 # not a hybrid host
fi

read -r -a controllers <"$unified/cgroup.controllers" || true
for c in "${controllers[@]}"; do
	dir=/sys/fs/cgroup/$c
	if mkdir -p "$dir" && mount -t cgroup -o "$c" cgroup "$dir"; then
		echo "hybrid-cgroups: mounted the $c controller as cgroup v1 at $dir"
	else
		rmdir "$dir" 2>/dev/null || true
		echo "hybrid-cgroups: could not move $c off cgroup2; crun will refuse this host" >&2
	fi
done
