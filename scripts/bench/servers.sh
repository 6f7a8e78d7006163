# Start/stop helpers for scripts/bench-ingest (sourced, not executed).
#
# Every server gets a fresh data directory under $WORK, listens on loopback only, and logs to
# $WORK/<name>.log. start_* set SERVER_PID and SERVER_URL; stop_server stops SERVER_PID.

SERVER_PID=""
SERVER_URL=""

# wait_http URL SECONDS: polls URL until it answers 200.
wait_http() {
    local url=$1 seconds=$2 i
    for ((i = 0; i < seconds * 10; i++)); do
        if curl -fsS -o /dev/null "$url" 2>/dev/null; then return 0; fi
        if [ -n "$SERVER_PID" ] && ! kill -0 "$SERVER_PID" 2>/dev/null; then return 1; fi
        sleep 0.1
    done
    return 1
}

# start_victoriametrics DATA_DIR PORT LOG
start_victoriametrics() {
    local dir=$1 port=$2 log=$3
    victoria-metrics \
        -httpListenAddr "127.0.0.1:$port" \
        -storageDataPath "$dir" \
        -retentionPeriod 100y \
        -search.maxSeries 10000000 \
        -loggerLevel WARN \
        >"$log" 2>&1 &
    SERVER_PID=$!
    SERVER_URL="http://127.0.0.1:$port"
    if ! wait_http "$SERVER_URL/health" 60; then
        echo "error: VictoriaMetrics did not become healthy; log:" >&2
        cat "$log" >&2
        return 1
    fi
}

# start_starling BIN DATA_DIR PORT GOSSIP_PORT TOKEN LOG
start_starling() {
    local bin=$1 dir=$2 port=$3 gossip=$4 token=$5 log=$6
    STARLING_ADMIN_TOKEN="$token" "$bin" serve \
        --data-dir "$dir" \
        --http "127.0.0.1:$port" \
        --gossip "127.0.0.1:$gossip" \
        --peer 127.0.0.1:0 \
        --log-level warning \
        >"$log" 2>&1 &
    SERVER_PID=$!
    SERVER_URL="http://127.0.0.1:$port"
    if ! wait_http "$SERVER_URL/readyz" 120; then
        echo "error: Starling did not become ready; log:" >&2
        cat "$log" >&2
        return 1
    fi
}

# stop_server: SIGTERM (both drain and flush), SIGKILL after 60 s.
stop_server() {
    [ -n "$SERVER_PID" ] || return 0
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    local i
    for ((i = 0; i < 600; i++)); do
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$SERVER_PID" 2>/dev/null; then
        echo "warning: server $SERVER_PID did not stop in 60 s; killing it" >&2
        kill -KILL "$SERVER_PID" 2>/dev/null || true
    fi
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
}
