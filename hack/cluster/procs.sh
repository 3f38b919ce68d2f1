# shellcheck shell=bash disable=SC2154
# Processes of the local cluster and what they leave on the host, sourced by
# cluster.sh: starting and stopping them by pid file, and the clean-up and
# check of everything `down` must remove.

# alive PID: the process exists and is not a zombie.
alive() {
	local state
	state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
	[[ -n $state && $state != Z ]]
}

# start_proc NETNS PIDFILE LOG CMD... starts CMD in network namespace NETNS
# (nsenter: the mount namespace stays the host's), in a session of its own
# so that it outlives this script, and records its pid.
start_proc() {
	local netns=$1 pidfile=$2 logfile=$3
	shift 3
	mkdir -p "$(dirname "$pidfile")" "$(dirname "$logfile")"
	echo "=== $(date -u +%FT%TZ) $*" >>"$logfile"
	# In a script, a background job is not a process group leader, so setsid
	# execs without forking: $! is CMD's pid.
	nsenter --net="/run/netns/$netns" -- setsid "$@" >>"$logfile" 2>&1 </dev/null &
	echo $! >"$pidfile"
	started_pid=$! started_log=$logfile
}

# stop_proc PIDFILE [SIGNAL] signals the process (TERM by default), waits
# up to 20 s for it to go, then kills it, and removes the pid file.
stop_proc() {
	local pidfile=$1 sig=${2:-TERM} pid
	[[ -f $pidfile ]] || return 0
	pid=$(<"$pidfile")
	if alive "$pid"; then
		kill -s "$sig" "$pid" 2>/dev/null || true
		local deadline=$((SECONDS + 20))
		while alive "$pid" && ((SECONDS < deadline)); do
			sleep 0.2
		done
		if alive "$pid"; then
			echo "cluster: $pidfile: pid $pid still running 20 s after SIG$sig; killing it" >&2
			kill -KILL "$pid" 2>/dev/null || true
			while alive "$pid"; do sleep 0.1; done
		fi
	fi
	rm -f "$pidfile"
}

# wait_for SECONDS WHAT CMD... retries CMD every half second. It waits for
# the process start_proc started last: when that one does not come up, the
# end of its log and whether it still runs say why.
wait_for() {
	local limit=$1 what=$2
	shift 2
	local deadline=$((SECONDS + limit))
	until "$@" >/dev/null 2>&1; do
		if ((SECONDS >= deadline)); then
			if [[ -n ${started_log:-} ]]; then
				local state="exited"
				alive "$started_pid" && state="still running"
				echo "cluster: $what: pid $started_pid $state; the end of $started_log:" >&2
				tail -n 30 "$started_log" >&2 || true
			fi
			die "$what not up after $limit s"
		fi
		sleep 0.5
	done
}

