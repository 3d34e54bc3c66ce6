#!/usr/bin/env bash
# cluster/rabbitmq-node.sh — a private RabbitMQ node: its own node name, ports, data folder, Erlang
# cookie and epmd, so it never meets the machine's own broker (rabbit@<host> on 5672).
#
#   start DIR PORT [ADDR...]  start the node (data, logs, cookie in DIR), AMQP on ADDR:PORT for
#                             every ADDR (default 127.0.0.1); wait until it is ready. Idempotent.
#   stop DIR                  stop the node and its epmd, by the PIDs recorded in DIR. Idempotent.
#   ctl DIR ARGS...           rabbitmqctl against the node (e.g. ctl DIR add_user u p)
#   vmpid DIR                 the Erlang VM's PID (for fault tests: kill -9, SIGSTOP)
#   epmd HOME PORT            start the epmd that nodes sharing HOME use (before starting them at once)
#
# With RMQ_TLS_DIR set (ca.pem, cert.pem, key.pem in it), start also listens for AMQP over TLS on
# 127.0.0.1:<PORT+1>.
#
# The node name is kdemo-<PORT>@localhost, its epmd listens on 127.0.0.1:<PORT+10000> and Erlang
# distribution on 127.0.0.1:<PORT+20000>. Needs Debian's rabbitmq-server; runs as the calling user.
#
# Nodes that are to form a cluster share one Erlang cookie and one epmd: start each with
# RMQ_HOME=<shared dir> (the cookie and epmd's PID live there) and RMQ_EPMD_PORT=<port>; start
# records both in DIR, so ctl, vmpid and stop need nothing more.
set -euo pipefail

RMQ_BIN=${RMQ_BIN:-/usr/lib/rabbitmq/bin}

node_env() { # DIR PORT
  local dir=$1 port=$2
  export HOME=${RMQ_HOME:-$(cat "$dir/home" 2>/dev/null || echo "$dir")} # the Erlang cookie lives in $HOME/.erlang.cookie
  export RABBITMQ_NODENAME=kdemo-$port@localhost
  export RABBITMQ_BASE=$dir RABBITMQ_MNESIA_BASE=$dir/mnesia RABBITMQ_LOG_BASE=$dir/log
  export RABBITMQ_CONFIG_FILE=$dir/rabbitmq.conf RABBITMQ_ENABLED_PLUGINS_FILE=$dir/enabled_plugins
  export RABBITMQ_PID_FILE=$dir/vm.pid RABBITMQ_DIST_PORT=$((port + 20000))
  export ERL_EPMD_PORT=${RMQ_EPMD_PORT:-$(cat "$dir/epmd-port" 2>/dev/null || echo $((port + 10000)))} ERL_EPMD_ADDRESS=127.0.0.1
  export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
}

alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

epmd_start() { # the epmd of $HOME on $ERL_EPMD_PORT, unless it runs; waits until it listens
  if ! alive "$HOME/epmd.pid"; then
    setsid epmd -address 127.0.0.1 -port "$ERL_EPMD_PORT" >"$HOME/epmd.log" 2>&1 </dev/null &
    echo $! >"$HOME/epmd.pid"
  fi
  local end=$((SECONDS + 10))
  until timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$ERL_EPMD_PORT" 2>/dev/null; do
    alive "$HOME/epmd.pid" || { echo "rabbitmq-node: epmd on port $ERL_EPMD_PORT died; see $HOME/epmd.log" >&2; return 1; }
    [ $SECONDS -lt $end ] || { echo "rabbitmq-node: epmd not listening on $ERL_EPMD_PORT after 10 s" >&2; return 1; }
    sleep 0.1
  done
}

ctl() { # DIR ARGS... (the port is recorded at start)
  local dir=$1; shift
  node_env "$dir" "$(cat "$dir/port")"
  "$RMQ_BIN/rabbitmqctl" -q -n "$RABBITMQ_NODENAME" "$@"
}

