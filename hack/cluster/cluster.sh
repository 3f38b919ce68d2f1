#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# A local Kubernetes cluster whose nodes run criserver, kind-style: each node
# is a network namespace on this host with its own criserver, kubelet and
# kube-proxy; the control plane (etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler) runs in the first node's namespace. Processes run directly
# (no systemd needed); their pid files, logs, configs and data live under
# $CLUSTER_DIR.
#
#   cluster.sh up                      bring up NODES nodes; returns once every node is Ready and DNS answers
#   cluster.sh down                    stop everything and remove all of it, then check that nothing is left
#   cluster.sh check-clean             only the check
#   cluster.sh load FILE|IMAGE...      import an image archive into every node (a reference: every node pulls it)
#   cluster.sh crictl NODE ARGS...     crictl against NODE's criserver
#   cluster.sh node-exec NODE CMD...   run CMD in NODE's network namespace
#   cluster.sh restart NODE criserver|containerd|kubelet [--kill]
#                                      SIGTERM (SIGKILL with --kill) the process, start it again with the
#                                      same configuration, and wait until it serves
#   cluster.sh env                     print the cluster's settings (addresses, paths) as shell variables
#
# Environment: CLUSTER_DIR (/var/lib/criserver-cluster), NODES (1),
# CLUSTER_CRISERVER_CONFIG (a TOML drop-in for every node's criserver),
# CLUSTER_REGISTRIES_CONF (a registries.conf every node's criserver uses),
# CLUSTER_KUBELET_CONFIG (a KubeletConfiguration drop-in for every kubelet),
# CRISERVER_BIN (bin/criserver of this tree), CLUSTER_READY_TIMEOUT (300 s),
# CLUSTER_RUNTIME (criserver; containerd runs Debian's containerd instead).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
NODES_WANTED=${NODES:-1}
# The cluster's node count once known (set_nodes); none before.
NODES=0 node_names=() node_ip=() pod_cidr=()
repo=$(cd "$here/../.." && pwd)
export PATH="/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

CLUSTER_DIR=$(realpath -m "${CLUSTER_DIR:-/var/lib/criserver-cluster}")
CLUSTER_READY_TIMEOUT=${CLUSTER_READY_TIMEOUT:-300}

# Addresses. The nodes' subnet, pod CIDRs and service CIDR avoid criserver's
# default network (10.87/16) and the e2e suite's (10.85, 10.88).
host_bridge=crisc-br0
veth_prefix=crisc-veth
host_ip=10.89.0.1
cluster_cidr=10.90.0.0/16
service_cidr=10.96.0.0/16
kubernetes_svc_ip=10.96.0.1
dns_svc_ip=10.96.0.10
cluster_domain=cluster.local
cgroup_root=/criserver-cluster
coredns_image=criserver.local/coredns:v1.15.0
kubelet_healthz_port=10248
runtime=${CLUSTER_RUNTIME:-criserver}
case $runtime in
criserver | containerd) ;;
*) echo "cluster: CLUSTER_RUNTIME is criserver or containerd, not $runtime" >&2; exit 2 ;;
esac

pki=$CLUSTER_DIR/pki
cp_dir=$CLUSTER_DIR/control-plane
bin=$CLUSTER_DIR/bin

source "$here/pki.sh"
source "$here/net.sh"
source "$here/procs.sh"
source "$here/node.sh"
source "$here/controlplane.sh"
source "$here/image.sh"
source "$here/containerd.sh"

die() {
	echo "cluster: $*" >&2
	exit 1
}

log() {
	echo "cluster: $(date -u +%H:%M:%S) $*" >&2
}