# cluster_pids lists the processes of the cluster: those running in a
# node's network namespace, those whose command line names $CLUSTER_DIR
# (conmon, for one) and those in a cgroup under $cgroup_root (containers).
cluster_pids() {
	local i p cmdline
	for ((i = 0; i < NODES; i++)); do
		[[ -e /run/netns/${node_names[$i]} ]] && ip netns pids "${node_names[$i]}" 2>/dev/null
	done
	for p in /proc/[0-9]*; do
		p=${p#/proc/}
		[[ $p == "$$" || $p == "$BASHPID" ]] && continue
		# Read into a variable, not piped to grep -q: with pipefail a
		# long command line would make tr fail on the closed pipe.
		cmdline=$(tr '\0' ' ' 2>/dev/null <"/proc/$p/cmdline") || true
		if [[ $cmdline == *"$CLUSTER_DIR/"* ]] ||
			grep -qE ":$cgroup_root(/|$)" "/proc/$p/cgroup" 2>/dev/null; then
			echo "$p"
		fi
	done
}

# kill_leftovers kills whatever of the cluster still runs once its
# components are stopped (a container whose conmon died with its node, for
# instance).
kill_leftovers() {
	local pids
	pids=$(cluster_pids | sort -u | tr '\n' ' ')
	if [[ -n ${pids// /} ]]; then
		echo "cluster: killing what is left: $pids" >&2
		# shellcheck disable=SC2086
		kill -KILL $pids 2>/dev/null || true
		sleep 0.5
	fi
}

# unmount_under DIR unmounts every mount at or under DIR, deepest first.
unmount_under() {
	local dir=$1 m
	[[ -d $dir ]] || return 0
	dir=$(realpath "$dir")
	while read -r m; do
		umount -l "$m" 2>/dev/null || true
	done < <(awk -v d="$dir" '$5 == d || index($5, d "/") == 1 {print $5}' /proc/self/mountinfo | sort -r)
}

# cgroup_mounts lists the mount points of the host's cgroup hierarchies.
cgroup_mounts() {
	awk '$9 == "cgroup" || $9 == "cgroup2" {print $5}' /proc/self/mountinfo | sort -u
}

# make_cgroup_root creates $cgroup_root/NAME in every hierarchy: the
# kubelet checks that its cgroup root exists. A cpuset cgroup starts with
# no CPUs or memory nodes; it gets its parent's.
make_cgroup_root() {
	local name=$1 m d
	while read -r m; do
		for d in "$m$cgroup_root" "$m$cgroup_root/$name"; do
			[[ -d $d ]] && continue
			mkdir "$d"
			if [[ -f $d/cpuset.cpus ]]; then
				cat "$(dirname "$d")/cpuset.cpus" >"$d/cpuset.cpus"
				cat "$(dirname "$d")/cpuset.mems" >"$d/cpuset.mems"
			fi
		done
	done < <(cgroup_mounts)
}

# remove_cgroups removes $cgroup_root and everything under it, deepest
# first, in every hierarchy.
remove_cgroups() {
	local m d
	while read -r m; do
		[[ -d $m$cgroup_root ]] || continue
		while read -r d; do
			rmdir "$d" 2>/dev/null || echo "cluster: cannot remove cgroup $d" >&2
		done < <(find "$m$cgroup_root" -depth -type d)
	done < <(cgroup_mounts)
}

# remove_log_links removes the kubelets' links in /var/log/containers (a
# fixed path) to container logs under $CLUSTER_DIR.
remove_log_links() {
	local l t
	for l in /var/log/containers/*; do
		[[ -L $l ]] || continue
		t=$(readlink "$l")
		[[ $t == "$CLUSTER_DIR"/* ]] && rm -f "$l"
	done
	return 0
}

# The kubelet makes these at fixed places whatever its root directory: its
# device plugin socket under /var/lib/kubelet/device-plugins and the links in
# /var/log/containers. save_host_paths notes those that do not exist before
# the cluster, for remove_host_paths to remove after it.
kubelet_host_paths=(/var/lib/kubelet /var/lib/kubelet/device-plugins /var/log/containers)

save_host_paths() {
	local p
	for p in "${kubelet_host_paths[@]}"; do
		[[ -e $p ]] || echo "$p"
	done >"$CLUSTER_DIR/host-paths.absent"
	if [[ ! -e /var/lib/kubelet/device-plugins/kubelet.sock ]]; then
		echo /var/lib/kubelet/device-plugins/kubelet.sock >>"$CLUSTER_DIR/host-paths.absent"
	fi
}

# remove_host_paths removes what save_host_paths noted, deepest first;
# directories only when empty.
remove_host_paths() {
	[[ -f $CLUSTER_DIR/host-paths.absent ]] || return 0
	local p
	while read -r p; do
		if [[ -S $p ]]; then
			rm -f "$p"
		elif [[ -d $p ]]; then
			rmdir "$p" 2>/dev/null || echo "cluster: $p is not empty; left in place" >&2
		fi
	done < <(sort -r "$CLUSTER_DIR/host-paths.absent")
}

# The kubelet sets these host-wide kernel settings at start
# (protectKernelDefaults off); down puts back what was there before.
kubelet_sysctls=(vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops kernel.keys.root_maxkeys kernel.keys.root_maxbytes)

save_sysctls() {
	local k
	for k in "${kubelet_sysctls[@]}"; do
		echo "$k=$(sysctl -n "$k")"
	done >"$CLUSTER_DIR/sysctls.saved"
}

restore_sysctls() {
	[[ -f $CLUSTER_DIR/sysctls.saved ]] || return 0
	local line
	while read -r line; do
		sysctl -qw "$line" || true
	done <"$CLUSTER_DIR/sysctls.saved"
}

# check_clean fails when anything of a cluster is left on the host:
# processes (cluster_pids), mounts
# under $CLUSTER_DIR, the nodes' namespaces, the host bridge and veths, the
# routes to the pod and service CIDRs, cgroups under $cgroup_root, the
# kubelets' log links, and $CLUSTER_DIR itself.
check_clean() {
	local leftover=() p
	for p in $(cluster_pids | sort -u); do
		alive "$p" && leftover+=("process $p ($(tr '\0' ' ' 2>/dev/null <"/proc/$p/cmdline" | cut -c1-120))")
	done
	local ns
	while read -r ns _; do
		[[ $ns == criserver-control-plane || $ns == criserver-worker* ]] && leftover+=("network namespace $ns")
	done < <(ip netns list 2>/dev/null)
	local m
	while read -r m; do
		leftover+=("mount $m")
	done < <(awk -v d="$CLUSTER_DIR" '$5 == d || index($5, d "/") == 1 {print $5}' /proc/self/mountinfo)
	local l
	while read -r l; do
		leftover+=("link $l")
	done < <(ip -o link show | awk -F': ' '{print $2}' | sed 's/@.*//' | grep -E "^(${host_bridge}|${veth_prefix}[0-9]+)$" || true)
	local r
	while read -r r; do
		leftover+=("route $r")
	done < <(ip route show | grep -E "^(10\.90\.|${service_cidr%%/*}/)" || true)
	while read -r m; do
		[[ -d $m$cgroup_root ]] && leftover+=("cgroup $m$cgroup_root")
	done < <(cgroup_mounts)
	for l in /var/log/containers/*; do
		[[ -L $l && $(readlink "$l") == "$CLUSTER_DIR"/* ]] && leftover+=("log link $l")
	done
	[[ -e $CLUSTER_DIR ]] && leftover+=("directory $CLUSTER_DIR")
	if ((${#leftover[@]} > 0)); then
		printf 'cluster: left behind: %s\n' "${leftover[@]}" >&2
		return 1
	fi
	echo "cluster: nothing left behind"
}
