#!/usr/bin/env bash
# cluster/cluster.sh up|down|status — the whole demo on this machine: a single-node Kubernetes
# cluster built from source, the real KEDA operator, a private RabbitMQ node and a MongoDB-wire
# server (FerretDB) on the host, and the chart installed with images built from this tree.
# `go tool task up` / `task down` run it, and so does the e2e (tests/e2e/run.sh).
#
#   up      builds what is missing (cached by version in $CACHE), starts what is not running and
#           installs or upgrades the release; prints the app's URL, the kubeconfig and `task down`.
#           Idempotent: a second `up` keeps the cluster and its data and rolls the new images.
#           UP_STAGE=base stops before KEDA and the release (the e2e checks a cluster without KEDA).
#   down    stops exactly the processes whose PIDs are in $RUN/pids, removes the containers, mounts,
#           bridge, veths, iptables chains and cgroups `up` made and restores the sysctls it
#           changed. Safe after a failed or partial `up`. Data in $STATE stays unless PURGE=1.
#   status  exits 0 when a cluster of this script runs (a node process alive, or its bridge exists).
#   kill-component NAME [SIGNAL]   signals one component (default TERM) and waits until it is gone;
#   start-component NAME           starts it again with the command line `up` gave it (recorded in
#   restart NAME [SIGNAL [PAUSE]]  $RUN/cmds) and waits until it answers; restart does both, PAUSE s
#           apart. NAME: etcd kube-apiserver kube-controller-manager kube-scheduler containerd coredns
#           kubelet kube-proxy keda-operator ferretdb rabbitmq (its Erlang VM); with KEDA_DEMO_BROKER=cluster
#           also haproxy and rabbitmq-5701, -5702, -5703 (the cluster's nodes). For fault tests.
#
# Everything listens on 127.0.0.1 or on the cluster's bridge gateway $NET.1 only.
# Needs root and Linux; installs the Debian packages in NEED_PKGS.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/cluster/env.sh"                           # the old KDEMO_* names, read for one release
STATE=${KEDA_DEMO_STATE:-/var/lib/keda-demo}       # kept across down/up: PKI, etcd, RabbitMQ and FerretDB data
RUN=${KEDA_DEMO_RUN:-/var/tmp/keda-demo}           # this run: PIDs, logs, containerd, kubelet (logs stay after down)
CACHE=${KEDA_DEMO_CACHE:-/var/cache/keda-demo}     # built binaries, keyed by version
UP_STAGE=${UP_STAGE:-release}
BRIDGE=${KEDA_DEMO_BRIDGE:-kdemo0}
NET=${KEDA_DEMO_NET:-10.89.0}     # pod network $NET.0/24, gateway (the host) $NET.1
GW=$NET.1
SVC_CIDR=10.96.0.0/24             # Service ClusterIPs (kube-proxy)
APIPORT=16443 ETCDPORT=12379 PEERPORT=12380
RMQ_PORT=5682                     # the private RabbitMQ node (never the machine's broker on 5672)
# KEDA_DEMO_BROKER=cluster: instead, three clustered RabbitMQ nodes (AMQP on 5701-5703, one cookie
# and one epmd on 15700) behind haproxy on 5700, the TCP front a user puts before a cluster
BROKER=${KEDA_DEMO_BROKER:-node}
RMQC_DIR=$STATE/rabbitmq-cluster RMQC_PORTS="5701 5702 5703" RMQC_EPMD=15700 HAPROXY_PORT=5700
MONGO_PORT=27017                  # FerretDB
APP_PORT=${KEDA_DEMO_APP_PORT:-18000} # http://127.0.0.1:$APP_PORT forwards to the app's Service
NAMESPACE=keda-demo RELEASE=keda-demo
RMQ_VHOST=keda-demo RMQ_USER=keda-demo
NODE=kdemo-node
NEED_PKGS="containerd runc containernetworking-plugins etcd-server iptables nftables conntrack openssl curl socat rabbitmq-server"
# paths outside $RUN that containerd 1.6 / kubelet / libcni use whatever their config says;
# `down` removes those that did not exist before `up`
HOST_PATHS="/run/containerd /var/lib/cni /var/lib/kubelet /var/log/pods /var/log/containers"
SYSCTLS="net.ipv4.ip_forward vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops kernel.keys.root_maxkeys kernel.keys.root_maxbytes net.ipv4.conf.all.route_localnet net.bridge.bridge-nf-call-iptables"
KC=$STATE/admin.kubeconfig
case $BROKER in
  node) BROKER_PORT=$RMQ_PORT BROKER_DIR=$STATE/rabbitmq ;;
  cluster) BROKER_PORT=$HAPROXY_PORT BROKER_DIR=$RMQC_DIR/5701 NEED_PKGS="$NEED_PKGS haproxy" ;;
  *) echo "cluster: KEDA_DEMO_BROKER=$BROKER: want node or cluster" >&2; exit 2 ;;
esac
CURL=(curl -sf --max-time 5 --cacert "$STATE/pki/ca.crt" --cert "$STATE/pki/admin.crt" --key "$STATE/pki/admin.key")

