#!/usr/bin/env bash
# Builds the main package of cluster/tools/<tool> (a pinned module of its own) into $OUT/<tool>.
# usage: build-main.sh <tool> <module whose version keys the cache>   (e.g. coredns github.com/coredns/coredns)
set -euo pipefail
tool=$1 key=$2
here=$(cd "$(dirname "$0")/$tool" && pwd)
V=$(awk -v m="$key" '($1==m || ($1=="require" && $2==m)) {v=($1=="require")?$3:$2; sub(/^v/,"",v); print v; exit}' "$here/go.mod")
OUT=${OUT:-/var/cache/keda-demo/$tool-v$V/bin}
[ -x "$OUT/$tool" ] && exit 0
mkdir -p "$OUT"; cd "$here"; start=$(date +%s)
GOWORK=off CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$OUT/$tool.tmp" .
mv "$OUT/$tool.tmp" "$OUT/$tool"
echo "built $tool v$V in $(( $(date +%s) - start ))s (load $(cut -d' ' -f1-3 /proc/loadavg))" >&2
