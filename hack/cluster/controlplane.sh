# shellcheck shell=bash disable=SC2154
# The control plane and the cluster's add-ons (CoreDNS), sourced by
# cluster.sh. The control plane runs in the first node's network namespace.

start_control_plane() {
	local cp=${node_names[0]} ip=${node_ip[0]}
	local pids=$cp_dir/pids logs=$cp_dir/logs
	start_proc "$cp" "$pids/etcd.pid" "$logs/etcd.log" "$bin/etcd" \
		--name "$cp" --data-dir "$cp_dir/etcd" \
		--listen-client-urls https://127.0.0.1:2379 --advertise-client-urls https://127.0.0.1:2379 \
		--listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
		--initial-cluster "$cp=http://127.0.0.1:2380" --listen-metrics-urls http://127.0.0.1:2381 \
		--cert-file "$pki/etcd-server.crt" --key-file "$pki/etcd-server.key" \
		--client-cert-auth --trusted-ca-file "$pki/ca.crt" --log-level warn
	wait_for 30 etcd node_ip_exec 0 curl -sf http://127.0.0.1:2381/health

	start_proc "$cp" "$pids/kube-apiserver.pid" "$logs/kube-apiserver.log" "$bin/kube-apiserver" \
		--advertise-address "$ip" --secure-port 6443 \
		--etcd-servers https://127.0.0.1:2379 --etcd-cafile "$pki/ca.crt" \
		--etcd-certfile "$pki/apiserver-etcd-client.crt" --etcd-keyfile "$pki/apiserver-etcd-client.key" \
		--tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
		--client-ca-file "$pki/ca.crt" --anonymous-auth=false \
		--kubelet-client-certificate "$pki/apiserver-kubelet-client.crt" \
		--kubelet-client-key "$pki/apiserver-kubelet-client.key" \
		--kubelet-certificate-authority "$pki/ca.crt" --kubelet-preferred-address-types InternalIP \
		--authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction \
		--service-account-issuer "https://kubernetes.default.svc.$cluster_domain" \
		--service-account-key-file "$pki/sa.pub" --service-account-signing-key-file "$pki/sa.key" \
		--service-cluster-ip-range "$service_cidr" --allow-privileged=true --profiling=false --v=1
	wait_for 90 kube-apiserver kubectl get --raw /readyz

	start_proc "$cp" "$pids/kube-controller-manager.pid" "$logs/kube-controller-manager.log" \
		"$bin/kube-controller-manager" --kubeconfig "$cp_dir/controller-manager.kubeconfig" \
		--authentication-kubeconfig "$cp_dir/controller-manager.kubeconfig" \
		--authorization-kubeconfig "$cp_dir/controller-manager.kubeconfig" \
		--bind-address 127.0.0.1 --leader-elect=false --use-service-account-credentials \
		--service-account-private-key-file "$pki/sa.key" --root-ca-file "$pki/ca.crt" \
		--cluster-signing-cert-file "$pki/ca.crt" --cluster-signing-key-file "$pki/ca.key" \
		--cluster-name criserver --service-cluster-ip-range "$service_cidr" \
		--allocate-node-cidrs=false --profiling=false --v=1
	start_proc "$cp" "$pids/kube-scheduler.pid" "$logs/kube-scheduler.log" \
		"$bin/kube-scheduler" --kubeconfig "$cp_dir/scheduler.kubeconfig" \
		--authentication-kubeconfig "$cp_dir/scheduler.kubeconfig" \
		--authorization-kubeconfig "$cp_dir/scheduler.kubeconfig" \
		--bind-address 127.0.0.1 --leader-elect=false --profiling=false --v=1
}

stop_control_plane() {
	local c
	for c in kube-scheduler kube-controller-manager kube-apiserver etcd; do
		stop_proc "$cp_dir/pids/$c.pid"
	done
}

# build_coredns_image writes $CLUSTER_DIR/images/coredns.tar: the coredns
# binary of hack/coredns and the Corefile beside this script.
build_coredns_image() {
	local root=$CLUSTER_DIR/images/coredns.root
	rm -rf "$root"
	mkdir -p "$root/etc/coredns"
	install -m 0755 "$bin/coredns" "$root/coredns"
	install -m 0644 "$here/Corefile" "$root/etc/coredns/Corefile"
	docker_archive "$CLUSTER_DIR/images/coredns.tar" "$coredns_image" "$root" \
		'"Entrypoint":["/coredns"],"Cmd":["-conf","/etc/coredns/Corefile"]'
	rm -rf "$root"
}

deploy_coredns() {
	sed -e "s|@IMAGE@|$coredns_image|g" -e "s|@DNS_IP@|$dns_svc_ip|g" "$here/coredns.yaml" | kubectl apply -f - >/dev/null
}