T0=$(date +%s.%N)
log() { echo "[cluster $(date +%T.%3N)] $*" >&2; }
phase() { echo "up: $* (+$(since "$T0")s)" >&2; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN{printf "%.2f", b-a}'; }

start() { # name cmd... : own session, stdio to $RUN/logs/name.log, PID to $RUN/pids/name.pid, the
  # command line to $RUN/cmds/name (NUL-separated), which `start-component` runs again
  local name=$1; shift
  mkdir -p "$RUN/cmds"; printf '%s\0' "$@" >"$RUN/cmds/$name"
  setsid "$@" >"$RUN/logs/$name.log" 2>&1 </dev/null &
  echo $! >"$RUN/pids/$name.pid"
}
alive() { [ -s "$RUN/pids/$1.pid" ] && kill -0 "$(cat "$RUN/pids/$1.pid")" 2>/dev/null; }
waitfor() { # name timeout-seconds command... : poll until command succeeds; fail if the process died
  local name=$1 t=$2; shift 2
  local end=$(( $(date +%s) + t ))
  until "$@" >/dev/null 2>&1; do
    alive "$name" || { log "$name died:"; tail -30 "$RUN/logs/$name.log" >&2; return 1; }
    [ "$(date +%s)" -lt "$end" ] || { log "$name not ready after ${t}s"; tail -30 "$RUN/logs/$name.log" >&2; return 1; }
    sleep 0.1
  done
}

healthy() { # name: the component answers as `up` waits for it to
  case $1 in
    etcd) curl -sf --max-time 5 "http://127.0.0.1:$ETCDPORT/health" ;;
    kube-apiserver) [ "$("${CURL[@]}" "https://$GW:$APIPORT/readyz")" = ok ] ;;
    kube-controller-manager) "${CURL[@]}" "https://$GW:$APIPORT/api/v1/namespaces/default/serviceaccounts/default" ;;
    kube-scheduler) true ;; # no port of its own (--secure-port=0): alive is all there is
    containerd) ctr --address "$RUN/containerd/containerd.sock" version ;;
    coredns) curl -sf --max-time 5 http://127.0.0.1:18181/ready ;;
    kubelet) curl -sf --max-time 5 http://127.0.0.1:10248/healthz ;;
    kube-proxy) curl -sf --max-time 5 http://127.0.0.1:10256/healthz ;;
    keda-operator) curl -sf --max-time 5 http://127.0.0.1:18481/readyz ;;
    ferretdb) timeout 5 bash -c "exec 3<>/dev/tcp/$GW/$MONGO_PORT" ;;
    haproxy) timeout 5 bash -c "exec 3<>/dev/tcp/127.0.0.1/$HAPROXY_PORT" ;;
    *) return 1 ;;
  esac
}

