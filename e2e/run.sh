#!/usr/bin/env bash
# e2e/run.sh — what `go tool task e2e` runs (Linux, root): installs the Debian packages the node
# needs, builds what is missing from the version-keyed cache, builds the app and processor images
# from this tree, brings the single-node cluster up (e2e/cluster.sh), runs the scenario
# (go test -tags e2e ./e2e/) and tears everything down again — also when a step fails.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
export E2E_CACHE=${E2E_CACHE:-/var/cache/keda-demo-e2e}
export E2E_RUN=${E2E_RUN:-/var/tmp/keda-demo-e2e}
[ "$(id -u)" = 0 ] || { echo "e2e: needs root (containerd, kubelet, iptables, bridge)" >&2; exit 1; }
T0=$(date +%s)
stamp() { echo "e2e: $* (+$(( $(date +%s) - T0 ))s, load $(cut -d' ' -f1-3 /proc/loadavg))" >&2; }

# --- Debian packages of the node
NEED_PKGS="containerd runc containernetworking-plugins etcd-server iptables nftables conntrack openssl curl"
missing=()
for p in $NEED_PKGS; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  [ -e /usr/sbin/policy-rc.d ] || { printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; }
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  stamp "installed ${missing[*]}"
fi

# --- pinned components, built once per version into $E2E_CACHE
modver() { # module go.mod -> version of module required there, without the v
  awk -v m="$1" '($1==m || ($1=="require" && $2==m)) {v=($1=="require")?$3:$2; sub(/^v/,"",v); print v; exit}' "$2"
}
KV=$(modver k8s.io/kubernetes e2e/tools/kubernetes/go.mod)
KEDAV=$(modver github.com/kedacore/keda/v2 e2e/tools/keda/go.mod)
DNSV=$(modver github.com/coredns/coredns e2e/tools/coredns/go.mod)
export K8S_BIN=$E2E_CACHE/kubernetes-v$KV/bin
export COREDNS_BIN=$E2E_CACHE/coredns-v$DNSV/bin/coredns
export KEDA_DIR=$E2E_CACHE/keda-v$KEDAV
export PAUSE_TAR=$E2E_CACHE/pause-3.10/pause.tar
OUT=$K8S_BIN e2e/tools/build-kubernetes.sh
OUT=$KEDA_DIR e2e/tools/build-keda.sh
OUT=$(dirname "$COREDNS_BIN") e2e/tools/build-coredns.sh
if [ ! -s "$PAUSE_TAR" ]; then
  tmp=$(mktemp -d); mkdir -p "$(dirname "$PAUSE_TAR")"
  CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$tmp/pause" ./e2e/pause
  go run ./imagebuild/cmd/imagebuild single --ref registry.k8s.io/pause:3.10 --bin "$tmp/pause" --out "$PAUSE_TAR"
  rm -rf "$tmp"
fi
stamp "components ready (kubernetes v$KV, keda v$KEDAV, coredns v$DNSV)"

# --- the app and processor images of this tree (OCI layout, one tar)
export E2E_IMAGES=$E2E_RUN/images.tar
mkdir -p "$E2E_RUN"; rm -rf "$E2E_RUN/oci" "$E2E_IMAGES"
go run ./imagebuild/cmd/imagebuild --backend go --oci-layout "$E2E_RUN/oci" --platforms linux/amd64 >/dev/null
tar -C "$E2E_RUN/oci" -cf "$E2E_IMAGES" .
stamp "images built"

# --- cluster up, scenario, always down
cleanup() { rc=$?; e2e/cluster.sh down || true; stamp "torn down (rc=$rc)"; exit $rc; }
trap cleanup EXIT
trap 'exit 130' INT TERM
e2e/cluster.sh up
stamp "cluster up"
export KUBECONFIG=$E2E_RUN/admin.kubeconfig
go test -tags e2e -count=1 -timeout 45m -v ./e2e/ ${E2E_TEST_ARGS:-}
stamp "scenario passed"
