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

# containerd_configure I writes node I's containerd config (version 2, as
# containerd 1.6 reads it): everything under the node's directory, the
# node's CNI directory, runc from PATH with its state under the node's, and
# restrict_oom_score_adj because this host refuses negative values.
containerd_configure() {
	local nd
	nd=$(node_dir "$1")
	mkdir -p "$nd/containerd"
	cat >"$nd/containerd/config.toml" <<EOF
version = 2
root = "$nd/containerd/root"
state = "$nd/containerd/state"
oom_score = 0

[grpc]
  address = "$(node_socket "$1")"

[ttrpc]
  address = ""

[debug]
  address = ""
  level = "warn"

[metrics]
  address = ""

[plugins]
  [plugins."io.containerd.internal.v1.opt"]
    path = "$nd/containerd/opt"

  [plugins."io.containerd.grpc.v1.cri"]
    sandbox_image = "$pause_image"
    restrict_oom_score_adj = true
    netns_mounts_under_state_dir = true
    stream_server_address = "127.0.0.1"
    stream_server_port = "0"

    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = "/usr/lib/cni"
      conf_dir = "$nd/cni"
      max_conf_num = 1

    [plugins."io.containerd.grpc.v1.cri".containerd]
      snapshotter = "overlayfs"
      default_runtime_name = "runc"

      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
        runtime_type = "io.containerd.runc.v2"

        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
          BinaryName = "$(command -v runc)"
          Root = "$nd/containerd/state/runc"
          SystemdCgroup = false
EOF
}

start_containerd() {
	local i=$1 nd
	nd=$(node_dir "$i")
	start_proc "${node_names[$i]}" "$nd/pids/containerd.pid" "$nd/logs/containerd.log" \
		containerd --config "$nd/containerd/config.toml"
	wait_for 30 "containerd of ${node_names[$i]}" node_crictl "$i" version
}