pki() {
  local d=$STATE/pki
  # regenerated only when missing, or made for another gateway address
  [ -s "$d/admin.crt" ] && openssl x509 -in "$d/apiserver.crt" -noout -text 2>/dev/null | grep -q "IP Address:$GW" && return 0
  mkdir -p "$d"; (
    cd "$d"
    openssl genrsa -out ca.key 2048 2>/dev/null
    openssl req -x509 -new -nodes -key ca.key -subj "/CN=keda-demo-ca" -days 3650 -out ca.crt
    printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:127.0.0.1,IP:%s,IP:10.96.0.1\n' "$GW" >server.ext
    printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n' >client.ext
    openssl req -new -newkey rsa:2048 -nodes -keyout apiserver.key -subj "/CN=kube-apiserver" -out a.csr 2>/dev/null
    openssl x509 -req -in a.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 -extfile server.ext -out apiserver.crt 2>/dev/null
    openssl req -new -newkey rsa:2048 -nodes -keyout admin.key -subj "/O=system:masters/CN=kubernetes-admin" -out c.csr 2>/dev/null
    openssl x509 -req -in c.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 -extfile client.ext -out admin.crt 2>/dev/null
    openssl genrsa -out sa.key 2048 2>/dev/null
    openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
    rm -f ./*.csr
  )
}

kubeconfig() {
  cat >"$KC.tmp" <<K
apiVersion: v1
kind: Config
clusters:
- name: keda-demo
  cluster:
    server: https://$GW:$APIPORT
    certificate-authority-data: $(base64 -w0 "$STATE/pki/ca.crt")
users:
- name: admin
  user:
    client-certificate-data: $(base64 -w0 "$STATE/pki/admin.crt")
    client-key-data: $(base64 -w0 "$STATE/pki/admin.key")
contexts:
- name: keda-demo
  context: {cluster: keda-demo, user: admin}
current-context: keda-demo
K
  chmod 600 "$KC.tmp"; mv "$KC.tmp" "$KC"
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

node_up() { # the node and control plane (not yet running: checked by the caller)
  local T=$(now) t
  mkdir -p "$RUN"/{pids,logs,containerd,cni/net.d,cni/ipam,kubelet,coredns} "$STATE"
  for s in $SYSCTLS; do echo "$s $(sysctl -n "$s")"; done >"$RUN/sysctls.orig"
  for p in $HOST_PATHS; do [ -e "$p" ] && echo "$p"; done >"$RUN/host-paths.before" || true
  nft list tables >"$RUN/nft-tables.before" 2>/dev/null || true
  pki; kubeconfig

  # --- network: the bridge first, so host services (CoreDNS, FerretDB) can bind its gateway address
  ip link show "$BRIDGE" >/dev/null 2>&1 || { ip link add "$BRIDGE" type bridge; echo "$BRIDGE" >"$RUN/bridge.created"; }
  ip addr show dev "$BRIDGE" | grep -q "inet $NET.1/24" || ip addr add "$NET.1/24" dev "$BRIDGE"
  ip link set "$BRIDGE" up
  sysctl -qw net.ipv4.ip_forward=1

  # --- etcd (Debian etcd-server)
  t=$(now)
  start etcd etcd --name=kdemo --data-dir="$STATE/etcd" \
    --listen-client-urls="http://127.0.0.1:$ETCDPORT" --advertise-client-urls="http://127.0.0.1:$ETCDPORT" \
    --listen-peer-urls="http://127.0.0.1:$PEERPORT" --initial-advertise-peer-urls="http://127.0.0.1:$PEERPORT" \
    --initial-cluster="kdemo=http://127.0.0.1:$PEERPORT" --listen-metrics-urls="" \
    --quota-backend-bytes=2147483648 --unsafe-no-fsync=true --log-level=warn
  waitfor etcd 30 healthy etcd
  log "etcd healthy in $(since "$t")s"

  # --- kube-apiserver
  t=$(now)
  start kube-apiserver "$K8S_BIN/kube-apiserver" --etcd-servers="http://127.0.0.1:$ETCDPORT" \
    --bind-address="$GW" --advertise-address="$GW" --secure-port="$APIPORT" \
    --cert-dir="$RUN/apiserver-certs" --tls-cert-file="$STATE/pki/apiserver.crt" --tls-private-key-file="$STATE/pki/apiserver.key" \
    --client-ca-file="$STATE/pki/ca.crt" \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$STATE/pki/sa.pub" --service-account-signing-key-file="$STATE/pki/sa.key" \
    --api-audiences=https://kubernetes.default.svc.cluster.local \
    --service-cluster-ip-range="$SVC_CIDR" --authorization-mode=Node,RBAC --allow-privileged=true \
    --profiling=false \
    --kubelet-client-certificate="$STATE/pki/admin.crt" --kubelet-client-key="$STATE/pki/admin.key" \
    --kubelet-preferred-address-types=InternalIP
  waitfor kube-apiserver 90 healthy kube-apiserver
  log "kube-apiserver ready in $(since "$t")s"

  # --- kube-controller-manager, kube-scheduler
  t=$(now)
  start kube-controller-manager "$K8S_BIN/kube-controller-manager" --kubeconfig="$KC" \
    --authentication-kubeconfig="$KC" --authorization-kubeconfig="$KC" \
    --bind-address=127.0.0.1 --secure-port=0 --leader-elect=false \
    --service-account-private-key-file="$STATE/pki/sa.key" --root-ca-file="$STATE/pki/ca.crt" \
    --cluster-signing-cert-file="$STATE/pki/ca.crt" --cluster-signing-key-file="$STATE/pki/ca.key" \
    --use-service-account-credentials=false --service-cluster-ip-range="$SVC_CIDR" \
    --allocate-node-cidrs=false --profiling=false
  start kube-scheduler "$K8S_BIN/kube-scheduler" --kubeconfig="$KC" \
    --authentication-kubeconfig="$KC" --authorization-kubeconfig="$KC" \
    --bind-address=127.0.0.1 --secure-port=0 --leader-elect=false --profiling=false
  waitfor kube-controller-manager 60 healthy kube-controller-manager
  log "kube-controller-manager ready in $(since "$t")s"

  # --- containerd
  t=$(now)
  containerd_config
  start containerd containerd --config "$RUN/containerd/config.toml"
  waitfor containerd 30 healthy containerd
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
        kubeconfig $KC keda-demo
        pods insecure
    }
    cache 5
}
C
  t=$(now)
  start coredns "$COREDNS_BIN" -conf "$RUN/coredns/Corefile"
  waitfor coredns 60 healthy coredns
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
authentication: {anonymous: {enabled: false}, webhook: {enabled: false}, x509: {clientCAFile: $STATE/pki/ca.crt}}
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
  waitfor kubelet 90 bash -c "${CURL[*]} https://$GW:$APIPORT/api/v1/nodes/$NODE | tr -d ' \n' | grep -q '\"type\":\"Ready\",\"status\":\"True\"'"
  log "kubelet: node $NODE Ready in $(since "$t")s"

  # --- kube-proxy (iptables mode; leaves conntrack sysctls alone)
  t=$(now)
  start kube-proxy "$K8S_BIN/kube-proxy" --kubeconfig="$KC" --hostname-override="$NODE" \
    --proxy-mode=iptables --cluster-cidr="$NET.0/24" --iptables-localhost-nodeports=false \
    --healthz-bind-address=127.0.0.1:10256 --metrics-bind-address=127.0.0.1:10249 \
    --conntrack-max-per-core=0 --conntrack-tcp-timeout-established=0 --conntrack-tcp-timeout-close-wait=0 \
    --oom-score-adj=0 --v=1
  waitfor kube-proxy 60 healthy kube-proxy
  log "kube-proxy healthy in $(since "$t")s"
  log "node and control plane up in $(since "$T")s"
}

kctl() { "$K8S_BIN/kubectl" --kubeconfig "$KC" "$@"; }

packages() {
  local missing=() p
  for p in $NEED_PKGS; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p"); done
  [ ${#missing[@]} -gt 0 ] || return 0
  phase "installing Debian packages: ${missing[*]} (~1 min)"
  # No init system here: keep package scripts from starting services (the machine's RabbitMQ).
  [ -e /usr/sbin/policy-rc.d ] || { printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; }
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  phase "packages installed"
}

modver() { # module go.mod -> version of module required there, without the v
  awk -v m="$1" '($1==m || ($1=="require" && $2==m)) {v=($1=="require")?$3:$2; sub(/^v/,"",v); print v; exit}' "$2"
}
TOOLS=$ROOT/cluster/tools
KV=$(modver k8s.io/kubernetes "$TOOLS/kubernetes/go.mod")
KEDAV=$(modver github.com/kedacore/keda/v2 "$TOOLS/keda/go.mod")
DNSV=$(modver github.com/coredns/coredns "$TOOLS/coredns/go.mod")
FERRETV=$(modver github.com/FerretDB/FerretDB "$TOOLS/ferretdb/go.mod")
K8S_BIN=$CACHE/kubernetes-v$KV/bin
KEDA_DIR=$CACHE/keda-v$KEDAV
COREDNS_BIN=$CACHE/coredns-v$DNSV/bin/coredns
FERRETDB_BIN=$CACHE/ferretdb-v$FERRETV/bin/ferretdb
PAUSE_TAR=$CACHE/pause-3.10/pause.tar

build() { # what is missing, into $CACHE; says first what a cold build costs
  local todo=()
  [ -x "$K8S_BIN/kubectl" ] && [ -x "$K8S_BIN/kubelet" ] || todo+=("Kubernetes v$KV (~15 min on 2 cores)")
  [ -x "$KEDA_DIR/bin/keda-operator" ] || todo+=("KEDA v$KEDAV (~11 min)")
  [ -x "$COREDNS_BIN" ] || todo+=("CoreDNS v$DNSV (~1 min)")
  [ -x "$FERRETDB_BIN" ] || todo+=("FerretDB v$FERRETV (~3 min)")
  [ ${#todo[@]} -gt 0 ] || [ ! -s "$PAUSE_TAR" ] || return 0
  [ ${#todo[@]} -eq 0 ] || phase "building into $CACHE (once per version): ${todo[*]}"
  OUT=$K8S_BIN "$TOOLS/build-kubernetes.sh"
  OUT=$KEDA_DIR "$TOOLS/build-keda.sh"
  OUT=$(dirname "$COREDNS_BIN") "$TOOLS/build-main.sh" coredns github.com/coredns/coredns
  OUT=$(dirname "$FERRETDB_BIN") "$TOOLS/build-main.sh" ferretdb github.com/FerretDB/FerretDB
  if [ ! -s "$PAUSE_TAR" ]; then
    local tmp; tmp=$(mktemp -d); mkdir -p "$(dirname "$PAUSE_TAR")"
    (cd "$ROOT" && CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$tmp/pause" ./cluster/pause &&
      go run ./publish/imagebuild/cmd/imagebuild single --ref registry.k8s.io/pause:3.10 --bin "$tmp/pause" --out "$PAUSE_TAR")
    rm -rf "$tmp"
  fi
  phase "components built"
}

runs() { # name [program]: its recorded PID is alive and still that program (default: name); a
  # PID file can outlive a reboot, and its PID then belongs to something else
  alive "$1" && tr '\0' ' ' <"/proc/$(cat "$RUN/pids/$1.pid")/cmdline" 2>/dev/null | grep -q -- "${2:-$1}"
}

node_state() { # prints running, stopped or partial (of the node and control plane processes)
  local n alive=0 dead=0
  for n in etcd kube-apiserver kube-controller-manager kube-scheduler containerd coredns kubelet kube-proxy; do
    if runs "$n"; then alive=$((alive + 1)); else dead=$((dead + 1)); fi
  done
  if [ $dead -eq 0 ]; then echo running; elif [ $alive -eq 0 ]; then echo stopped; else echo partial; fi
}

rabbitmq_start() { # the private node (idempotent), its PIDs recorded with the others for `down`
  "$ROOT/cluster/rabbitmq-node.sh" start "$STATE/rabbitmq" "$RMQ_PORT" 127.0.0.1 "$GW"
  for f in node epmd; do cp -f "$STATE/rabbitmq/$f.pid" "$RUN/pids/rabbitmq-$f.pid"; done
}

rabbitmq_cluster_node_start() { # port: one node of the cluster (idempotent)
  RMQ_HOME=$RMQC_DIR RMQ_EPMD_PORT=$RMQC_EPMD "$ROOT/cluster/rabbitmq-node.sh" start "$RMQC_DIR/$1" "$1" 127.0.0.1 "$GW"
  cp -f "$RMQC_DIR/$1/node.pid" "$RUN/pids/rabbitmq-$1-node.pid"
  cp -f "$RMQC_DIR/epmd.pid" "$RUN/pids/rabbitmq-cluster-epmd.pid"
}

rabbitmq_cluster_start() { # three nodes, one cluster, haproxy in front
  local p first=${RMQC_PORTS%% *} pids=() rctl
  mkdir -p "$RMQC_DIR"
  # Their one epmd first (three starts at once would each start one, and record the wrong one),
  # then the nodes all at once: a node that stopped before its peers waits for them at boot.
  "$ROOT/cluster/rabbitmq-node.sh" epmd "$RMQC_DIR" "$RMQC_EPMD"
  for p in $RMQC_PORTS; do rabbitmq_cluster_node_start "$p" & pids+=($!); done
  for p in "${pids[@]}"; do wait "$p"; done
  for p in $RMQC_PORTS; do
    [ "$p" != "$first" ] || continue
    rctl=("$ROOT/cluster/rabbitmq-node.sh" ctl "$RMQC_DIR/$p")
    "${rctl[@]}" cluster_status --formatter json | grep -q "kdemo-$first@localhost" && continue
    "${rctl[@]}" stop_app; "${rctl[@]}" reset; "${rctl[@]}" join_cluster "kdemo-$first@localhost"; "${rctl[@]}" start_app
  done
  {
    printf 'global\n  maxconn 4096\ndefaults\n  mode tcp\n  timeout connect 5s\n  timeout client 3h\n  timeout server 3h\n  option tcpka\n'
    printf 'listen amqp\n  bind 127.0.0.1:%s\n  bind %s:%s\n  balance roundrobin\n' "$HAPROXY_PORT" "$GW" "$HAPROXY_PORT"
    # a node marked down closes its clients' connections at once, so that they reconnect elsewhere
    for p in $RMQC_PORTS; do printf '  server n%s 127.0.0.1:%s check inter 1s fall 2 rise 2 on-marked-down shutdown-sessions\n' "$p" "$p"; done
  } >"$RUN/haproxy.cfg"
  runs haproxy || start haproxy haproxy -f "$RUN/haproxy.cfg" -db
  waitfor haproxy 30 healthy haproxy
}

rabbitmq_cluster_stop() {
  stop_one haproxy
  local p
  for p in $RMQC_PORTS; do [ ! -d "$RMQC_DIR/$p" ] || "$ROOT/cluster/rabbitmq-node.sh" stop "$RMQC_DIR/$p"; done
  rm -f "$RUN"/pids/rabbitmq-57*.pid "$RUN/pids/rabbitmq-cluster-epmd.pid"
}

host_services() { # the private RabbitMQ node and FerretDB, on loopback and the bridge gateway
  mkdir -p "$STATE/rabbitmq" "$STATE/ferretdb"
  if [ "$BROKER" = cluster ]; then
    # The single node of an earlier `up` stops: app pods still on it during the rollout must
    # answer 503, not queue messages where nothing reads them any more.
    "$ROOT/cluster/rabbitmq-node.sh" stop "$STATE/rabbitmq"; rm -f "$RUN"/pids/rabbitmq-node.pid "$RUN"/pids/rabbitmq-epmd.pid
    rabbitmq_cluster_start
  else
    rabbitmq_cluster_stop # a cluster of an earlier `up` (as above)
    rabbitmq_start
  fi
  if [ ! -s "$STATE/rabbitmq-password" ]; then
    # '@', ':', '/' and '%' on purpose: the chart and the programs must escape it
    (umask 077; echo "P@ss:w/rd%$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')" >"$STATE/rabbitmq-password")
  fi
  local rctl=("$ROOT/cluster/rabbitmq-node.sh" ctl "$BROKER_DIR")
  "${rctl[@]}" add_vhost "$RMQ_VHOST" >/dev/null 2>&1 || true # exists after the first up
  "${rctl[@]}" add_user "$RMQ_USER" "$(cat "$STATE/rabbitmq-password")" >/dev/null 2>&1 ||
    "${rctl[@]}" change_password "$RMQ_USER" "$(cat "$STATE/rabbitmq-password")"
  "${rctl[@]}" set_permissions -p "$RMQ_VHOST" "$RMQ_USER" '.*' '.*' '.*'
  if ! alive ferretdb; then
    start ferretdb "$FERRETDB_BIN" --listen-addr="127.0.0.1:$MONGO_PORT,$GW:$MONGO_PORT" --data-dir="$STATE/ferretdb"
  fi
  waitfor ferretdb 30 healthy ferretdb
  phase "RabbitMQ $BROKER (127.0.0.1:$BROKER_PORT, $GW:$BROKER_PORT) and FerretDB ($GW:$MONGO_PORT) ready"
}

keda() { # KEDA's CRDs (server-side apply) and its operator, run out of cluster
  kctl apply --server-side --force-conflicts -f "$KEDA_DIR/crds/" >/dev/null
  kctl wait --for=condition=Established --timeout=60s -f "$KEDA_DIR/crds/" >/dev/null
  kctl create namespace keda --dry-run=client -o yaml | kctl apply -f - >/dev/null
  if ! alive keda-operator; then
    local certs=$STATE/keda-certs
    if [ ! -s "$certs/tls.crt" ]; then # its gRPC metrics service insists on ca.crt/tls.crt/tls.key in --cert-dir
      mkdir -p "$certs/empty"; (
        cd "$certs"
        openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -subj /CN=keda-demo-keda-ca -days 3650 2>/dev/null
        openssl req -newkey rsa:2048 -nodes -keyout tls.key -out tls.csr -subj /CN=keda-operator 2>/dev/null
        printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n' >ext
        openssl x509 -req -in tls.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out tls.crt -days 3650 -extfile ext 2>/dev/null
        rm -f tls.csr ext)
    fi
    start keda-operator env WATCH_NAMESPACE= KEDA_CLUSTER_OBJECT_NAMESPACE=keda POD_NAMESPACE=keda KUBECONFIG="$KC" \
      "$KEDA_DIR/bin/keda-operator" --leader-elect=false \
      --metrics-bind-address=127.0.0.1:18480 --health-probe-bind-address=127.0.0.1:18481 \
      --metrics-service-bind-address=127.0.0.1:18466 --cert-dir="$certs" --ca-dir="$certs/empty" \
      --enable-cert-rotation=false --zap-log-level=info --zap-encoder=console
  fi
  waitfor keda-operator 90 healthy keda-operator
  phase "KEDA v$KEDAV: CRDs applied, operator ready"
}

images() { # the app and processor images of this tree, imported into the node, named by digest too
  local oci=$RUN/oci out
  rm -rf "$oci" "$RUN/images.tar"
  out=$(cd "$ROOT" && go run ./publish/imagebuild/cmd/imagebuild --backend go --oci-layout "$oci" --platforms "linux/$(go env GOARCH)" ${KEDA_DEMO_IMAGEBUILD_ARGS:-} 2>&1 >/dev/null) ||
    { echo "$out" >&2; return 1; }
  tar -C "$oci" -cf "$RUN/images.tar" .
  local ctr=(ctr --address "$RUN/containerd/containerd.sock" -n k8s.io) line ref dg repo
  "${ctr[@]}" images import "$RUN/images.tar" >/dev/null
  IMAGE_SETS=() IMAGES=()
  # "wrote keda-demo-app:0.1.0 (sha256:…) to OCI layout …": CRI finds an image by its normalised
  # name, so name it docker.io/library/<repo>@<digest>, which the chart's <repo>:<tag>@<digest> resolves to.
  while read -r line; do
    ref=$(echo "$line" | sed -n 's/^wrote \([^ ]*\) (\(sha256:[0-9a-f]*\)).*/\1/p'); dg=$(echo "$line" | sed -n 's/^wrote [^ ]* (\(sha256:[0-9a-f]*\)).*/\1/p')
    [ -n "$ref" ] || continue
    repo=${ref%%:*}
    "${ctr[@]}" images tag --force "$ref" "docker.io/library/$ref" >/dev/null
    "${ctr[@]}" images tag --force "$ref" "docker.io/library/$repo@$dg" >/dev/null
    IMAGE_SETS+=(--set "${repo#keda-demo-}.image.digest=$dg")
    IMAGES+=("$repo@$dg")
  done <<<"$out"
  [ ${#IMAGE_SETS[@]} -eq 4 ] || { echo "images: expected the app and processor images, got: $out" >&2; return 1; }
  phase "images built and imported"
}

release() { # install or upgrade (or reinstall, when a Deployment selector changed) the chart: external mode against the host's RabbitMQ node and FerretDB
  local addr
  addr=$(cd "$ROOT" && go run ./cluster/release --kubeconfig "$KC" --namespace "$NAMESPACE" --release "$RELEASE" \
    --secret "keda-demo-rabbitmq-credentials/rabbitmq-password=@$STATE/rabbitmq-password" \
    -f ci/external-values.yaml \
    --set "global.kedaDemo.externalRabbitmq.host=$GW" --set "global.kedaDemo.externalRabbitmq.port=$BROKER_PORT" \
    --set "global.kedaDemo.externalRabbitmq.vhost=$RMQ_VHOST" --set "global.kedaDemo.externalRabbitmq.username=$RMQ_USER" \
    --set global.kedaDemo.externalRabbitmq.tls.enabled=false --set global.kedaDemo.externalRabbitmq.tls.caSecret= \
    --set "global.kedaDemo.externalMongodb.host=$GW" --set "global.kedaDemo.externalMongodb.port=$MONGO_PORT" \
    --set global.kedaDemo.externalMongodb.username= --set global.kedaDemo.externalMongodb.existingSecret= \
    --set global.kedaDemo.externalMongodb.tls.enabled=false --set global.kedaDemo.externalMongodb.tls.caSecret= \
    "${IMAGE_SETS[@]}" ${KEDA_DEMO_SETS:-})
  echo "$addr" >"$RUN/app-service"
  phase "release $RELEASE in namespace $NAMESPACE ready (app Service $addr)"
}

forwarder() { # http://127.0.0.1:$APP_PORT -> the app Service (restarted when its address changed)
  local addr; addr=$(cat "$RUN/app-service")
  if alive app-forwarder && [ "$(cat "$RUN/app-forwarder.target" 2>/dev/null)" = "$addr" ]; then return 0; fi
  stop_one app-forwarder socat
  start app-forwarder socat "TCP-LISTEN:$APP_PORT,bind=127.0.0.1,reuseaddr,fork" "TCP:$addr"
  echo "$addr" >"$RUN/app-forwarder.target"
  waitfor app-forwarder 30 curl -sf "http://127.0.0.1:$APP_PORT/healthz"
}

up() {
  packages
  build
  case $(node_state) in
    running) phase "cluster already running: keeping it" ;;
    stopped) node_up; phase "node and control plane up (Kubernetes v$KV)" ;;
    partial) log "some of the cluster's processes are gone (see $RUN/logs): run '$0 down', then up again"; return 1 ;;
  esac
  host_services
  [ "$UP_STAGE" = base ] && { phase "stage base: stopping before KEDA and the release"; return 0; }
  keda
  images
  release
  forwarder
  cat <<EOF

keda-demo is up (+$(since "$T0")s).
  app:        http://127.0.0.1:$APP_PORT   (try: curl -X POST 'http://127.0.0.1:$APP_PORT/send?name=hello&content=world')
  kubectl:    $K8S_BIN/kubectl --kubeconfig $KC -n $NAMESPACE get jobs
  kubeconfig: $KC
  images:     ${IMAGES[*]}
  stop:       go tool task down   (PURGE=1 also deletes the data in $STATE)
EOF
}

