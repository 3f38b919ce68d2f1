#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Times a Deployment of REPLICAS (30) busybox pods on a running local
# cluster, from `kubectl apply` until all are Ready, then deletes it and
# times that too. The image (Debian's busybox-static) is loaded into every
# node first, so no pull is timed. Prints one line: the runtime, replicas
# and seconds.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
CLUSTER_DIR=${CLUSTER_DIR:-/var/lib/criserver-cluster}
REPLICAS=${REPLICAS:-30}
image=criserver.local/scale-busybox:1
ns=criserver-scale

source "$here/image.sh"

kubectl() {
	"$CLUSTER_DIR/bin/kubectl" --kubeconfig "$CLUSTER_DIR/kubeconfig" "$@"
}

build_busybox_image "$CLUSTER_DIR/images/scale.tar" "$image"
bash "$here/cluster.sh" load "$CLUSTER_DIR/images/scale.tar"
rm -f "$CLUSTER_DIR/images/scale.tar"
kubectl create namespace "$ns" >/dev/null
trap 'kubectl delete namespace "$ns" --wait=true --timeout=300s >/dev/null || true' EXIT

start=$(date +%s.%N)
kubectl apply -f - >/dev/null <<YAML
apiVersion: apps/v1
kind: Deployment
metadata:
  name: scale
  namespace: $ns
spec:
  replicas: $REPLICAS
  selector:
    matchLabels: {app: scale}
  template:
    metadata:
      labels: {app: scale}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: sleep
        image: $image
        imagePullPolicy: Never
        command: [sleep, "3600"]
YAML
kubectl -n "$ns" rollout status deployment/scale --timeout=600s >/dev/null
ready=$(date +%s.%N)
kubectl -n "$ns" delete deployment scale --wait=true >/dev/null
kubectl -n "$ns" wait --for=delete pod --all --timeout=300s >/dev/null
gone=$(date +%s.%N)
runtime=$(sed -n 's/^RUNTIME=//p' "$CLUSTER_DIR/cluster.env")
nodes=$(sed -n 's/^NODES=//p' "$CLUSTER_DIR/cluster.env")
awk -v r="$runtime" -v n="$nodes" -v p="$REPLICAS" -v s="$start" -v a="$ready" -v g="$gone" 'BEGIN {
	printf "scale: runtime %s, %s node(s), %s replicas: all Ready %.1f s after apply; all gone %.1f s after delete\n", r, n, p, a - s, g - a
}'