start() {
  local dir=$1 port=$2; shift 2
  local addrs=("$@"); [ ${#addrs[@]} -gt 0 ] || addrs=(127.0.0.1)
  mkdir -p "$dir/mnesia" "$dir/log"
  echo "$port" >"$dir/port"
  node_env "$dir" "$port"
  echo "$HOME" >"$dir/home"; echo "$ERL_EPMD_PORT" >"$dir/epmd-port"
  mkdir -p "$HOME"
  if [ ! -s "$HOME/.erlang.cookie" ]; then
    (umask 077; head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$HOME/.erlang.cookie")
  fi
  chmod 400 "$HOME/.erlang.cookie"
  {
    local i=1 a
    for a in "${addrs[@]}"; do echo "listeners.tcp.$i = $a:$port"; i=$((i + 1)); done
    echo "loopback_users = none"
    if [ -n "${RMQ_TLS_DIR:-}" ]; then
      echo "listeners.ssl.default = 127.0.0.1:$((port + 1))"
      echo "ssl_options.cacertfile = $RMQ_TLS_DIR/ca.pem"
      echo "ssl_options.certfile = $RMQ_TLS_DIR/cert.pem"
      echo "ssl_options.keyfile = $RMQ_TLS_DIR/key.pem"
      echo "ssl_options.verify = verify_none"
      echo "ssl_options.fail_if_no_peer_cert = false"
    fi
  } >"$dir/rabbitmq.conf"
  echo "[]." >"$dir/enabled_plugins"
  epmd_start
  if ! alive "$dir/node.pid"; then
    setsid "$RMQ_BIN/rabbitmq-server" >"$dir/log/node.log" 2>&1 </dev/null &
    echo $! >"$dir/node.pid"
  fi
  # await_startup fails at once until the node has registered with epmd: retry, bounded.
  local end=$((SECONDS + 90))
  until "$RMQ_BIN/rabbitmqctl" -q -n "$RABBITMQ_NODENAME" await_startup --timeout 30 >/dev/null 2>&1; do
    alive "$dir/node.pid" || { echo "rabbitmq-node: $RABBITMQ_NODENAME died; see $dir/log" >&2; tail -20 "$dir/log/node.log" >&2; return 1; }
    [ $SECONDS -lt $end ] || { echo "rabbitmq-node: $RABBITMQ_NODENAME not ready after 90 s" >&2; return 1; }
    sleep 0.5
  done
}

stop_pid() { # pidfile: TERM, then KILL after 20 s
  local f=$1 pid
  [ -s "$f" ] || { rm -f "$f"; return 0; }
  pid=$(cat "$f")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$f"
}

stop() {
  local dir=$1
  [ -d "$dir" ] || return 0
  stop_pid "$dir/node.pid"
  # the VM, should it have outlived its wrapper (e.g. the wrapper was killed)
  stop_pid "$dir/vm.pid"
  # epmd, unless nodes sharing it still run
  local home n; home=$(cat "$dir/home" 2>/dev/null || echo "$dir")
  for n in "$home"/*/vm.pid; do alive "$n" && return 0; done
  stop_pid "$home/epmd.pid"
}

case "${1:-}" in
  start) [ $# -ge 3 ] || { echo "usage: $0 start DIR PORT [ADDR...]" >&2; exit 2; }; shift; start "$@" ;;
  stop) [ $# -eq 2 ] || { echo "usage: $0 stop DIR" >&2; exit 2; }; stop "$2" ;;
  ctl) [ $# -ge 3 ] || { echo "usage: $0 ctl DIR ARGS..." >&2; exit 2; }; shift; ctl "$@" ;;
  vmpid) cat "$2/vm.pid" ;;
  epmd) [ $# -eq 3 ] || { echo "usage: $0 epmd HOME PORT" >&2; exit 2; }
    mkdir -p "$2"; HOME=$(cd "$2" && pwd) ERL_EPMD_PORT=$3 epmd_start ;;
  *) echo "usage: $0 start|stop|ctl|vmpid ..." >&2; exit 2 ;;
esac