# ---- one component at a time, for fault tests (tests/e2e/faults_test.go) and by hand
COMPONENTS="etcd kube-apiserver kube-controller-manager kube-scheduler containerd coredns kubelet kube-proxy keda-operator ferretdb rabbitmq haproxy rabbitmq-5701 rabbitmq-5702 rabbitmq-5703"

component_pid() { # name: the PID that a fault signals (RabbitMQ: its Erlang VM)
  case $1 in
    rabbitmq | rabbitmq-57*)
      local d=$STATE/rabbitmq; [ "$1" = rabbitmq ] || d=$RMQC_DIR/${1#rabbitmq-}
      [ -s "$d/vm.pid" ] && kill -0 "$(cat "$d/vm.pid")" 2>/dev/null && cat "$d/vm.pid" ;;
    *) runs "$1" && cat "$RUN/pids/$1.pid" ;;
  esac
}

kill_component() { # name [signal]: signal a running component and wait until it is gone (SIGKILL after 30 s)
  local name=$1 sig=${2:-TERM} pid end
  pid=$(component_pid "$name") || { log "$name is not running"; return 1; }
  kill -"$sig" "$pid"
  end=$((SECONDS + 30))
  while kill -0 "$pid" 2>/dev/null; do
    if [ $SECONDS -ge $end ]; then log "$name (pid $pid) still runs 30 s after SIG$sig: SIGKILL"; kill -KILL "$pid"; end=$((SECONDS + 30)); fi
    sleep 0.1
  done
  if [[ $name == rabbitmq* ]]; then # and its rabbitmq-server wrapper, which outlives the VM briefly
    local d=$STATE/rabbitmq w; [ "$name" = rabbitmq ] || d=$RMQC_DIR/${name#rabbitmq-}
    w=$(cat "$d/node.pid" 2>/dev/null || true)
    for _ in $(seq 1 300); do [ -n "$w" ] && kill -0 "$w" 2>/dev/null || break; sleep 0.1; done
  fi
  log "$name (pid $pid) ended by SIG$sig"
}

start_component() { # name: start it again with the command line `up` gave it, and wait until it answers
  local name=$1 cmd
  case $name in
    rabbitmq) rabbitmq_start; log "rabbitmq ready"; return 0 ;;
    rabbitmq-57*) rabbitmq_cluster_node_start "${name#rabbitmq-}"; log "$name ready"; return 0 ;;
  esac
  if runs "$name"; then log "$name already runs"; return 0; fi
  [ -s "$RUN/cmds/$name" ] || { log "$name: no command line in $RUN/cmds: run up first"; return 1; }
  mapfile -d '' -t cmd <"$RUN/cmds/$name"
  [ ! -f "$RUN/logs/$name.log" ] || mv -f "$RUN/logs/$name.log" "$RUN/logs/$name.log.1" # keep the crash's log
  start "$name" "${cmd[@]}"
  waitfor "$name" 90 healthy "$name"
  log "$name ready"
}

