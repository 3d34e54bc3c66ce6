#!/usr/bin/env bash
# tests/e2e/run.sh — what `go tool task e2e` runs (Linux, root): `task up` + the scenario + `task down`,
# on a cluster of its own (state and logs under $E2E_RUN, purged at the end), and a check that
# `down` left nothing behind that `up` made. Refuses at once when a cluster already runs: it never
# tears down a cluster it did not start.
set -euo pipefail
cd "$(dirname "$0")/../.."
. cluster/env.sh # the old KDEMO_* names, read for one release
export E2E_RUN=${E2E_RUN:-/var/tmp/keda-demo-e2e}
[ "$(id -u)" = 0 ] || { echo "e2e: needs root (containerd, kubelet, iptables, bridge)" >&2; exit 1; }
if cluster/cluster.sh status || KEDA_DEMO_RUN=$E2E_RUN cluster/cluster.sh status; then
  echo "e2e: a keda-demo cluster is already running on this machine: run 'go tool task down' first" >&2
  exit 1
fi
T0=$(date +%s)
stamp() { echo "e2e: $* (+$(( $(date +%s) - T0 ))s, load $(cut -d' ' -f1-3 /proc/loadavg))" >&2; }

# The cluster of this run: its own state (no KEDA CRDs, no release, no data from a user's `up`).
export KEDA_DEMO_RUN=$E2E_RUN KEDA_DEMO_STATE=$E2E_RUN/state
rm -rf "$KEDA_DEMO_STATE"
mkdir -p "$E2E_RUN"

# What exists before `up`, to compare with what is left after `down`. Processes: every program
# `up` starts names this run's folders, the cache or its own ports on its command line, or runs
# in a pod (the pause image, the app and processor images).
# The broker cluster of the faults (KEDA_DEMO_BROKER=cluster): haproxy, nodes kdemo-57xx, their epmd.
PROCS="$E2E_RUN|${KEDA_DEMO_CACHE:-/var/cache/keda-demo}|TCP-LISTEN:18000|-port 15682|-port 15700|haproxy -f|kdemo-57[0-9]{2}@|^ *[0-9]+ /pause|/usr/local/bin/(app|processor)"
snapshot() { # dir (a pipe whose grep finds nothing is an empty list, not an error)
  mkdir -p "$1"
  local -; set +o pipefail
  ps -e -o pid=,args= | grep -E -- "$PROCS" | grep -v -E -- '(grep|ps) |<defunct>' | sort >"$1/processes"
  findmnt -rn -o TARGET | sort >"$1/mounts"
  ip -o link show | awk -F': ' '{print $2}' | cut -d@ -f1 | sort >"$1/links"
  { iptables-save 2>/dev/null; ip6tables-save 2>/dev/null; } | grep -E '^[:*]' | awk '{print $1}' | sort -u >"$1/iptables-chains"
  find /sys/fs/cgroup -mindepth 1 -maxdepth 3 -type d 2>/dev/null | sort >"$1/cgroups"
}
leaks() { # before-dir after-dir: prints what is in after and not in before
  local f rc=0
  for f in processes mounts links iptables-chains cgroups; do
    local extra; extra=$(comm -13 "$1/$f" "$2/$f")
    [ -z "$extra" ] || { echo "e2e: left behind by up/down ($f):"; echo "$extra" | sed 's/^/    /'; rc=1; }
  done >&2
  return $rc
}
snapshot "$E2E_RUN/before"
stamp "snapshot before up: $(wc -l <"$E2E_RUN/before/processes") processes, $(wc -l <"$E2E_RUN/before/links") links"

cleanup() {
  rc=$?
  PURGE=1 cluster/cluster.sh down || true
  snapshot "$E2E_RUN/after"
  if leaks "$E2E_RUN/before" "$E2E_RUN/after"; then
    stamp "torn down, nothing left behind (compared processes, mounts, links, iptables chains, cgroups)"
  else
    rc=1
  fi
  stamp "done (rc=$rc)"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Stage base: node, control plane and the host services, but neither KEDA nor the release: the
# scenario's first step installs into a cluster without KEDA; its second step runs the full `up`.
UP_STAGE=base cluster/cluster.sh up
stamp "cluster up (stage base)"
go test -tags e2e -count=1 -timeout 45m -v ./tests/e2e/ ${E2E_TEST_ARGS:-}
stamp "scenario passed"
