# shellcheck shell=bash disable=SC2154
# A node of the local cluster, sourced by cluster.sh: its container runtime
# (criserver, or containerd with CLUSTER_RUNTIME=containerd), kubelet and
# kube-proxy, their configuration, and restarting and stopping them.

node_dir() {
	echo "$CLUSTER_DIR/nodes/${node_names[$1]}"
}

# node_socket I is the CRI socket of node I's runtime.
node_socket() {
	echo "$(node_dir "$1")/$runtime.sock"
}

node_crictl() {
	local i=$1
	shift
	"$bin/crictl" --runtime-endpoint "unix://$(node_socket "$i")" --image-endpoint "unix://$(node_socket "$i")" --timeout 30s "$@"
}

# write_registries_conf writes the registries.conf every node's criserver
# uses: CLUSTER_REGISTRIES_CONF's content, or an empty one. Drop-ins in
# registries.conf.d beside it (for the cluster's own needs, such as a test
# registry) apply on top.
write_registries_conf() {
	mkdir -p "$CLUSTER_DIR/registries.conf.d"
	if [[ -n ${CLUSTER_REGISTRIES_CONF:-} ]]; then
		cp "$CLUSTER_REGISTRIES_CONF" "$CLUSTER_DIR/registries.conf"
	else
		echo 'unqualified-search-registries = []' >"$CLUSTER_DIR/registries.conf"
	fi
}

# node_configure I writes node I's runtime, CNI, kubelet and kube-proxy
# configuration.
node_configure() {
	local i=$1 nd name=${node_names[$1]}
	nd=$(node_dir "$i")
	mkdir -p "$nd/cni" "$nd/pods" "$nd/logs" "$nd/pids"
	if [[ $runtime == containerd ]]; then
		containerd_configure "$i"
	else
		criserver_configure "$i"
	fi
	node_network_configure "$i"
	make_cgroup_root "$name"
	kubelet_configure "$i"
	kube_proxy_configure "$i"
}

# criserver_configure I writes node I's criserver config and the
# CLUSTER_CRISERVER_CONFIG drop-in.
criserver_configure() {
	local i=$1 nd
	nd=$(node_dir "$i")
	mkdir -p "$nd/criserver/config.d"
	local state=$nd/criserver/state
	cat >"$nd/criserver/config.toml" <<EOF
root = "$nd/criserver/root"
state = "$state"
listen = "$(node_socket "$i")"
cgroup_driver = "cgroupfs"

[cni]
conf_dir = "$nd/cni"
cache_dir = "$state/cni-cache"
install_default_network = false

[image]
registries_config = "$CLUSTER_DIR/registries.conf"
# Imported, not pullable: the kubelet's image GC must keep it.
pinned_images = ["$coredns_image"]

[runtime.handlers.runc]
runtime_path = "runc"
runtime_root = "$state/runc"

[runtime.handlers.crun]
runtime_path = "crun"
runtime_root = "$state/crun"
EOF
	if [[ -n ${CLUSTER_CRISERVER_CONFIG:-} ]]; then
		cp "$CLUSTER_CRISERVER_CONFIG" "$nd/criserver/config.d/50-cluster.toml"
	fi
}

# node_network_configure I writes node I's CNI network: a bridge of its
# own with the node's pod CIDR, host-local addresses kept under the node's
# directory, and portmap for hostPort.
node_network_configure() {
	local i=$1 nd name=${node_names[$1]}
	nd=$(node_dir "$i")
	cat >"$nd/cni/10-cluster.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "crisc-$name",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "crisc-pods$i",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": "${pod_cidr[$i]}"}]],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dataDir": "$nd/ipam"
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF
}

# kubelet_configure I writes node I's KubeletConfiguration and the
# CLUSTER_KUBELET_CONFIG drop-in.
kubelet_configure() {
	local i=$1 nd name=${node_names[$1]}
	nd=$(node_dir "$i")
	mkdir -p "$nd/kubelet.conf.d"
	if [[ -n ${CLUSTER_KUBELET_CONFIG:-} ]]; then
		cp "$CLUSTER_KUBELET_CONFIG" "$nd/kubelet.conf.d/50-cluster.conf"
	fi
	# cgroupDriver is not set: the kubelet takes criserver's from the CRI
	# (RuntimeConfig). failCgroupV1: the host has v1 controllers.
	# resolvConf "": pods with dnsPolicy Default get no host resolvers, so
	# nothing in the cluster looks names up outside it.
	cat >"$nd/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
failSwapOn: false
containerRuntimeEndpoint: unix://$(node_socket "$i")
imageServiceEndpoint: unix://$(node_socket "$i")
cgroupRoot: $cgroup_root/$name
cgroupsPerQOS: true
podLogsDir: $nd/pods
clusterDNS: [$dns_svc_ip]
clusterDomain: $cluster_domain
resolvConf: ""
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $kubelet_healthz_port
tlsCertFile: $pki/kubelet-$name-serving.crt
tlsPrivateKeyFile: $pki/kubelet-$name-serving.key
rotateCertificates: false
serverTLSBootstrap: false
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: true
  x509:
    clientCAFile: $pki/ca.crt
authorization:
  mode: Webhook
EOF
}

