#!/usr/bin/env bash
# Builds the minimal CoreDNS (e2e/tools/coredns) into $OUT.
set -euo pipefail
here=$(cd "$(dirname "$0")/coredns" && pwd)
V=$(awk '($1=="github.com/coredns/coredns" || ($1=="require" && $2=="github.com/coredns/coredns")) {v=($1=="require")?$3:$2; sub(/^v/,"",v); print v; exit}' "$here/go.mod")
OUT=${OUT:-/var/cache/keda-demo-e2e/coredns-v$V/bin}
[ -x "$OUT/coredns" ] && exit 0
mkdir -p "$OUT"; cd "$here"; start=$(date +%s)
GOWORK=off CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$OUT/coredns.tmp" .
mv "$OUT/coredns.tmp" "$OUT/coredns"
echo "built coredns v$V in $(( $(date +%s) - start ))s (load $(cut -d' ' -f1-3 /proc/loadavg))" >&2
