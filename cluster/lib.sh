# Shared by the cluster/ scripts (sourced): where a cluster runs, and the one description of
# its topology — `cluster/up` starts it, `cluster/up --plan` prints it, and the test
# OperationsTests checks that docker-compose.yml describes the same.
#
# Settings (environment): PARLEY_CLUSTER_DIR (default var/cluster: PID files, logs, the HAProxy
# socket), PARLEY_CLUSTER_PORT (default 4000: the one port clients use; node i listens on
# 4000+i), PARLEY_CLUSTER_STATS_PORT (default 8404: HAProxy's stats page), PARLEY_BINARY (a
# parley binary to run instead of building the release one), and cluster/services' own.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CLUSTER_DIR="${PARLEY_CLUSTER_DIR:-$ROOT/var/cluster}"
STATE="$CLUSTER_DIR/cluster.env"
MAX_NODES=8

say() { printf '%s\n' "$*" >&2; }
die() { printf '%s: error: %s\n' "$(basename "$0")" "$*" >&2; exit 1; }

# The settings of the cluster that runs (written by cluster/up).
load_state() {
    [ -f "$STATE" ] || die "no cluster runs from $CLUSTER_DIR (cluster/up starts one)"
    # shellcheck disable=SC1090
    source "$STATE"
}

services_env() {
    "$ROOT/cluster/services" env
}

# Node i's port: the client port itself for a one-node cluster (no load balancer), else 4000+i.
node_port() { if [ "$NODES" -eq 1 ]; then echo "$CLIENT_PORT"; else echo $((CLIENT_PORT + $1)); fi; }
relay_port() { echo $((CLIENT_PORT + 100 + $1)); }

# Node i's settings, one KEY=VALUE a line: what cluster/up starts it with (and what the
# compose file's node-i service must say, with host names for addresses).
node_env() {
    local i=$1
    echo "PARLEY_NODE_NAME=node-$i"
    echo "PARLEY_HTTP_HOST=127.0.0.1"
    echo "PARLEY_HTTP_PORT=$(node_port "$i")"
    if [ "${RELAYS:-0}" = 1 ]; then
        echo "PARLEY_REDIS_URL=redis://127.0.0.1:$(relay_port "$i")"
    else
        echo "PARLEY_REDIS_URL=$REDIS_URL"
    fi
    echo "PARLEY_DATABASE_URL=$DATABASE_URL"
    # Uploads: clamd's address, and the one folder of files every node shares (a volume in compose).
    echo "PARLEY_CLAMD_URL=$CLAMD_URL"
    echo "PARLEY_BLOB_DIR=$BLOB_DIR"
    if [ "${PLANNING:-0}" = 1 ]; then
        echo "PARLEY_TOKEN_SECRET=(a secret of 32 bytes or more, the same on every node)"
        return 0
    fi
    echo "PARLEY_TOKEN_SECRET=$(cat "$CLUSTER_DIR/token-secret")"
    # Other PARLEY_* settings given to cluster/up pass through to every node.
    [ -f "$CLUSTER_DIR/node-extra.env" ] && cat "$CLUSTER_DIR/node-extra.env"
    return 0
}

# HAProxy's environment (cluster/haproxy.cfg reads it).
haproxy_env() {
    echo "PARLEY_HAPROXY_BIND=127.0.0.1:$CLIENT_PORT"
    echo "PARLEY_HAPROXY_STATS=127.0.0.1:$STATS_PORT"
    echo "PARLEY_HAPROXY_SOCKET=$CLUSTER_DIR/haproxy.sock"
    local i
    for i in $(seq 1 $((NODES + SPARE))); do echo "PARLEY_NODE_$i=127.0.0.1:$(node_port "$i")"; done
    if [ "${RELAYS:-0}" = 1 ]; then
        echo "PARLEY_REDIS_ADDR=${REDIS_URL#redis://}"
        for i in $(seq 1 $((NODES + SPARE))); do echo "PARLEY_REDIS_RELAY_$i=127.0.0.1:$(relay_port "$i")"; done
    fi
}

pid_of() { cat "$CLUSTER_DIR/$1.pid" 2>/dev/null || true; }
running() { local pid; pid="$(pid_of "$1")"; [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; }
# R (running), T (stopped by SIGSTOP), or nothing when the process is gone.
process_state() { local pid; pid="$(pid_of "$1")"; [ -n "$pid" ] && ps -o state= -p "$pid" 2>/dev/null | tr -d ' ' | cut -c1; }

node_ready() { curl -fs -m 1 "http://127.0.0.1:$(node_port "$1")/readyz" >/dev/null 2>&1; }

check_node_name() {
    [[ "$1" =~ ^node-([1-9])$ ]] && [ "${BASH_REMATCH[1]}" -le $((NODES + SPARE)) ] \
        || die "no such node: $1 (the nodes are node-1 … node-$((NODES + SPARE)))"
    echo "${BASH_REMATCH[1]}"
}

start_node() {
    local i=$1 name="node-$1"
    running "$name" && { say "$name already runs (pid $(pid_of "$name"))"; return 0; }
    # Every WebSocket is a descriptor: allow as many as the machine lets us.
    ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
    local -a settings
    mapfile -t settings < <(node_env "$i")
    env "${settings[@]}" nohup "$BINARY" serve >>"$CLUSTER_DIR/$name.log" 2>&1 </dev/null &
    echo $! > "$CLUSTER_DIR/$name.pid"
}

wait_node_ready() {
    local i=$1 name="node-$1" deadline=$((SECONDS + ${2:-120}))
    while [ $SECONDS -lt $deadline ]; do
        node_ready "$i" && return 0
        running "$name" || { say "$name exited:"; tail -5 "$CLUSTER_DIR/$name.log" >&2; return 1; }
        sleep 0.2
    done
    say "$name is not ready after ${2:-120} s; see $CLUSTER_DIR/$name.log"
    return 1
}

# SIGTERM (the node drains: it hands off its channels and closes its sockets over its drain
# window), then waits for it to exit.
drain_node() {
    local name="node-$1" pid
    pid="$(pid_of "$name")"
    running "$name" || return 0
    [ "$(process_state "$name")" = T ] && kill -CONT "$pid"
    kill -TERM "$pid"
    local deadline=$((SECONDS + ${2:-45}))
    while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then say "$name did not exit; killing it"; kill -KILL "$pid"; fi
    rm -f "$CLUSTER_DIR/$name.pid"
}

# HAProxy's view of a server: UP, DOWN, MAINT, … (from its stats page, CSV).
haproxy_status() {
    curl -fs -m 2 "http://127.0.0.1:$STATS_PORT/;csv" 2>/dev/null | awk -F, -v s="$1" '$1 == "sockets" && $2 == s { print $18 }'
}
