# shellcheck shell=bash disable=SC2154
# The local cluster's network, sourced by cluster.sh.
#
# The host has a bridge ($host_bridge, $host_ip) on the nodes' subnet. Each
# node is a network namespace named after the node, joined to the bridge by
# a veth (eth0 inside). Each node's pods are on a CNI bridge of the node's
# own with the node's pod CIDR; pod CIDRs are routed to their node's IP, on
# the host and on every other node. The service CIDR is routed to the
# control plane node from the host (kube-proxy there translates it) and
# on-link inside each node, so that a connect() to a service IP gets as far
# as kube-proxy's rules: a node has no default route, so nothing a node or
# a pod sends leaves the machine.

# net_host makes the host's bridge.
net_host() {
	ip link add "$host_bridge" type bridge
	ip addr add "$host_ip/24" dev "$host_bridge"
	ip link set "$host_bridge" up
}

# net_node I makes node I's namespace, veth, address and routes.
net_node() {
	local i=$1 name=${node_names[$1]} veth=${veth_prefix}$1
	ip netns add "$name"
	ip link add "$veth" type veth peer name eth0 netns "$name"
	ip link set "$veth" master "$host_bridge" up
	node_ip_exec "$i" ip link set lo up
	node_ip_exec "$i" ip addr add "${node_ip[$i]}/24" dev eth0
	node_ip_exec "$i" ip link set eth0 up
	node_ip_exec "$i" ip route add "$service_cidr" dev eth0
	# Forwarding for the pods; bridged pod traffic through iptables, so that
	# kube-proxy's translations also apply between pods of one node.
	node_ip_exec "$i" sysctl -qw net.ipv4.ip_forward=1
	if [[ -e /proc/sys/net/bridge/bridge-nf-call-iptables ]]; then
		node_ip_exec "$i" sysctl -qw net.bridge.bridge-nf-call-iptables=1
	fi
}

# net_routes joins the pod CIDRs: on the host and on every node, each
# other node's pod CIDR goes to that node. The host reaches services
# through the control plane node.
net_routes() {
	local i j
	ip route replace "$service_cidr" via "${node_ip[0]}" dev "$host_bridge"
	for ((i = 0; i < NODES; i++)); do
		ip route replace "${pod_cidr[$i]}" via "${node_ip[$i]}" dev "$host_bridge"
		for ((j = 0; j < NODES; j++)); do
			[[ $i == "$j" ]] && continue
			node_ip_exec "$j" ip route replace "${pod_cidr[$i]}" via "${node_ip[$i]}" dev eth0
		done
	done
}

# node_ip_exec I CMD... runs CMD in node I's network namespace (only: the
# mount namespace stays the host's, unlike `ip netns exec`, so that the
# kubelet's volume mounts are where criserver and the runtimes look).
node_ip_exec() {
	local i=$1
	shift
	nsenter --net="/run/netns/${node_names[$i]}" -- "$@"
}

# net_down removes the nodes' namespaces (and with them their veths,
# bridges, routes and iptables rules), the host's bridge and its routes.
net_down() {
	local i
	for ((i = 0; i < NODES; i++)); do
		ip route del "${pod_cidr[$i]}" 2>/dev/null || true
		ip link del "${veth_prefix}$i" 2>/dev/null || true
		[[ -e /run/netns/${node_names[$i]} ]] && ip netns del "${node_names[$i]}"
	done
	ip route del "$service_cidr" 2>/dev/null || true
	ip link del "$host_bridge" 2>/dev/null || true
}
