#!/usr/bin/env bash
# Builds the pinned Kubernetes binaries into $OUT (default /var/cache/keda-demo/kubernetes-v$KV/bin).
# usage: build-kubernetes.sh [cmd...]   (default: the five node binaries and kubectl)
set -euo pipefail
here=$(cd "$(dirname "$0")/kubernetes" && pwd)
KV=$(awk '($1=="k8s.io/kubernetes" || ($1=="require" && $2=="k8s.io/kubernetes")) {v=($1=="require")?$3:$2; sub(/^v/,"",v); print v; exit}' "$here/go.mod")
MIN=$(echo "$KV" | cut -d. -f2)
OUT=${OUT:-/var/cache/keda-demo/kubernetes-v$KV/bin}
cmds=("$@"); [ ${#cmds[@]} -gt 0 ] || cmds=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl)
LD="-s -w"
for p in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
  LD="$LD -X '$p.gitVersion=v$KV' -X '$p.gitMajor=1' -X '$p.gitMinor=$MIN' -X '$p.gitTreeState=clean' -X '$p.buildDate=1970-01-01T00:00:00Z'"
done
mkdir -p "$OUT"; cd "$here"
pkgs=()
for c in "${cmds[@]}"; do [ -x "$OUT/$c" ] || pkgs+=("k8s.io/kubernetes/cmd/$c"); done
[ ${#pkgs[@]} -gt 0 ] || exit 0
# One go build for all of them: they share most packages, and the links run in parallel.
start=$(date +%s); tmp="$OUT/.tmp.$$"; mkdir -p "$tmp"
GOWORK=off CGO_ENABLED=0 go build -trimpath -tags=selinux,notest,grpcnotrace -ldflags="$LD" -o "$tmp/" "${pkgs[@]}"
mv "$tmp"/* "$OUT/"; rmdir "$tmp"
echo "built ${pkgs[*]##*/} v$KV in $(( $(date +%s) - start ))s (load $(cut -d' ' -f1-3 /proc/loadavg))" >&2