# set_nodes N fills the per-node tables for N nodes.
set_nodes() {
	NODES=$1
	[[ $NODES =~ ^[1-9][0-9]?$ && $NODES -le 50 ]] || die "NODES must be 1 to 50, not $NODES"
	node_names=() node_ip=() pod_cidr=()
	local i
	for ((i = 0; i < NODES; i++)); do
		case $i in
		0) node_names+=(criserver-control-plane) ;;
		1) node_names+=(criserver-worker) ;;
		*) node_names+=("criserver-worker$i") ;;
		esac
		node_ip+=("10.89.0.$((i + 2))")
		pod_cidr+=("10.90.$i.0/24")
	done
}

# load_state reads the node count and runtime of the cluster in
# $CLUSTER_DIR.
load_state() {
	[[ -f $CLUSTER_DIR/cluster.env ]] || die "no cluster in $CLUSTER_DIR (no cluster.env)"
	local n
	n=$(sed -n 's/^NODES=//p' "$CLUSTER_DIR/cluster.env")
	runtime=$(sed -n 's/^RUNTIME=//p' "$CLUSTER_DIR/cluster.env")
	set_nodes "$n"
}

# node_index NAME is the index of node NAME.
node_index() {
	local i
	for ((i = 0; i < NODES; i++)); do
		[[ ${node_names[$i]} == "$1" ]] && { echo "$i"; return 0; }
	done
	die "no node $1 (nodes: ${node_names[*]})"
}

kubectl() {
	"$bin/kubectl" --kubeconfig "$CLUSTER_DIR/kubeconfig" "$@"
}

# install_binaries builds (or finds cached) and copies every binary the
# cluster runs into $CLUSTER_DIR/bin, so that rebuilding the tree does not
# change a running cluster.
install_binaries() {
	local k8s etcd coredns critools
	k8s=$(bash "$repo/hack/node-e2e/build.sh" kube-apiserver kube-controller-manager kube-scheduler kube-proxy kubectl kubelet)
	etcd=$(bash "$repo/hack/etcd/build.sh")
	coredns=$(bash "$repo/hack/coredns/build.sh")
	critools=$(bash "$repo/hack/critest/build.sh")
	local criserver=${CRISERVER_BIN:-$repo/bin/criserver}
	[[ -x $criserver ]] || die "$criserver not built (make build)"
	mkdir -p "$bin"
	local b
	for b in kube-apiserver kube-controller-manager kube-scheduler kube-proxy kubectl kubelet; do
		cp "$k8s/$b" "$bin/"
	done
	cp "$etcd/etcd" "$coredns/coredns" "$critools/crictl" "$bin/"
	cp "$criserver" "$bin/criserver"
	cp "$(dirname "$criserver")/criserver-infra" "$bin/criserver-infra"
	if [[ $runtime == containerd ]]; then
		# Writes containerd's config as the benchmark and the e2e suites do.
		(cd "$repo" && CGO_ENABLED=0 go build -o "$bin/containerdconf" ./hack/containerdconf)
	fi
}

# check_free refuses to start over anything a cluster left.
check_free() {
	set_nodes "$NODES_WANTED"
	[[ ! -e $CLUSTER_DIR/cluster.env ]] || die "a cluster exists in $CLUSTER_DIR: cluster.sh down first"
	local i
	for ((i = 0; i < NODES; i++)); do
		[[ ! -e /run/netns/${node_names[$i]} ]] || die "network namespace ${node_names[$i]} exists: cluster.sh down first"
	done
	! ip link show "$host_bridge" >/dev/null 2>&1 || die "$host_bridge exists: cluster.sh down first"
}