kube_proxy_configure() {
	local i=$1 nd name=${node_names[$1]}
	nd=$(node_dir "$i")
	cat >"$nd/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: $pki/kube-proxy.kubeconfig
mode: iptables
clusterCIDR: $cluster_cidr
hostnameOverride: $name
bindAddress: ${node_ip[$i]}
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
# Zero: leave the host-wide conntrack table size alone.
conntrack:
  maxPerCore: 0
  min: 0
EOF
}

start_criserver() {
	local i=$1 nd
	nd=$(node_dir "$i")
	start_proc "${node_names[$i]}" "$nd/pids/criserver.pid" "$nd/logs/criserver.log" \
		"$bin/criserver" --config "$nd/criserver/config.toml" -v=1
	wait_for 30 "criserver of ${node_names[$i]}" node_crictl "$i" version
}

start_kubelet() {
	local i=$1 nd
	nd=$(node_dir "$i")
	start_proc "${node_names[$i]}" "$nd/pids/kubelet.pid" "$nd/logs/kubelet.log" \
		"$bin/kubelet" --config "$nd/kubelet.yaml" --config-dir "$nd/kubelet.conf.d" --kubeconfig "$nd/kubelet.kubeconfig" \
		--root-dir "$nd/kubelet" --hostname-override "${node_names[$i]}" --node-ip "${node_ip[$i]}" --v=1
	wait_for 60 "kubelet of ${node_names[$i]}" node_ip_exec "$i" \
		curl -sf "http://127.0.0.1:$kubelet_healthz_port/healthz"
}

start_kube_proxy() {
	local i=$1 nd
	nd=$(node_dir "$i")
	start_proc "${node_names[$i]}" "$nd/pids/kube-proxy.pid" "$nd/logs/kube-proxy.log" \
		"$bin/kube-proxy" --config "$nd/kube-proxy.yaml" --v=1
	wait_for 60 "kube-proxy of ${node_names[$i]}" node_ip_exec "$i" curl -sf http://127.0.0.1:10256/livez
}

# start_runtime I starts node I's container runtime.
start_runtime() {
	if [[ $runtime == containerd ]]; then
		start_containerd "$1"
	else
		start_criserver "$1"
	fi
}

# import_image I FILE loads an image archive into node I's runtime.
import_image() {
	local i=$1 file=$2
	if [[ $runtime == containerd ]]; then
		ctr --address "$(node_socket "$i")" -n k8s.io images import "$file" >/dev/null
	else
		# The help text is read whole: with pipefail, "| grep -q" fails
		# whenever grep exits before criserver has written the rest.
		local help
		help=$("$bin/criserver" image import --help 2>&1) || true
		[[ $help == *'image import'* ]] ||
			die "this criserver has no 'image import' command: build one that has"
		"$bin/criserver" image import --listen "$(node_socket "$i")" "$file" >/dev/null
	fi
}

# stop_node I stops node I: the kubelet and kube-proxy, then every pod
# through the CRI (which unmounts, unwires and removes them), then
# criserver. What the kubelet mounted for the pods goes with the rest of
# $CLUSTER_DIR's mounts afterwards.
stop_node() {
	local i=$1 nd
	nd=$(node_dir "$i")
	stop_proc "$nd/pids/kubelet.pid"
	stop_proc "$nd/pids/kube-proxy.pid"
	if [[ -f $nd/pids/$runtime.pid ]] && node_crictl "$i" version >/dev/null 2>&1; then
		node_crictl "$i" rmp --all --force >/dev/null 2>&1 || echo "cluster: removing the pods of ${node_names[$i]} failed" >&2
	fi
	stop_proc "$nd/pids/$runtime.pid"
}

# cmd_restart NODE criserver|containerd|kubelet [--kill]
cmd_restart() {
	[[ $# -ge 2 ]] || die "restart NODE criserver|containerd|kubelet [--kill]"
	local i nd sig=TERM
	i=$(node_index "$1")
	nd=$(node_dir "$i")
	[[ ${3:-} == --kill ]] && sig=KILL
	[[ -z ${3:-} || ${3:-} == --kill ]] || die "restart: unknown option $3"
	case $2 in
	criserver | containerd)
		[[ $2 == "$runtime" ]] || die "restart: the nodes run $runtime"
		stop_proc "$nd/pids/$runtime.pid" "$sig"
		start_runtime "$i"
		;;
	kubelet)
		stop_proc "$nd/pids/kubelet.pid" "$sig"
		start_kubelet "$i"
		;;
	*) die "restart: $runtime or kubelet, not $2" ;;
	esac
}
