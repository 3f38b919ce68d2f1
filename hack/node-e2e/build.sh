#!/usr/bin/env bash
# Builds Kubernetes binaries at the version this module pins, once: they are
# cached under $CACHE/kubernetes-<version>/ and a re-run with the same
# version only prints that directory. Arguments name the binaries to build
# (e.g. `build.sh kubelet kubectl`); none builds the node e2e set: the node
# e2e test binary (k8s.io/kubernetes/test/e2e_node), the kubelet, agnhost
# (the test image program) and the ginkgo CLI that runs the suite in
# parallel processes. Cold, that set takes about 20 minutes on 2
# cores. The local cluster (hack/cluster) also asks for kube-apiserver,
# kube-controller-manager, kube-scheduler, kube-proxy and kubectl.
set -euo pipefail
cd "$(dirname "$0")"
export PATH="/usr/local/go/bin:$PATH"
# The daemon's build tags are meaningless here.
unset GOFLAGS

cache=${CACHE:-/var/cache/criserver}
version=$(go list -m -f '{{.Version}}' k8s.io/kubernetes)
dir=$cache/kubernetes-$version
mkdir -p "$dir"

# The version the binaries report, as Kubernetes' own build stamps it.
minor=${version#v1.}
ldflags="-X k8s.io/component-base/version.gitVersion=$version -X k8s.io/component-base/version.gitMajor=1"
ldflags+=" -X k8s.io/component-base/version.gitMinor=${minor%%.*} -X k8s.io/component-base/version.gitTreeState=clean"

# build NAME PACKAGE GO-COMMAND... builds into a temporary file, then moves
# it in place: a binary in the cache is always complete.
build() {
	local name=$1 pkg=$2
	shift 2
	[[ -x $dir/$name ]] && return 0
	[[ " ${want[*]} " == *" $name "* ]] || return 0
	local tmp
	tmp=$(mktemp "$dir/.$name.XXXXXX")
	if ! CGO_ENABLED=0 nice -n 15 go "$@" -trimpath -ldflags "$ldflags" -o "$tmp" "$pkg" >&2; then
		rm -f "$tmp"
		return 1
	fi
	mv "$tmp" "$dir/$name"
}

want=("$@")
[[ ${#want[@]} -gt 0 ]] || want=(e2e_node.test kubelet agnhost ginkgo)
known=" e2e_node.test kubelet agnhost ginkgo kube-apiserver kube-controller-manager kube-scheduler kube-proxy kubectl "
for w in "${want[@]}"; do
	[[ $known == *" $w "* ]] || { echo "build.sh: unknown binary $w (known:$known)" >&2; exit 2; }
done
build e2e_node.test k8s.io/kubernetes/test/e2e_node test -c
build kubelet k8s.io/kubernetes/cmd/kubelet build
build agnhost k8s.io/kubernetes/test/images/agnhost build
for cmd in kube-apiserver kube-controller-manager kube-scheduler kube-proxy kubectl; do
	build "$cmd" "k8s.io/kubernetes/cmd/$cmd" build
done
# The ginkgo CLI runs the suite in parallel processes: the version of the
# ginkgo library Kubernetes pins (go.mod), whose module graph has its packages.
build ginkgo github.com/onsi/ginkgo/v2/ginkgo build
# The agnhost image serves HTTPS with the porter's test certificate.
src=$(go list -m -f '{{.Dir}}' k8s.io/kubernetes)/test/images/agnhost/porter
for f in localhost.crt localhost.key; do
	[[ -f $dir/$f ]] || install -m 0644 "$src/$f" "$dir/$f"
done
echo "$dir"