cmd_up() {
	set_nodes "$NODES_WANTED"
	local start=$SECONDS i
	mkdir -p "$CLUSTER_DIR" "$cp_dir"
	printf 'NODES=%s\nRUNTIME=%s\n' "$NODES" "$runtime" >"$CLUSTER_DIR/cluster.env"
	# Whatever fails from here on, down removes what was made.
	log "building or finding the binaries"
	install_binaries
	log "binaries ready after $((SECONDS - start)) s"
	save_sysctls
	save_host_paths
	pki_control_plane
	build_coredns_image
	if [[ $runtime == containerd ]]; then
		build_pause_image
	fi
	write_registries_conf
	net_host
	for ((i = 0; i < NODES; i++)); do
		net_node "$i"
	done
	net_routes
	start_control_plane
	for ((i = 0; i < NODES; i++)); do
		node_configure "$i"
		pki_node "$i"
		start_runtime "$i"
		import_image "$i" "$CLUSTER_DIR/images/coredns.tar"
		if [[ $runtime == containerd ]]; then
			import_image "$i" "$CLUSTER_DIR/images/pause.tar"
		fi
		start_kubelet "$i"
	done
	wait_nodes_registered
	# After registration: kube-proxy reads its node's addresses from it.
	for ((i = 0; i < NODES; i++)); do
		start_kube_proxy "$i"
	done
	for ((i = 0; i < NODES; i++)); do
		kubectl patch node "${node_names[$i]}" --type=merge -p "{\"spec\":{\"podCIDR\":\"${pod_cidr[$i]}\",\"podCIDRs\":[\"${pod_cidr[$i]}\"]}}" >/dev/null
	done
	kubectl label node "${node_names[0]}" node-role.kubernetes.io/control-plane= --overwrite >/dev/null
	deploy_coredns
	wait_ready
	log "cluster of $NODES node(s) Ready, DNS answers: $((SECONDS - start)) s"
	echo "kubectl: $bin/kubectl --kubeconfig $CLUSTER_DIR/kubeconfig"
}

# wait_nodes_registered waits until every node object exists.
wait_nodes_registered() {
	local deadline=$((SECONDS + CLUSTER_READY_TIMEOUT)) i
	for ((i = 0; i < NODES; i++)); do
		until kubectl get node "${node_names[$i]}" >/dev/null 2>&1; do
			((SECONDS < deadline)) || die "node ${node_names[$i]} has not registered; see $(node_dir "$i")/logs/kubelet.log"
			sleep 1
		done
	done
}

# wait_ready waits for every node to be Ready, CoreDNS to be available and a
# DNS query to the DNS service, from the last node, to answer with the
# kubernetes service's address.
wait_ready() {
	local left=$((CLUSTER_READY_TIMEOUT - SECONDS))
	((left > 10)) || left=10
	kubectl wait --for=condition=Ready node --all --timeout="${left}s" >/dev/null
	kubectl -n kube-system rollout status deployment/coredns --timeout="${left}s" >/dev/null
	local deadline=$((SECONDS + 60)) last=$((NODES - 1))
	until dns_answers "$last"; do
		((SECONDS < deadline)) || die "DNS at $dns_svc_ip does not answer kubernetes.default.svc.$cluster_domain from ${node_names[$last]}"
		sleep 1
	done
}

