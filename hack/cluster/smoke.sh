#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# A quick check of a running local cluster (cluster.sh up): a busybox image
# (Debian's busybox-static) is built and loaded into every node, one web
# server pod runs on each node, and from the first pod the script fetches
# every pod directly (across nodes), the pods through a Service named by
# DNS, and resolves kubernetes.default; from the host, it fetches the
# Service's ClusterIP and NodePort. Everything it made is
# deleted at the end. It exits non-zero on the first failure.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
CLUSTER_DIR=${CLUSTER_DIR:-/var/lib/criserver-cluster}
image=criserver.local/smoke-busybox:1
ns=criserver-smoke

source "$here/image.sh"

kubectl() {
	"$CLUSTER_DIR/bin/kubectl" --kubeconfig "$CLUSTER_DIR/kubeconfig" "$@"
}

fail() {
	echo "smoke: FAIL: $*" >&2
	kubectl -n "$ns" get pods -o wide >&2 || true
	exit 1
}

# pod NAME NODE: a busybox httpd on port 8080 serving its pod name.
pod() {
	cat <<EOF
apiVersion: v1
kind: Pod
metadata:
  name: $1
  namespace: $ns
  labels: {app: smoke}
spec:
  nodeName: $2
  terminationGracePeriodSeconds: 1
  containers:
  - name: web
    image: $image
    imagePullPolicy: Never
    command: [sh, -c, 'mkdir /www && echo $1 >/www/index.html && exec httpd -f -p 8080 -h /www']
    readinessProbe:
      tcpSocket: {port: 8080}
      periodSeconds: 1
---
EOF
}

main() {
	local start=$SECONDS nodes=() n
	mapfile -t nodes < <(kubectl get nodes -o jsonpath='{range .items[*]}{.metadata.name}{"\n"}{end}')
	((${#nodes[@]} > 0)) || fail "no nodes"
	build_busybox_image "$CLUSTER_DIR/images/busybox.tar" "$image"
	bash "$here/cluster.sh" load "$CLUSTER_DIR/images/busybox.tar"

	kubectl create namespace "$ns" >/dev/null
	trap 'kubectl delete namespace "$ns" --wait=true --timeout=120s >/dev/null || true; rm -f "$CLUSTER_DIR/images/busybox.tar"' EXIT
	{
		for n in "${nodes[@]}"; do pod "web-$n" "$n"; done
		cat <<EOF
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: $ns
spec:
  type: NodePort
  selector: {app: smoke}
  ports:
  - {port: 80, targetPort: 8080}
EOF
	} | kubectl apply -f - >/dev/null
	kubectl -n "$ns" wait --for=condition=Ready pod --all --timeout=120s >/dev/null || fail "pods not Ready"
	echo "smoke: ${#nodes[@]} pod(s) Ready on ${nodes[*]} after $((SECONDS - start)) s"

	# busybox-static's wget crashes with -T: timeout bounds it instead.
	local client=web-${nodes[0]} ip got
	for n in "${nodes[@]}"; do
		ip=$(kubectl -n "$ns" get pod "web-$n" -o jsonpath='{.status.podIP}')
		got=$(kubectl -n "$ns" exec "$client" -- timeout 10 wget -qO- "http://$ip:8080/") || fail "$client -> web-$n ($ip)"
		[[ $got == "web-$n" ]] || fail "$client -> web-$n ($ip) answered '$got'"
		echo "smoke: pod to pod: $client -> web-$n at $ip ok"
	done
	# Through the Service by its DNS name, until every pod has answered.
	local seen=() i
	for ((i = 0; i < 40 && ${#seen[@]} < ${#nodes[@]}; i++)); do
		got=$(kubectl -n "$ns" exec "$client" -- timeout 10 wget -qO- "http://web.$ns.svc.cluster.local/") ||
			fail "$client -> service web.$ns.svc.cluster.local"
		[[ " ${seen[*]} " == *" $got "* ]] || seen+=("$got")
	done
	((${#seen[@]} == ${#nodes[@]})) || fail "the service reached only ${seen[*]}"
	echo "smoke: ClusterIP service by DNS name reached ${seen[*]}"
	# From the host: the ClusterIP (routed to the first node) and the
	# NodePort on the last node.
	local cip port last
	cip=$(kubectl -n "$ns" get service web -o jsonpath='{.spec.clusterIP}')
	port=$(kubectl -n "$ns" get service web -o jsonpath='{.spec.ports[0].nodePort}')
	last=$(kubectl get node "${nodes[-1]}" -o jsonpath='{.status.addresses[?(@.type=="InternalIP")].address}')
	got=$(curl -sf --max-time 5 "http://$cip/") || fail "host -> ClusterIP $cip"
	[[ $got == web-* ]] || fail "host -> ClusterIP $cip answered '$got'"
	got=$(curl -sf --max-time 5 "http://$last:$port/") || fail "host -> NodePort $last:$port"
	[[ $got == web-* ]] || fail "host -> NodePort $last:$port answered '$got'"
	echo "smoke: from the host, ClusterIP $cip and NodePort $last:$port answer"
	got=$(kubectl -n "$ns" exec "$client" -- nslookup kubernetes.default.svc.cluster.local) ||
		fail "nslookup in $client: $got"
	[[ $got == *"10.96.0.1"* ]] || fail "nslookup kubernetes.default: $got"
	echo "smoke: DNS in a pod resolves kubernetes.default.svc.cluster.local"
	echo "smoke: ok after $((SECONDS - start)) s"
}

main "$@"
