#!/usr/bin/env bash
# Memory per idle keep-alive connection (docs/design.md §15): N clients that each made one request
# and keep their connection open, against prt-gate and against nginx proxy_pass (same upstream).
# RSS is read from /proc/PID/status (nginx: master + worker) after one request and again with
# the N connections idle. Then the session half of docs/design.md §15's memory row: `cargo bench --bench
# session_memory` (100,000 sessions in the in-memory store). Markdown on stdout.
#
#   bash benches/idle/run.sh [--connections 10000] [--bin PATH] [--no-sessions]
set -euo pipefail
N=10000
GATE_BIN=
WITH_SESSIONS=1
while [[ $# -gt 0 ]]; do
    case "$1" in
        --connections) N=$2; shift 2 ;;
        --bin) GATE_BIN=$(readlink -f "$2"); shift 2 ;;
        --no-sessions) WITH_SESSIONS=0; shift ;;
        -h|--help) sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "run.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
[[ $N =~ ^[1-9][0-9]*$ ]] || { echo "run.sh: --connections takes a positive integer" >&2; exit 2; }
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
TMP=$(mktemp -d "${TMPDIR:-/tmp}/prt-gate-idle.XXXXXX")
log() { printf '[idle] %s\n' "$*" >&2; }
fail() { log "FAIL: $*"; exit 1; }
STARTED=()
cleanup() {
    local rc=$? pid
    trap - EXIT INT TERM
    for pid in "${STARTED[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    sleep 0.5
    for pid in "${STARTED[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$TMP"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
# One fd per connection in each process (the opener, the proxy), plus some.
ulimit -n $((N + 1024)) 2>/dev/null || fail "cannot raise the fd limit to $((N + 1024)) (hard limit $(ulimit -Hn))"
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_http() { # url seconds
    local deadline=$((SECONDS + $2))
    while ((SECONDS < deadline)); do
        [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$1" || true) == 200 ]] && return 0
        sleep 0.2
    done
    return 1
}
rss_kb() { # pids... -> summed VmRSS in kB
    local t=0 p v
    for p in "$@"; do
        v=$(awk '/^VmRSS:/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0)
        t=$((t + v))
    done
    echo "$t"
}
BODY='prt-gate idle benchmark body'
UP_PORT=$(free_port); PP_PORT=$(free_port); GATE_PORT=$(free_port); GATE_ADMIN=$(free_port)
nginx_conf() { # dir port upstream?
    mkdir -p "$1/tmp"
    cat <<C
worker_processes 1;
pid $1/nginx.pid;
error_log $1/error.log warn;
events { worker_connections $((N + 512)); }
worker_rlimit_nofile $((N + 1024));
http {
    client_body_temp_path $1/tmp/body; proxy_temp_path $1/tmp/proxy; fastcgi_temp_path $1/tmp/fastcgi;
    uwsgi_temp_path $1/tmp/uwsgi; scgi_temp_path $1/tmp/scgi;
    default_type text/plain;
    keepalive_timeout 600s;
$(if [[ $3 == upstream ]]; then
    printf '    access_log off;\n    server { listen 127.0.0.1:%s; location / { return 200 "%s\\n"; } }\n' "$2" "$BODY"
else
    printf '    access_log %s/access.log combined;\n    upstream app { server 127.0.0.1:%s; keepalive 64; }\n' "$1" "$UP_PORT"
    printf '    server { listen 127.0.0.1:%s backlog=4096; location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection ""; } }\n' "$2"
fi)
}
C
}
mkdir -p "$TMP/up" "$TMP/pp" "$TMP/gate"
nginx_conf "$TMP/up" "$UP_PORT" upstream >"$TMP/up/nginx.conf"
nginx_conf "$TMP/pp" "$PP_PORT" proxy >"$TMP/pp/nginx.conf"
nginx -e "$TMP/up/error.log" -p "$TMP/up" -c "$TMP/up/nginx.conf" -g 'daemon off;' >/dev/null 2>&1 &
STARTED+=("$!")
wait_http "http://127.0.0.1:$UP_PORT/" 10 || fail "upstream nginx did not start"
nginx -e "$TMP/pp/error.log" -p "$TMP/pp" -c "$TMP/pp/nginx.conf" -g 'daemon off;' >/dev/null 2>&1 &
PP_PID=$!; STARTED+=("$PP_PID")
wait_http "http://127.0.0.1:$PP_PORT/api/health/" 10 || fail "nginx proxy_pass did not start"

if [[ -z $GATE_BIN ]]; then
    GATE_BIN=$ROOT/target/release/prt-gate
    log "building prt-gate (release)"
    (cd "$ROOT" && cargo build --release --bin prt-gate) >&2 || fail "cargo build --release failed"
fi
cat >"$TMP/gate/gate.toml" <<C
[gate]
listen = "127.0.0.1:$GATE_PORT"
admin_listen = "127.0.0.1:$GATE_ADMIN"
upstream = "http://127.0.0.1:$UP_PORT"
max_connections = $((N + 100))
C
awk '/^\[/ { keep = ($0 ~ /^\[\[?(roles|route)[].]/) } keep' "$ROOT/policy.toml" >>"$TMP/gate/gate.toml"
PRT_GATE_ASSERTION__SECRET=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n') \
    "$GATE_BIN" serve --config "$TMP/gate/gate.toml" >"$TMP/gate/access.log" 2>"$TMP/gate/stderr.log" &
GATE_PID=$!; STARTED+=("$GATE_PID")
wait_http "http://127.0.0.1:$GATE_ADMIN/healthz" 20 || { tail "$TMP/gate/stderr.log" >&2; fail "prt-gate did not start"; }

declare -A BEFORE AFTER
measure() { # name port pids...
    local name=$1 port=$2 ready=$TMP/ready.$2 fifo=$TMP/hold.$2 opener
    shift 2
    curl -s -o /dev/null "http://127.0.0.1:$port/api/health/"
    sleep 1
    BEFORE[$name]=$(rss_kb "$@")
    mkfifo "$fifo"
    python3 "$ROOT/benches/idle/open.py" "$port" /api/health/ "$N" "$ready" <"$fifo" &
    opener=$!
    exec {hold}>"$fifo"
    for _ in $(seq 600); do [[ -s $ready ]] && break; kill -0 "$opener" 2>/dev/null || fail "opener died ($name)"; sleep 0.2; done
    [[ -s $ready ]] || fail "$N connections to $name not established in 120 s"
    sleep 2
    AFTER[$name]=$(rss_kb "$@")
    exec {hold}>&-
    wait "$opener" || true
    log "$name: ${BEFORE[$name]} kB -> ${AFTER[$name]} kB with $N idle connections"
}
pp_pids() { echo "$PP_PID $(pgrep -P "$PP_PID" | tr '\n' ' ')"; }
# shellcheck disable=SC2046
measure "nginx proxy_pass" "$PP_PORT" $(pp_pids)
measure "prt-gate" "$GATE_PORT" "$GATE_PID"
if ((WITH_SESSIONS)); then
    log "docs/design.md §15 row: the gate with 100,000 sessions (benches/memory_row.rs) + $N idle connections"
    ROW_BIN=$(cd "$ROOT" && cargo bench --bench memory_row --no-run 2>&1 | grep -o 'target/release/deps/memory_row-[0-9a-f]*' | tail -1)
    [[ -n $ROW_BIN ]] || fail "cargo bench --bench memory_row --no-run built nothing"
    ROW_PORT=$(free_port)
    sed "s/^listen = .*/listen = \"127.0.0.1:$ROW_PORT\"/" "$TMP/gate/gate.toml" >"$TMP/gate/row.toml"
    mkfifo "$TMP/row.in"
    "$ROOT/$ROW_BIN" --config "$TMP/gate/row.toml" <"$TMP/row.in" >"$TMP/row.out" 2>"$TMP/row.err" &
    ROW_PID=$!; STARTED+=("$ROW_PID")
    exec {row_hold}>"$TMP/row.in"
    for _ in $(seq 600); do grep -q '^READY' "$TMP/row.out" 2>/dev/null && break; kill -0 "$ROW_PID" 2>/dev/null || { cat "$TMP/row.err" >&2; fail "memory_row died"; }; sleep 0.2; done
    grep -q '^READY' "$TMP/row.out" || fail "memory_row not ready in 120 s"
    read -r _ ROW_EMPTY ROW_SESS < <(grep '^SESSIONS_RSS_KB' "$TMP/row.out")
    measure "prt-gate, 100,000 sessions" "$ROW_PORT" "$ROW_PID"
    exec {row_hold}>&-
fi

rev=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo "?")
cat <<T

### Idle keep-alive memory — $(date -u '+%Y-%m-%d %H:%M UTC'), prt-gate @ $rev

$N connections, each after one \`GET /api/health/\` (200 from the same upstream), held open and idle for 2 s; RSS from /proc/PID/status (nginx: master + worker).

| proxy | RSS after one request | RSS with $N idle connections | added per connection |
|---|---:|---:|---:|
T
NAMES=("nginx proxy_pass" "prt-gate")
((WITH_SESSIONS)) && NAMES+=("prt-gate, 100,000 sessions")
for name in "${NAMES[@]}"; do
    awk -v n="$name" -v b="${BEFORE[$name]}" -v a="${AFTER[$name]}" -v c="$N" \
        'BEGIN{printf "| %s | %.1f MB | %.1f MB | %.2f KB |\n", n, b / 1024, a / 1024, (a - b) / c}'
done
if ((WITH_SESSIONS)); then
    log "100,000 in-memory sessions (cargo bench --bench session_memory)"
    SESS=$(cd "$ROOT" && cargo bench --bench session_memory 2>/dev/null | awk '/^SESSIONS_KB/ {print $2}')
    [[ -n $SESS ]] || fail "cargo bench --bench session_memory printed no SESSIONS_KB line"
    awk -v s="$SESS" -v e="$ROW_EMPTY" -v f="$ROW_SESS" -v a="${AFTER[prt-gate, 100,000 sessions]}" -v n="$N" 'BEGIN{
        printf "\n100,000 in-memory sessions: %.1f MB (%.0f bytes each, benches/session_memory.rs).\n", s / 1024, s * 1024 / 100000
        printf "\ndocs/design.md §15 memory row, one process (benches/memory_row.rs: the gate with its store and policy): %.1f MB at start, %.1f MB with 100,000 sessions, **%.1f MB** with them and %d idle keep-alive connections (target ≤ 150 MB).\n", e / 1024, f / 1024, a / 1024, n }'
fi