# dns_answers I asks the cluster DNS, from node I's namespace (through
# kube-proxy's service rules), for the A record of the kubernetes service,
# with a query bash writes itself, and checks that the answer carries
# $kubernetes_svc_ip. The query goes through dd: each write to a UDP socket
# is a datagram, and printf alone writes the query in pieces (it has a
# newline byte).
dns_answers() {
	local out
	# shellcheck disable=SC2016
	out=$(node_ip_exec "$1" timeout 3 bash -c '
		exec 3<>/dev/udp/$0/53
		printf "\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x0akubernetes\x07default\x03svc\x07cluster\x05local\x00\x00\x01\x00\x01" |
			dd bs=512 count=1 iflag=fullblock status=none >&3
		dd bs=512 count=1 status=none <&3 | od -An -tx1 -v' "$dns_svc_ip" 2>/dev/null | tr -d ' \n') || return 1
	# The same id, a response (QR) without error (rcode 0), at least one
	# answer, and the address at the end.
	((${#out} > 24)) || return 1
	local want
	want=$(printf '%02x' ${kubernetes_svc_ip//./ })
	[[ ${out:0:4} == 1234 ]] && (((16#${out:4:2} & 0x80) != 0 && (16#${out:6:2} & 0x0f) == 0 && 16#${out:12:4} > 0)) &&
		[[ $out == *"$want" ]]
}

cmd_down() {
	if [[ ! -f $CLUSTER_DIR/cluster.env ]]; then
		echo "cluster: no cluster in $CLUSTER_DIR" >&2
		check_clean
		return
	fi
	load_state
	local i
	log "stopping $NODES node(s)"
	for ((i = NODES - 1; i >= 0; i--)); do
		stop_node "$i"
	done
	stop_control_plane
	kill_leftovers
	unmount_under "$CLUSTER_DIR"
	net_down
	remove_cgroups
	remove_log_links
	remove_host_paths
	restore_sysctls
	rm -rf "$CLUSTER_DIR"
	log "down"
	check_clean
}

cmd_load() {
	load_state
	[[ $# -gt 0 ]] || die "load: name an image archive or reference"
	local arg i
	for arg in "$@"; do
		for ((i = 0; i < NODES; i++)); do
			if [[ -f $arg ]]; then
				import_image "$i" "$arg"
			else
				node_crictl "$i" pull "$arg"
			fi
		done
	done
}

cmd_env() {
	load_state
	cat <<EOF
CLUSTER_DIR=$CLUSTER_DIR
KUBECONFIG=$CLUSTER_DIR/kubeconfig
KUBECTL=$bin/kubectl
CRICTL=$bin/crictl
CLUSTER_NODES="${node_names[*]}"
CLUSTER_NODE_IPS="${node_ip[*]}"
CLUSTER_HOST_IP=$host_ip
CLUSTER_REGISTRIES_DROPIN_DIR=$CLUSTER_DIR/registries.conf.d
CLUSTER_POD_CIDR=$cluster_cidr
CLUSTER_SERVICE_CIDR=$service_cidr
CLUSTER_DNS_IP=$dns_svc_ip
CLUSTER_CGROUP_ROOT=$cgroup_root
CLUSTER_RUNTIME=$runtime
EOF
}

main() {
	[[ $(id -u) == 0 ]] || die "must run as root"
	local cmd=${1:-}
	[[ $# -gt 0 ]] && shift
	case $cmd in
	up) up_or_clean_up ;;
	__up) cmd_up ;;
	down) cmd_down ;;
	check-clean) check_clean ;;
	load) cmd_load "$@" ;;
	crictl)
		load_state
		[[ $# -gt 0 ]] || die "crictl NODE ARGS..."
		local i
		i=$(node_index "$1")
		shift
		node_crictl "$i" "$@"
		;;
	node-exec)
		load_state
		[[ $# -gt 1 ]] || die "node-exec NODE CMD..."
		local i
		i=$(node_index "$1")
		shift
		node_ip_exec "$i" "$@"
		;;
	restart) load_state && cmd_restart "$@" ;;
	env) cmd_env ;;
	*) sed -n '/^#   cluster.sh/,/^#$/p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
	esac
}

# up_or_clean_up runs cmd_up in a process of its own (errexit holds there,
# which it would not in a condition here); when it fails, the logs' tails are
# shown and, unless CLUSTER_KEEP_ON_FAILURE=1, the cluster is taken down.
up_or_clean_up() {
	check_free
	local rc=0
	bash "$0" __up || rc=$?
	((rc != 0)) || return 0
	echo "cluster: up failed; last lines of the logs:" >&2
	local f
	for f in "$CLUSTER_DIR"/control-plane/logs/*.log "$CLUSTER_DIR"/nodes/*/logs/*.log; do
		[[ -f $f ]] || continue
		echo "== $f" >&2
		tail -n 15 "$f" >&2
	done
	if [[ ${CLUSTER_KEEP_ON_FAILURE:-} != 1 ]]; then
		cmd_down || true
	fi
	return "$rc"
}

main "$@"
