# shellcheck shell=bash disable=SC2154
# Certificates and kubeconfigs of the local cluster, made with openssl.
# Sourced by cluster.sh; uses its variables (pki, CLUSTER_DIR, nodes, ...).
#
# One CA signs everything (the API server's serving and client certificates,
# etcd's, the kubelets' serving and client certificates); a second key pair
# signs service account tokens. Keys are ECDSA P-256: fast to make, and
# every component accepts them.

# pki_key FILE makes a private key, readable by root only.
pki_key() {
	(umask 077 && openssl ecparam -name prime256v1 -genkey -noout -out "$1")
}

# pki_cert NAME SUBJECT EXT-USAGE [SAN] signs $pki/NAME.crt for
# $pki/NAME.key with the CA. EXT-USAGE is serverAuth, clientAuth or both;
# SAN is an openssl subjectAltName value ("DNS:a,IP:1.2.3.4").
pki_cert() {
	local name=$1 subject=$2 usage=$3 san=${4:-}
	local ext="basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=$usage"
	[[ -n $san ]] && ext+=$'\n'"subjectAltName=$san"
	pki_key "$pki/$name.key"
	openssl req -new -key "$pki/$name.key" -subj "$subject" -out "$pki/$name.csr"
	openssl x509 -req -in "$pki/$name.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" \
		-CAcreateserial -days 365 -sha256 -extfile <(printf '%s\n' "$ext") \
		-out "$pki/$name.crt" 2>/dev/null
	rm -f "$pki/$name.csr"
}

# pki_kubeconfig FILE USER CERT-NAME SERVER writes a kubeconfig that
# authenticates with $pki/CERT-NAME.{crt,key}, embedded, so the file
# stands alone.
pki_kubeconfig() {
	local file=$1 user=$2 cert=$3 server=$4
	(umask 077 && cat >"$file" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: criserver
  cluster:
    server: $server
    certificate-authority-data: $(base64 -w0 "$pki/ca.crt")
users:
- name: $user
  user:
    client-certificate-data: $(base64 -w0 "$pki/$cert.crt")
    client-key-data: $(base64 -w0 "$pki/$cert.key")
contexts:
- name: $user@criserver
  context:
    cluster: criserver
    user: $user
current-context: $user@criserver
EOF
	)
}

# pki_control_plane makes the CA, the service account key pair and the
# certificates and kubeconfigs of the control plane and the admin.
pki_control_plane() {
	mkdir -p "$pki"
	pki_key "$pki/ca.key"
	openssl req -x509 -new -key "$pki/ca.key" -subj "/CN=criserver-cluster-ca" -days 365 -sha256 \
		-addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
		-out "$pki/ca.crt"
	(umask 077 && openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$pki/sa.key" 2>/dev/null)
	openssl pkey -in "$pki/sa.key" -pubout -out "$pki/sa.pub"

	local cp_ip=${node_ip[0]}
	pki_cert apiserver "/CN=kube-apiserver" serverAuth \
		"DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.$cluster_domain,DNS:localhost,DNS:${node_names[0]},IP:$kubernetes_svc_ip,IP:$cp_ip,IP:127.0.0.1"
	# The API server's client certificate towards the kubelets: system:masters
	# may use every kubelet API (exec, logs, port-forward, metrics).
	pki_cert apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" clientAuth
	# etcd calls itself (its gRPC gateway) with its serving certificate.
	pki_cert etcd-server "/CN=etcd" serverAuth,clientAuth "DNS:localhost,IP:127.0.0.1"
	pki_cert apiserver-etcd-client "/CN=kube-apiserver-etcd-client" clientAuth
	pki_cert admin "/O=system:masters/CN=kubernetes-admin" clientAuth
	pki_cert controller-manager "/CN=system:kube-controller-manager" clientAuth
	pki_cert scheduler "/CN=system:kube-scheduler" clientAuth
	pki_cert kube-proxy "/CN=system:kube-proxy" clientAuth

	local server=https://$cp_ip:6443
	pki_kubeconfig "$CLUSTER_DIR/kubeconfig" kubernetes-admin admin "$server"
	pki_kubeconfig "$cp_dir/controller-manager.kubeconfig" system:kube-controller-manager controller-manager "$server"
	pki_kubeconfig "$cp_dir/scheduler.kubeconfig" system:kube-scheduler scheduler "$server"
	pki_kubeconfig "$pki/kube-proxy.kubeconfig" system:kube-proxy kube-proxy "$server"
}

# pki_node I makes node I's kubelet certificates: a client certificate the
# Node authorizer recognizes (system:node:<name> in system:nodes) and a
# serving certificate for its node IP and name, which the API server checks
# against the CA.
pki_node() {
	local i=$1 name=${node_names[$1]}
	pki_cert "kubelet-$name" "/O=system:nodes/CN=system:node:$name" clientAuth
	pki_cert "kubelet-$name-serving" "/CN=$name" serverAuth "DNS:$name,IP:${node_ip[$i]}"
	pki_kubeconfig "$(node_dir "$i")/kubelet.kubeconfig" "system:node:$name" "kubelet-$name" "https://${node_ip[0]}:6443"
}
