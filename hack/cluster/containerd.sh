# shellcheck shell=bash disable=SC2154
# CLUSTER_RUNTIME=containerd, sourced by cluster.sh: each node runs Debian's
# containerd (1.6, its CRI plugin) in criserver's place, for comparisons on
# the same harness. The node's CNI configuration, kubelet and kube-proxy are
# the same; containerd needs a pause image, built here from
# hack/images/pause.c and imported like CoreDNS's.

pause_image=criserver.local/pause:1

# build_pause_image writes $CLUSTER_DIR/images/pause.tar.
build_pause_image() {
	local root=$CLUSTER_DIR/images/pause.root
	rm -rf "$root"
	mkdir -p "$root"
	gcc -static -Os -o "$root/pause" "$repo/hack/images/pause.c"
	docker_archive "$CLUSTER_DIR/images/pause.tar" "$pause_image" "$root" '"Entrypoint":["/pause"]'
	rm -rf "$root"
}

# containerd_configure I writes node I's containerd config with
# hack/containerdconf (test/containerdconf renders it for the benchmark and
# the e2e suites too): everything under the node's directory, the node's
# socket and CNI directory, runc from PATH, warnings only in the log.
containerd_configure() {
	local nd runc
	nd=$(node_dir "$1")
	runc=$(command -v runc) || die "runc is not in PATH"
	mkdir -p "$nd/containerd"
	"$bin/containerdconf" -dir "$nd/containerd" -runc "$runc" -sandbox-image "$pause_image" \
		-address "$(node_socket "$1")" -cni-conf-dir "$nd/cni" -log-level warn >"$nd/containerd/config.toml"
}

start_containerd() {
	local i=$1 nd
	nd=$(node_dir "$i")
	start_proc "${node_names[$i]}" "$nd/pids/containerd.pid" "$nd/logs/containerd.log" \
		containerd --config "$nd/containerd/config.toml"
	wait_for 30 "containerd of ${node_names[$i]}" node_crictl "$i" version
}