status() { # running: any of the node's processes, or the bridge that `down` removes
  [ "$(node_state)" != stopped ] || ip link show "$BRIDGE" >/dev/null 2>&1
}

stop_one() { # name [program]: SIGTERM, SIGKILL after 20 s, if it still runs (see runs)
  local pid
  if runs "$@"; then
    pid=$(cat "$RUN/pids/$1.pid")
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 1 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true # gone after SIGTERM: nothing to do
  fi
  rm -f "$RUN/pids/$1.pid"
}

stop_pids() { # SIGTERM everything recorded, SIGKILL after 20 s; a PID is only signalled if its cmdline still names the binary
  declare -A live=()
  local f n pid
  for f in "$RUN"/pids/*.pid; do
    [ -e "$f" ] || continue
    n=$(basename "$f" .pid); pid=$(cat "$f")
    if runs "$n"; then
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
  [ -d "$RUN" ] || [ -d "$STATE" ] || return 0
  mkdir -p "$RUN/pids"
  # the host services first (the operator would log errors while the API goes away)
  stop_one app-forwarder socat
  for n in keda-operator ferretdb; do stop_one "$n"; done
  "$ROOT/cluster/rabbitmq-node.sh" stop "$STATE/rabbitmq"; rm -f "$RUN"/pids/rabbitmq-*.pid
  rabbitmq_cluster_stop
  local sock=$RUN/containerd/containerd.sock ctr=(ctr --address "$RUN/containerd/containerd.sock" -n k8s.io)
  # kubelet first so it does not restart what we remove; then the pods' containers, then the rest
  for n in kubelet kube-proxy; do stop_one "$n"; done
  if [ -S "$sock" ] && [ -s "$RUN/pids/containerd.pid" ] && kill -0 "$(cat "$RUN/pids/containerd.pid")" 2>/dev/null; then
    for tk in $("${ctr[@]}" tasks ls -q 2>/dev/null); do "${ctr[@]}" tasks kill -s SIGKILL "$tk" >/dev/null 2>&1; done
    sleep 1
    for tk in $("${ctr[@]}" tasks ls -q 2>/dev/null); do "${ctr[@]}" tasks rm -f "$tk" >/dev/null 2>&1; done
    for c in $("${ctr[@]}" containers ls -q 2>/dev/null); do "${ctr[@]}" containers rm "$c" >/dev/null 2>&1; done
  fi
  # the control plane before etcd, so that the API server is not left waiting on it
  for n in kube-controller-manager kube-scheduler coredns kube-apiserver; do stop_one "$n"; done
  stop_pids
  # kube-proxy's own cleanup of its iptables rules
  [ -x "$K8S_BIN/kube-proxy" ] && "$K8S_BIN/kube-proxy" --cleanup --proxy-mode=iptables >/dev/null 2>&1 || true
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
  rm -rf "$RUN/containerd" "$RUN/kubelet" "$RUN/cni" "$RUN/pod-logs" "$RUN/apiserver-certs"
  rm -f "$RUN/app-service" "$RUN/app-forwarder.target" "$RUN/images.tar"; rm -rf "$RUN/oci"
  if [ "${PURGE:-}" = 1 ]; then rm -rf "$STATE"; log "down: purged $STATE"; fi
  log "down: done"
}

case "${1:-}" in
  up)
    [ "$(id -u)" = 0 ] || { echo "cluster: needs root (containerd, kubelet, iptables, bridge): sudo go tool task up" >&2; exit 1; }
    mkdir -p "$RUN/pids" "$RUN/logs" "$STATE"
    trap 'rc=$?; [ $rc -eq 0 ] || log "up failed (rc=$rc); logs in $RUN/logs; undo with: go tool task down"' EXIT
    up ;;
  down) [ "$(id -u)" = 0 ] || { echo "cluster: needs root: sudo go tool task down" >&2; exit 1; }; down; exit 0 ;;
  status) status ;;
  kill-component|start-component|restart)
    [ "$(id -u)" = 0 ] || { echo "cluster: needs root" >&2; exit 1; }
    [[ " $COMPONENTS " == *" ${2:-none} "* ]] || { echo "usage: $0 $1 COMPONENT${3:+ ...}; COMPONENT is one of: $COMPONENTS" >&2; exit 2; }
    case $1 in
      kill-component) kill_component "$2" "${3:-TERM}" ;;
      start-component) start_component "$2" ;;
      restart) kill_component "$2" "${3:-TERM}"; sleep "${4:-0}"; start_component "$2" ;;
    esac ;;
  *) echo "usage: $0 up|down|status|kill-component NAME [SIGNAL]|start-component NAME|restart NAME [SIGNAL [PAUSE_S]]" >&2; exit 2 ;;
esac
