#!/usr/bin/env bash
# Counts the files and directories the criserver daemon itself creates over
# whole pod and container life cycles (RunPodSandbox, CreateContainer,
# StartContainer, StopContainer, RemoveContainer, StopPodSandbox,
# RemovePodSandbox), from an strace of its threads. conmon, the OCI runtime
# and the CNI plugins are child processes and are left out.
#
# It runs PODS pods with no container, then PODS pods with CONTAINERS
# containers each, and prints one table for each: the difference is the
# containers' share. Run it as root under the e2e lock, after `make build`:
#
#   flock /tmp/criserver-e2e.lock hack/creations/count.sh
#
# Environment: CRISERVER (bin/criserver), CRICTL (crictl on PATH, else the
# cached cri-tools one), IMAGE_DIR (a bench cache image: image.json and
# blobs/; default /var/tmp/b16/cache/images/busybox), PODS (5),
# CONTAINERS (2), KEEP=1 keeps the work directory.
set -euo pipefail

cd "$(dirname "$0")/../.."
CRISERVER=$(realpath "${CRISERVER:-bin/criserver}")
CRICTL=${CRICTL:-$(command -v crictl || echo /var/cache/criserver/cri-tools-v1.37.0/crictl)}
IMAGE_DIR=${IMAGE_DIR:-/var/tmp/b16/cache/images/busybox}
PODS=${PODS:-5}
CONTAINERS=${CONTAINERS:-2}
export PATH=/usr/local/go/bin:$PATH

work=$(mktemp -d /var/tmp/creations.XXXXXX)
bridge=ccount0
crictl() { "$CRICTL" --runtime-endpoint "unix://$work/criserver.sock" --image-endpoint "unix://$work/criserver.sock" "$@"; }
daemon_pid=
cleanup() {
	if [[ -n $daemon_pid ]]; then
		# What a failed step left: pods, with their containers.
		crictl rmp --all --force >/dev/null 2>&1 || true
		kill -TERM "$daemon_pid" 2>/dev/null && wait "$daemon_pid" 2>/dev/null || true
	fi
	ip link del "$bridge" 2>/dev/null || true
	if [[ ${KEEP:-0} != 1 ]]; then
		rm -rf "$work"
	fi
}
trap cleanup EXIT

go build -o "$work/creations" ./hack/creations

mkdir -p "$work/cni"
cat >"$work/cni/10-count.conflist" <<EOF
{"cniVersion": "1.0.0", "name": "criserver-count", "plugins": [
  {"type": "bridge", "bridge": "$bridge", "isGateway": true,
   "ipam": {"type": "host-local", "dataDir": "$work/ipam", "ranges": [[{"subnet": "10.209.0.0/16"}]]}}]}
EOF
cat >"$work/config.toml" <<EOF
root = "$work/root"
state = "$work/state"
listen = "$work/criserver.sock"
[cni]
conf_dir = "$work/cni"
install_default_network = false
EOF
"$CRISERVER" --config "$work/config.toml" >"$work/criserver.log" 2>&1 &
daemon_pid=$!
for _ in $(seq 100); do [[ -S $work/criserver.sock ]] && break; sleep 0.1; done

# An OCI archive of the cached image, imported under one name.
oci=$work/oci
mkdir -p "$oci/blobs/sha256"
jq -r '.config.path, .layers[].path' "$IMAGE_DIR/image.json" | while read -r p; do cp "$p" "$oci/blobs/sha256/"; done
manifest=$(jq -r .manifest "$IMAGE_DIR/image.json" | base64 -d)
mdigest=$(printf %s "$manifest" | sha256sum | cut -d' ' -f1)
printf %s "$manifest" >"$oci/blobs/sha256/$mdigest"
echo '{"imageLayoutVersion": "1.0.0"}' >"$oci/oci-layout"
jq -n --arg d "sha256:$mdigest" --argjson s "${#manifest}" \
	'{schemaVersion: 2, manifests: [{mediaType: "application/vnd.oci.image.manifest.v1+json", digest: $d, size: $s,
	  annotations: {"org.opencontainers.image.ref.name": "count:latest"}}]}' >"$oci/index.json"
tar -C "$oci" -cf "$work/image.tar" .
"$CRISERVER" image import --listen "$work/criserver.sock" --name localhost/count:latest "$work/image.tar" >/dev/null

# run_pods N C LOG: N pod life cycles of C containers each, traced to LOG.
run_pods() {
	local n=$1 c=$2 log=$3
	strace -f -qq -y -o "$log" -p "$daemon_pid" \
		-e trace=openat,mkdirat,renameat,renameat2,linkat,symlinkat,unlinkat,mknodat,clone,clone3,vfork,fork &
	local strace_pid=$!
	sleep 1
	for i in $(seq "$n"); do
		jq -n --arg n "count-$c-$i" '{metadata: {name: $n, namespace: "count", uid: $n}, log_directory: "'"$work"'/logs/\($n)",
			linux: {security_context: {namespace_options: {network: 0}}}}' >"$work/pod.json"
		# The kubelet makes the pod's log directory.
		mkdir -p "$work/logs/count-$c-$i"
		local pod
		pod=$(crictl runp "$work/pod.json")
		echo "$pod" >>"$work/pod-ids"
		local ctrs=()
		for j in $(seq "$c"); do
			jq -n --arg n "c$j" '{metadata: {name: $n}, image: {image: "localhost/count:latest"},
				command: ["sleep", "3600"], log_path: "\($n).log"}' >"$work/ctr.json"
			ctrs+=("$(crictl create "$pod" "$work/ctr.json" "$work/pod.json")")
		done
		for ctr in "${ctrs[@]}"; do crictl start "$ctr" >/dev/null; done
		for ctr in "${ctrs[@]}"; do crictl stop --timeout 0 "$ctr" >/dev/null; done
		for ctr in "${ctrs[@]}"; do crictl rm "$ctr" >/dev/null; done
		crictl stopp "$pod" >/dev/null
		crictl rmp "$pod" >/dev/null
	done
	sleep 1
	kill -INT "$strace_pid"
	wait "$strace_pid" || true
}

summary() {
	"$work/creations" -pods "$1" -containers "$2" -pod-ids "$work/pod-ids" -root "$work/root" -state "$work/state" "$3"
}

run_pods "$PODS" 0 "$work/pods.strace"
echo "== $PODS pods, no container"
summary "$PODS" 0 "$work/pods.strace"
: >"$work/pod-ids"
run_pods "$PODS" "$CONTAINERS" "$work/containers.strace"
echo
echo "== $PODS pods of $CONTAINERS containers"
summary "$PODS" $((PODS * CONTAINERS)) "$work/containers.strace"
