#!/usr/bin/env bash
# e2e/cluster.sh up|down — a single-node Kubernetes cluster on this machine, for the e2e test.
#
#   up    etcd, kube-apiserver, kube-controller-manager, kube-scheduler (127.0.0.1), containerd +
#         runc + CNI bridge $BRIDGE ($NET.0/24), kubelet, kube-proxy (iptables), CoreDNS serving
#         cluster.local on the bridge gateway; imports the pause image. Writes $RUN/admin.kubeconfig.
#   down  stops exactly the processes whose PIDs are in $RUN/pids, removes the containers, mounts,
#         bridge, veths, iptables chains and cgroups the cluster made, and restores the sysctls it
#         changed. Idempotent; safe after a failed or partial `up`.
#
# Needs root, Linux, the Debian packages in NEED_PKGS and the binaries built by e2e/tools/build-*.sh.
set -euo pipefail

RUN=${E2E_RUN:-/var/tmp/keda-demo-e2e}
CACHE=${E2E_CACHE:-/var/cache/keda-demo-e2e}
K8S_BIN=${K8S_BIN:-}         # up: dir of kube-apiserver etc. (down uses its kube-proxy --cleanup)
COREDNS_BIN=${COREDNS_BIN:-} # up: the coredns binary
PAUSE_TAR=${PAUSE_TAR:-}     # up: the pause image (OCI layout tar)
BRIDGE=${E2E_BRIDGE:-kdemo0}
NET=${E2E_NET:-10.89.0}           # pod network $NET.0/24, gateway (the host) $NET.1
SVC_CIDR=10.96.0.0/24             # Service ClusterIPs (kube-proxy)
APIPORT=${E2E_APIPORT:-16443} ETCDPORT=${E2E_ETCDPORT:-12379} PEERPORT=${E2E_PEERPORT:-12380}
NODE=e2e-node
# paths outside $RUN that containerd 1.6 / kubelet / libcni use whatever their config says;
# `down` removes those that did not exist before `up`
HOST_PATHS="/run/containerd /var/lib/cni /var/lib/kubelet /var/log/pods /var/log/containers"
SYSCTLS="net.ipv4.ip_forward vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops kernel.keys.root_maxkeys kernel.keys.root_maxbytes net.ipv4.conf.all.route_localnet net.bridge.bridge-nf-call-iptables"

