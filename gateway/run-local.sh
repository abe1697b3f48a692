#!/usr/bin/env bash
# `make run`: one gateway serving the page on http://127.0.0.1:8080/, with a private
# redis-server (Unix socket under build/run/, no TCP port, no persistence) unless
# CHAT_REDIS_URL names a Redis to use. Ctrl-C drains the gateway, then stops that Redis.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
run="$root/build/run"
gateway="$root/build/release/chat-gateway"
mkdir -p "$run"

redis_pid=
stop_redis() {
    if [ -n "$redis_pid" ]; then
        kill -TERM "$redis_pid" 2>/dev/null || true
        wait "$redis_pid" 2>/dev/null || true
    fi
}
trap stop_redis EXIT

if [ -z "${CHAT_REDIS_URL:-}" ]; then
    sock="$run/redis.sock"
    rm -f "$sock"
    # Its own session, so the terminal's Ctrl-C reaches the gateway, which drains first.
    setsid redis-server --port 0 --unixsocket "$sock" --unixsocketperm 700 --save "" \
        --appendonly no --dir "$run" >"$run/redis.log" 2>&1 </dev/null &
    redis_pid=$!
    for _ in $(seq 100); do
        [ -S "$sock" ] && break
        kill -0 "$redis_pid" 2>/dev/null || { cat "$run/redis.log" >&2; exit 1; }
        sleep 0.1
    done
    [ -S "$sock" ] || { echo "redis-server did not start; see $run/redis.log" >&2; exit 1; }
    export CHAT_REDIS_URL="$sock"
    echo "private redis-server: $sock (watch it: redis-cli -s $sock MONITOR)"
fi

echo "chatbroker: http://${CHAT_LISTEN:-127.0.0.1:8080}/ (Ctrl-C stops it)"
"$gateway" --public-dir "${CHAT_PUBLIC_DIR:-$root/public}" &
gw_pid=$!
trap 'kill -TERM "$gw_pid" 2>/dev/null || true' INT TERM
status=0
wait "$gw_pid" || status=$?
# wait returns early when a trapped signal arrives: wait again for the drain to finish.
if kill -0 "$gw_pid" 2>/dev/null; then
    wait "$gw_pid" || status=$?
fi
exit "$status"
