#!/usr/bin/env bash
# Builds the pinned KEDA operator into $OUT and copies its CRDs from the module cache.
set -euo pipefail
here=$(cd "$(dirname "$0")/keda" && pwd)
KV=$(awk '$1=="github.com/kedacore/keda/v2" {sub(/^v/,"",$2); print $2; exit}' "$here/go.mod")
OUT=${OUT:-/var/cache/keda-demo/keda-v$KV}
mkdir -p "$OUT/bin" "$OUT/crds"
cd "$here"
if [ ! -x "$OUT/bin/keda-operator" ]; then
  start=$(date +%s)
  GOWORK=off CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X=github.com/kedacore/keda/v2/version.Version=$KV" \
    -o "$OUT/bin/keda-operator.tmp" github.com/kedacore/keda/v2/cmd/operator
  mv "$OUT/bin/keda-operator.tmp" "$OUT/bin/keda-operator"
  echo "built keda-operator v$KV in $(( $(date +%s) - start ))s (load $(cut -d' ' -f1-3 /proc/loadavg))" >&2
fi
dir=$(GOWORK=off go list -m -f '{{.Dir}}' github.com/kedacore/keda/v2)
cp -f "$dir"/config/crd/bases/*.yaml "$OUT/crds/"
chmod 644 "$OUT"/crds/*.yaml