log() { echo "[cluster $(date +%T.%3N)] $*" >&2; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN{printf "%.2f", b-a}'; }

start() { # name cmd... : own session, stdio to $RUN/logs/name.log, PID to $RUN/pids/name.pid
  local name=$1; shift
  setsid "$@" >"$RUN/logs/$name.log" 2>&1 </dev/null &
  echo $! >"$RUN/pids/$name.pid"
}
alive() { kill -0 "$(cat "$RUN/pids/$1.pid")" 2>/dev/null; }
waitfor() { # name timeout-seconds command... : poll until command succeeds; fail if the process died
  local name=$1 t=$2; shift 2
  local end=$(( $(date +%s) + t ))
  until "$@" >/dev/null 2>&1; do
    alive "$name" || { log "$name died:"; tail -30 "$RUN/logs/$name.log" >&2; return 1; }
    [ "$(date +%s)" -lt "$end" ] || { log "$name not ready after ${t}s"; tail -30 "$RUN/logs/$name.log" >&2; return 1; }
    sleep 0.1
  done
}

pki() {
  local d=$RUN/pki
  [ -s "$d/admin.crt" ] && return 0
  mkdir -p "$d"; (
    cd "$d"
    openssl genrsa -out ca.key 2048 2>/dev/null
    openssl req -x509 -new -nodes -key ca.key -subj "/CN=keda-demo-e2e-ca" -days 30 -out ca.crt
    printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:127.0.0.1,IP:10.96.0.1\n' >server.ext
    printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n' >client.ext
    openssl req -new -newkey rsa:2048 -nodes -keyout apiserver.key -subj "/CN=kube-apiserver" -out a.csr 2>/dev/null
    openssl x509 -req -in a.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 -extfile server.ext -out apiserver.crt 2>/dev/null
    openssl req -new -newkey rsa:2048 -nodes -keyout admin.key -subj "/O=system:masters/CN=kubernetes-admin" -out c.csr 2>/dev/null
    openssl x509 -req -in c.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 -extfile client.ext -out admin.crt 2>/dev/null
    openssl genrsa -out sa.key 2048 2>/dev/null
    openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
    rm -f ./*.csr
  )
}

kubeconfig() {
  cat >"$RUN/admin.kubeconfig" <<K
apiVersion: v1
kind: Config
clusters:
- name: e2e
  cluster:
    server: https://127.0.0.1:$APIPORT
    certificate-authority-data: $(base64 -w0 "$RUN/pki/ca.crt")
users:
- name: admin
  user:
    client-certificate-data: $(base64 -w0 "$RUN/pki/admin.crt")
    client-key-data: $(base64 -w0 "$RUN/pki/admin.key")
contexts:
- name: e2e
  context: {cluster: e2e, user: admin}
current-context: e2e
K
  chmod 600 "$RUN/admin.kubeconfig"
}

containerd_config() {
  containerd config default | sed \
    -e "s#^root = .*#root = \"$RUN/containerd/root\"#" \
    -e "s#^state = .*#state = \"$RUN/containerd/state\"#" \
    -e "s#address = \"/run/containerd/containerd.sock\"#address = \"$RUN/containerd/containerd.sock\"#" \
    -e "s#bin_dir = \"/opt/cni/bin\"#bin_dir = \"/usr/lib/cni\"#" \
    -e "s#conf_dir = \"/etc/cni/net.d\"#conf_dir = \"$RUN/cni/net.d\"#" \
    -e "s#sandbox_image = \".*\"#sandbox_image = \"registry.k8s.io/pause:3.10\"#" \
    -e "s#restrict_oom_score_adj = false#restrict_oom_score_adj = true#" \
    -e "s#netns_mounts_under_state_dir = false#netns_mounts_under_state_dir = true#" \
  | awk -v root="$RUN/containerd/state/runc" '/runtimes.runc.options\]/{o=1} o&&/^ *Root = ""/{sub(/Root = ""/,"Root = \"" root "\"");o=0} {print}' \
  >"$RUN/containerd/config.toml"
  # The test's containerd must not meet another one's state; fail early if the edits did not apply.
  grep -q "restrict_oom_score_adj = true" "$RUN/containerd/config.toml"
  grep -q "address = \"$RUN/containerd/containerd.sock\"" "$RUN/containerd/config.toml"
  cat >"$RUN/cni/net.d/10-kdemo.conflist" <<J
{
  "cniVersion": "1.0.0",
  "name": "kdemo",
  "plugins": [
    {"type": "bridge", "bridge": "$BRIDGE", "isGateway": true, "ipMasq": true, "hairpinMode": true,
     "ipam": {"type": "host-local", "dataDir": "$RUN/cni/ipam",
              "ranges": [[{"subnet": "$NET.0/24", "gateway": "$NET.1"}]],
              "routes": [{"dst": "0.0.0.0/0"}]}},
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
J
}

up() {
  local T=$(now) t
  : "${K8S_BIN:?K8S_BIN must name the dir of kube-apiserver etc.}" "${COREDNS_BIN:?COREDNS_BIN must name the coredns binary}" "${PAUSE_TAR:?PAUSE_TAR must name the pause image tar}"
  if ls "$RUN"/pids/*.pid >/dev/null 2>&1; then log "$RUN/pids is not empty: run '$0 down' first"; exit 1; fi
  mkdir -p "$RUN"/{pids,logs,containerd,cni/net.d,cni/ipam,kubelet,coredns}
  for s in $SYSCTLS; do echo "$s $(sysctl -n "$s")"; done >"$RUN/sysctls.orig"
  for p in $HOST_PATHS; do [ -e "$p" ] && echo "$p"; done >"$RUN/host-paths.before" || true
  nft list tables >"$RUN/nft-tables.before" 2>/dev/null || true
  pki; kubeconfig
  local KC=$RUN/admin.kubeconfig CURL=(curl -sf --cacert "$RUN/pki/ca.crt" --cert "$RUN/pki/admin.crt" --key "$RUN/pki/admin.key")

  # --- network: the bridge first, so host services (CoreDNS, FerretDB) can bind its gateway address
  ip link show "$BRIDGE" >/dev/null 2>&1 || { ip link add "$BRIDGE" type bridge; echo "$BRIDGE" >"$RUN/bridge.created"; }
  ip addr show dev "$BRIDGE" | grep -q "inet $NET.1/24" || ip addr add "$NET.1/24" dev "$BRIDGE"
  ip link set "$BRIDGE" up
  sysctl -qw net.ipv4.ip_forward=1

  # --- etcd (Debian etcd-server)
  t=$(now)
  start etcd etcd --name=e2e --data-dir="$RUN/etcd-data" \
    --listen-client-urls="http://127.0.0.1:$ETCDPORT" --advertise-client-urls="http://127.0.0.1:$ETCDPORT" \
    --listen-peer-urls="http://127.0.0.1:$PEERPORT" --initial-advertise-peer-urls="http://127.0.0.1:$PEERPORT" \
    --initial-cluster="e2e=http://127.0.0.1:$PEERPORT" --listen-metrics-urls="" \
    --quota-backend-bytes=2147483648 --unsafe-no-fsync=true --log-level=warn
  waitfor etcd 30 curl -sf "http://127.0.0.1:$ETCDPORT/health"
  log "etcd healthy in $(since "$t")s"

  # --- kube-apiserver
  t=$(now)
  start kube-apiserver "$K8S_BIN/kube-apiserver" --etcd-servers="http://127.0.0.1:$ETCDPORT" \
    --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$APIPORT" \
    --cert-dir="$RUN/apiserver-certs" --tls-cert-file="$RUN/pki/apiserver.crt" --tls-private-key-file="$RUN/pki/apiserver.key" \
    --client-ca-file="$RUN/pki/ca.crt" \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$RUN/pki/sa.pub" --service-account-signing-key-file="$RUN/pki/sa.key" \
    --api-audiences=https://kubernetes.default.svc.cluster.local \
    --service-cluster-ip-range="$SVC_CIDR" --authorization-mode=Node,RBAC --allow-privileged=true \
    --endpoint-reconciler-type=none --profiling=false \
    --kubelet-client-certificate="$RUN/pki/admin.crt" --kubelet-client-key="$RUN/pki/admin.key" \
    --kubelet-preferred-address-types=InternalIP
  waitfor kube-apiserver 90 bash -c "[ \"\$(${CURL[*]} https://127.0.0.1:$APIPORT/readyz)\" = ok ]"
  log "kube-apiserver ready in $(since "$t")s"

  # --- kube-controller-manager, kube-scheduler
  t=$(now)
  start kube-controller-manager "$K8S_BIN/kube-controller-manager" --kubeconfig="$KC" \
    --authentication-kubeconfig="$KC" --authorization-kubeconfig="$KC" \
    --bind-address=127.0.0.1 --secure-port=0 --leader-elect=false \
    --service-account-private-key-file="$RUN/pki/sa.key" --root-ca-file="$RUN/pki/ca.crt" \
    --cluster-signing-cert-file="$RUN/pki/ca.crt" --cluster-signing-key-file="$RUN/pki/ca.key" \
    --use-service-account-credentials=false --service-cluster-ip-range="$SVC_CIDR" \
    --allocate-node-cidrs=false --profiling=false
  start kube-scheduler "$K8S_BIN/kube-scheduler" --kubeconfig="$KC" \
    --authentication-kubeconfig="$KC" --authorization-kubeconfig="$KC" \
    --bind-address=127.0.0.1 --secure-port=0 --leader-elect=false --profiling=false
  waitfor kube-controller-manager 60 "${CURL[@]}" "https://127.0.0.1:$APIPORT/api/v1/namespaces/default/serviceaccounts/default"
  log "kube-controller-manager ready in $(since "$t")s"

  # --- containerd
  t=$(now)
  containerd_config
  start containerd containerd --config "$RUN/containerd/config.toml"
  waitfor containerd 30 test -S "$RUN/containerd/containerd.sock"
  ctr --address "$RUN/containerd/containerd.sock" -n k8s.io images import "$PAUSE_TAR" >/dev/null
  log "containerd ready, pause imported in $(since "$t")s"

  # --- CoreDNS on the bridge gateway: serves cluster.local from the API, refuses everything else
  cat >"$RUN/coredns/Corefile" <<C
cluster.local:53 in-addr.arpa:53 {
    bind $NET.1
    errors
    ready 127.0.0.1:18181
    health 127.0.0.1:18080
    kubernetes cluster.local in-addr.arpa {
        kubeconfig $KC e2e
        pods insecure
    }
    cache 5
}
C
  t=$(now)
  start coredns "$COREDNS_BIN" -conf "$RUN/coredns/Corefile"
  waitfor coredns 60 curl -sf http://127.0.0.1:18181/ready
  log "coredns ready in $(since "$t")s"

  # --- kubelet
  cat >"$RUN/kubelet/config.yaml" <<Y
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NET.1
healthzBindAddress: 127.0.0.1
healthzPort: 10248
port: 10250
readOnlyPort: 0
authentication: {anonymous: {enabled: false}, webhook: {enabled: false}, x509: {clientCAFile: $RUN/pki/ca.crt}}
authorization: {mode: AlwaysAllow}
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: true
oomScoreAdj: 0
containerRuntimeEndpoint: unix://$RUN/containerd/containerd.sock
clusterDomain: cluster.local
clusterDNS: [$NET.1]
resolvConf: ""
cgroupsPerQOS: true
enforceNodeAllocatable: [pods]
serializeImagePulls: false
imageGCHighThresholdPercent: 100
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%"}
podLogsDir: $RUN/pod-logs
Y
  t=$(now)
  start kubelet "$K8S_BIN/kubelet" --config="$RUN/kubelet/config.yaml" --kubeconfig="$KC" \
    --root-dir="$RUN/kubelet/root" --cert-dir="$RUN/kubelet/pki" --hostname-override="$NODE" --node-ip="$NET.1" --v=1
  waitfor kubelet 90 bash -c "${CURL[*]} https://127.0.0.1:$APIPORT/api/v1/nodes/$NODE | tr -d ' \n' | grep -q '\"type\":\"Ready\",\"status\":\"True\"'"
  log "kubelet: node $NODE Ready in $(since "$t")s"

  # --- kube-proxy (iptables mode; leaves conntrack sysctls alone)
  t=$(now)
  start kube-proxy "$K8S_BIN/kube-proxy" --kubeconfig="$KC" --hostname-override="$NODE" \
    --proxy-mode=iptables --cluster-cidr="$NET.0/24" --iptables-localhost-nodeports=false \
    --healthz-bind-address=127.0.0.1:10256 --metrics-bind-address=127.0.0.1:10249 \
    --conntrack-max-per-core=0 --conntrack-tcp-timeout-established=0 --conntrack-tcp-timeout-close-wait=0 \
    --oom-score-adj=0 --v=1
  waitfor kube-proxy 60 curl -sf http://127.0.0.1:10256/healthz
  log "kube-proxy healthy in $(since "$t")s"
  log "cluster up in $(since "$T")s; KUBECONFIG=$KC"
}

stop_pids() { # SIGTERM everything recorded, SIGKILL after 20 s; a PID is only signalled if its cmdline still names the binary
  declare -A live=()
  local f n pid
  for f in "$RUN"/pids/*.pid; do
    [ -e "$f" ] || continue
    n=$(basename "$f" .pid); pid=$(cat "$f")
    if kill -0 "$pid" 2>/dev/null && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "${n%%@*}"; then
      kill -TERM "$pid"; live[$n]=$pid
    else rm -f "$f"; fi
  done
  for _ in $(seq 1 200); do
    for n in "${!live[@]}"; do kill -0 "${live[$n]}" 2>/dev/null || { rm -f "$RUN/pids/$n.pid"; unset "live[$n]"; }; done
    [ ${#live[@]} -eq 0 ] && break; sleep 0.1
  done
  for n in "${!live[@]}"; do log "$n (pid ${live[$n]}) ignored SIGTERM; SIGKILL"; kill -KILL "${live[$n]}" 2>/dev/null; rm -f "$RUN/pids/$n.pid"; done
}

down() {
  set +e # best effort: every step runs even if an earlier one finds nothing to do
  [ -d "$RUN" ] || return 0
  local sock=$RUN/containerd/containerd.sock ctr=(ctr --address "$RUN/containerd/containerd.sock" -n k8s.io)
  # kubelet first so it does not restart what we remove; then the pods' containers, then the rest
  for n in kubelet kube-proxy; do
    [ -s "$RUN/pids/$n.pid" ] || continue
    pid=$(cat "$RUN/pids/$n.pid"); kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null; rm -f "$RUN/pids/$n.pid"
  done
  if [ -S "$sock" ] && [ -s "$RUN/pids/containerd.pid" ] && kill -0 "$(cat "$RUN/pids/containerd.pid")" 2>/dev/null; then
    for tk in $("${ctr[@]}" tasks ls -q 2>/dev/null); do "${ctr[@]}" tasks kill -s SIGKILL "$tk" >/dev/null 2>&1; done
    sleep 1
    for tk in $("${ctr[@]}" tasks ls -q 2>/dev/null); do "${ctr[@]}" tasks rm -f "$tk" >/dev/null 2>&1; done
    for c in $("${ctr[@]}" containers ls -q 2>/dev/null); do "${ctr[@]}" containers rm "$c" >/dev/null 2>&1; done
  fi
  stop_pids
  # kube-proxy's own cleanup of its iptables rules
  [ -x "${K8S_BIN:-}/kube-proxy" ] && "$K8S_BIN/kube-proxy" --cleanup --proxy-mode=iptables >/dev/null 2>&1 || true
  # mounts under $RUN (kubelet's rshared root, netns pins, overlay rootfs), deepest first
  findmnt -rn -o TARGET | grep "^$RUN/" | sort -r | while read -r m; do umount "$m" 2>/dev/null || umount -l "$m"; done
  # iptables: CNI (bridge ipMasq, portmap) and kubelet chains
  local ipt ch
  for ipt in iptables ip6tables; do
    $ipt -t nat -S POSTROUTING 2>/dev/null | grep -E 'CNI-|kdemo' | sed 's/^-A/-D/' | while read -r r; do eval "$ipt -t nat $r"; done
    for t in nat filter; do
      $ipt -t $t -S 2>/dev/null | grep -E '^-A [A-Z]+ .*-j CNI-' | sed 's/^-A/-D/' | while read -r r; do eval "$ipt -t $t $r"; done
      for ch in $($ipt -t $t -S 2>/dev/null | awk '/^-N CNI-/{print $2}'); do $ipt -t $t -F "$ch"; done
      for ch in $($ipt -t $t -S 2>/dev/null | awk '/^-N CNI-/{print $2}'); do $ipt -t $t -X "$ch"; done
    done
    $ipt -D INPUT -j KUBE-FIREWALL 2>/dev/null; $ipt -D OUTPUT -j KUBE-FIREWALL 2>/dev/null
    $ipt -F KUBE-FIREWALL 2>/dev/null; $ipt -X KUBE-FIREWALL 2>/dev/null
    for t in filter nat mangle; do $ipt -t $t -F KUBE-KUBELET-CANARY 2>/dev/null; $ipt -t $t -X KUBE-KUBELET-CANARY 2>/dev/null; done
    $ipt -t mangle -F KUBE-IPTABLES-HINT 2>/dev/null; $ipt -t mangle -X KUBE-IPTABLES-HINT 2>/dev/null
    for t in filter nat mangle; do $ipt -t $t -F KUBE-PROXY-CANARY 2>/dev/null; $ipt -t $t -X KUBE-PROXY-CANARY 2>/dev/null; done
  done
  # iptables-nft leaves empty tables behind: drop those that did not exist before `up`, if empty
  if [ -f "$RUN/nft-tables.before" ] && command -v nft >/dev/null; then
    nft list tables 2>/dev/null | while read -r _ fam name; do
      grep -qx "table $fam $name" "$RUN/nft-tables.before" && continue
      nft list table "$fam" "$name" | grep -qE '^\s+(ip|ip6|meta|counter|jump|goto|tcp|udp|iifname|oifname|ct|mark|fib|mark) ' || nft delete table "$fam" "$name"
    done
    rm -f "$RUN/nft-tables.before"
  fi
  # veths of our pods (their peer is on our bridge), then the bridge
  if ip link show "$BRIDGE" >/dev/null 2>&1; then
    for v in $(ip -o link show master "$BRIDGE" 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1); do ip link del "$v" 2>/dev/null; done
    ip link del "$BRIDGE"
  fi
  rm -f "$RUN/bridge.created"
  # sysctls back to what they were before `up`
  if [ -s "$RUN/sysctls.orig" ]; then
    while read -r k v; do sysctl -qw "$k=$v" 2>/dev/null; done <"$RUN/sysctls.orig"
    rm -f "$RUN/sysctls.orig"
  fi
  # cgroups made for the pods (kubelet: kubepods/..., containerd: k8s.io/...)
  for s in /sys/fs/cgroup/*/; do for top in kubepods k8s.io; do
    [ -d "$s$top" ] && find "$s$top" -depth -type d -exec rmdir {} \; 2>/dev/null
  done; done
  if [ -f "$RUN/host-paths.before" ]; then
    for p in $HOST_PATHS; do grep -qx "$p" "$RUN/host-paths.before" || rm -rf "$p"; done
    rm -f "$RUN/host-paths.before"
  fi
  # state of this run (keep logs for the CI artifact)
  rm -rf "$RUN/etcd-data" "$RUN/containerd" "$RUN/kubelet" "$RUN/cni" "$RUN/pod-logs" "$RUN/apiserver-certs"
  log "down: done"
}

case "${1:-}" in
  up) trap 'rc=$?; [ $rc -eq 0 ] || { log "up failed (rc=$rc): tearing down"; down; }' EXIT; up ;;
  down) down; exit 0 ;;
  *) echo "usage: $0 up|down" >&2; exit 2 ;;
esac
