#!/usr/bin/env bash
# Instructions, syscalls and context switches per request (docs/design.md §15's repeatable measure):
# nginx proxy_pass (access log on), nginx auth_request, and prt-gate's public and authenticated
# routes, each under `valgrind --tool=callgrind` (counters zeroed after a warm-up, then a fixed
# number of keep-alive requests from a fixed client), then natively under
# `perf stat -e raw_syscalls:sys_enter,context-switches`. Prints a markdown table on stdout,
# progress on stderr. See benches/README.md ("Instructions per request").
#
#   bash benches/callgrind/run.sh [--requests 3000] [--warmup 300] [--connections 4]
#                                 [--no-auth] [--no-perf] [--media | --media-only]
#                                 [--profile DIR] [--bin PATH] [--keep-tmp]
#
# --media adds a row: `/media/…` answered with a presigned S3 redirect (302) for a logged-in
# Client (s3s-fs with one object, `[media]` as in benches/load/media.sh, `check_exists = false`).
# --media-only measures that row alone (no nginx rows, no other gate rows).
#
# --bin PATH measures that prt-gate binary instead of building target/release/prt-gate (to
# compare two builds).
# --profile DIR keeps each row's callgrind dump in DIR and writes `callgrind_annotate` summaries
# next to them (the function list the "Reduce" steps were chosen from).
set -euo pipefail

REQUESTS=3000
WARMUP=300
CONNS=4
WITH_AUTH=1
WITH_PERF=1
PROFILE_DIR=
GATE_BIN=
KEEP_TMP=0
MEDIA=0
REQ_PATH=/api/health/
AUTH_PATH=/api/user/context/
AUTH_USER=office@example.com
MEDIA_PATH=/media/bols/2025/PRT-2025-0002.pdf
MEDIA_USER=client@example.com
usage() { sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; }
while [[ $# -gt 0 ]]; do
    case "$1" in
        --requests) REQUESTS=$2; shift 2 ;;
        --warmup) WARMUP=$2; shift 2 ;;
        --connections) CONNS=$2; shift 2 ;;
        --no-auth) WITH_AUTH=0; shift ;;
        --no-perf) WITH_PERF=0; shift ;;
        --media) MEDIA=1; shift ;;
        --media-only) MEDIA=2; shift ;;
        --profile) PROFILE_DIR=$2; shift 2 ;;
        --bin) GATE_BIN=$(readlink -f "$2"); shift 2 ;;
        --keep-tmp) KEEP_TMP=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "run.sh: unknown argument $1" >&2; usage >&2; exit 2 ;;
    esac
done
[[ $REQUESTS =~ ^[1-9][0-9]*$ && $WARMUP =~ ^[1-9][0-9]*$ && $CONNS =~ ^[1-9][0-9]*$ ]] \
    || { echo "run.sh: --requests, --warmup and --connections take positive integers" >&2; exit 2; }
((MEDIA == 2)) && WITH_AUTH=1
export PATH="$PATH:${CARGO_HOME:-$HOME/.cargo}/bin"
tools=(nginx valgrind callgrind_control curl python3)
((WITH_PERF == 0)) || tools+=(perf)
((MEDIA == 0)) || tools+=(s3s-fs)
for tool in "${tools[@]}"; do
    command -v "$tool" >/dev/null || { echo "run.sh: '$tool' not found (apt-get install -y nginx valgrind linux-perf curl; cargo install s3s-fs@0.14.1 --features binary --locked)" >&2; exit 1; }
done

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CLIENT=$ROOT/benches/callgrind/client.py
TMP=$(mktemp -d "${TMPDIR:-/tmp}/prt-gate-callgrind.XXXXXX")
[[ -z $PROFILE_DIR ]] || { mkdir -p "$PROFILE_DIR"; PROFILE_DIR=$(cd "$PROFILE_DIR" && pwd); }
log() { printf '[callgrind] %s\n' "$*" >&2; }
fail() { log "FAIL: $*"; exit 1; }

STARTED=()
cleanup() {
    local rc=$? pid
    trap - EXIT INT TERM
    for pid in "${STARTED[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    sleep 0.5
    for pid in "${STARTED[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if ((KEEP_TMP)); then log "temp dir kept: $TMP"; else rm -rf "$TMP"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_http() { # url status seconds pid
    local deadline=$((SECONDS + $3)) code
    while ((SECONDS < deadline)); do
        kill -0 "$4" 2>/dev/null || return 2
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$1" || true)
        [[ $code == "$2" ]] && return 0
        sleep 0.2
    done
    return 1
}
stop() { # pid
    kill -TERM "$1" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

BODY='prt-gate load benchmark fixed upstream body 0123456789abcdefghi'
printf '%s\n' "$BODY" >"$TMP/body"

# The fixed upstream (native, one worker) and the two nginx proxies. Unlike benches/load, each
# proxy is ONE process (`master_process off`, one worker), so callgrind and perf see all of it.
UP_PORT=$(free_port); PP_PORT=$(free_port); AR_PORT=$(free_port)
nginx_conf() { # dir port kind(upstream|proxy|auth)
    local d=$1 port=$2 kind=$3
    mkdir -p "$d/tmp"
    cat <<EOF
worker_processes 1;
$([[ $kind == upstream ]] || echo "master_process off;")
pid $d/nginx.pid;
error_log $d/error.log warn;
events { worker_connections 1024; }
http {
    client_body_temp_path $d/tmp/body;
    proxy_temp_path $d/tmp/proxy;
    fastcgi_temp_path $d/tmp/fastcgi;
    uwsgi_temp_path $d/tmp/uwsgi;
    scgi_temp_path $d/tmp/scgi;
    default_type text/plain;
    keepalive_timeout 75s;
    keepalive_requests 100000000;
EOF
    if [[ $kind == upstream ]]; then
        cat <<EOF
    access_log off;
    server {
        listen 127.0.0.1:$port;
        location = /_auth { return 204; }
        location / { return 200 "$BODY\n"; }
    }
}
EOF
        return
    fi
    cat <<EOF
    access_log $d/access.log combined;
    upstream app { server 127.0.0.1:$UP_PORT; keepalive 64; keepalive_requests 100000000; }
    server {
        listen 127.0.0.1:$port;
EOF
    [[ $kind == auth ]] && cat <<'EOF'
        location = /_auth {
            internal;
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header X-Original-URI $request_uri;
        }
EOF
    echo "        location / {"
    [[ $kind == auth ]] && echo "            auth_request /_auth;"
    cat <<'EOF'
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-Host $host;
        }
    }
}
EOF
}
for x in "upstream $UP_PORT upstream" "proxy_pass $PP_PORT proxy" "auth_request $AR_PORT auth"; do
    read -r name port kind <<<"$x"
    mkdir -p "$TMP/$name"
    nginx_conf "$TMP/$name" "$port" "$kind" >"$TMP/$name/nginx.conf"
done

nginx -e "$TMP/upstream/error.log" -p "$TMP/upstream" -c "$TMP/upstream/nginx.conf" -g 'daemon off;' >/dev/null 2>&1 &
UP_PID=$!; STARTED+=("$UP_PID")
wait_http "http://127.0.0.1:$UP_PORT/" 200 10 "$UP_PID" || fail "upstream nginx did not start"

if [[ -z $GATE_BIN ]]; then
    GATE_BIN=$ROOT/target/release/prt-gate
    log "building prt-gate (release)"
    (cd "$ROOT" && cargo build --release --bin prt-gate) >&2 || fail "cargo build --release failed"
fi
[[ -x $GATE_BIN ]] || fail "no prt-gate binary at $GATE_BIN"
GATE_PORT=$(free_port); GATE_ADMIN=$(free_port); SSO_PORT=$(free_port)
mkdir -p "$TMP/gate"
SSO_SECTION=
if ((WITH_AUTH)); then
    "$GATE_BIN" dev-sso --listen "127.0.0.1:$SSO_PORT" >"$TMP/gate/dev-sso.out" 2>&1 &
    SSO_PID=$!; STARTED+=("$SSO_PID")
    wait_http "http://127.0.0.1:$SSO_PORT/o/.well-known/openid-configuration" 200 10 "$SSO_PID" || fail "dev SSO did not start"
    SSO_SECTION=$(printf '[sso]\nbase_url = "http://127.0.0.1:%s"\nclient_id = "prt-gate-dev"\n' "$SSO_PORT")
fi
cat >"$TMP/gate/gate.toml" <<EOF
[gate]
listen = "127.0.0.1:$GATE_PORT"
admin_listen = "127.0.0.1:$GATE_ADMIN"
upstream = "http://127.0.0.1:$UP_PORT"
public_url = "http://127.0.0.1:$GATE_PORT"

$SSO_SECTION

[session]
cookie_secure = false

EOF
if ((MEDIA)); then
    # One object in s3s-fs, random credentials per run (never printed); the gate signs with them.
    AWS_ACCESS_KEY_ID=AKIA$(head -c 64 /dev/urandom | tr -dc 'A-Z0-9' | head -c 16)
    AWS_SECRET_ACCESS_KEY=$(head -c 64 /dev/urandom | base64 | tr -dc 'A-Za-z0-9/+' | head -c 40)
    export AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY
    S3_PORT=$(free_port)
    mkdir -p "$TMP/s3/prt-media/bols/2025"
    head -c 200000 /dev/urandom | base64 >"$TMP/s3/prt-media${MEDIA_PATH#/media}"
    s3s-fs --host 127.0.0.1 --port "$S3_PORT" --access-key "$AWS_ACCESS_KEY_ID" \
        --secret-key "$AWS_SECRET_ACCESS_KEY" "$TMP/s3" >"$TMP/s3.log" 2>&1 &
    S3_PID=$!; STARTED+=("$S3_PID")
    for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$S3_PORT/" && break; sleep 0.1; done
    curl -s -o /dev/null "http://127.0.0.1:$S3_PORT/" || fail "s3s-fs did not start"
    cat >>"$TMP/gate/gate.toml" <<EOF
[media]
bucket = "prt-media"
endpoint = "http://127.0.0.1:$S3_PORT"
path_style = true
check_exists = false

EOF
fi
awk '/^\[/ { keep = ($0 ~ /^\[\[?(roles|route)[].]/) } keep' "$ROOT/policy.toml" >>"$TMP/gate/gate.toml"
export PRT_GATE_SSO__CLIENT_SECRET=dev-secret
PRT_GATE_ASSERTION__SECRET=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
export PRT_GATE_ASSERTION__SECRET
"$GATE_BIN" check "$TMP/gate/gate.toml" >"$TMP/gate/check.log" 2>&1 || { cat "$TMP/gate/check.log" >&2; fail "prt-gate check failed"; }

# ---------------------------------------------------------------- one process per mode
# start KIND MODE: starts the proxy KIND (proxy_pass|auth_request|gate) natively or under
# callgrind (MODE native|callgrind); sets PID and PORT.
start() {
    local kind=$1 mode=$2 pre=() d
    d=$TMP/$kind
    [[ $mode == native ]] || pre=(valgrind --tool=callgrind --callgrind-out-file="$d/cg.out.%p")
    if [[ $kind == gate ]]; then
        "${pre[@]}" "$GATE_BIN" serve --config "$d/gate.toml" >"$d/access.log" 2>"$d/stderr.log" &
        PID=$!; PORT=$GATE_PORT
        wait_http "http://127.0.0.1:$GATE_ADMIN/healthz" 200 120 "$PID" || { tail "$d/stderr.log" >&2; fail "gate ($mode) did not start"; }
    else
        [[ $kind == proxy_pass ]] && PORT=$PP_PORT || PORT=$AR_PORT
        "${pre[@]}" nginx -e "$d/error.log" -p "$d" -c "$d/nginx.conf" -g 'daemon off;' >"$d/stdout.log" 2>&1 &
        PID=$!
        wait_http "http://127.0.0.1:$PORT/" 200 120 "$PID" || { tail "$d/error.log" >&2; fail "nginx $kind ($mode) did not start"; }
    fi
    STARTED+=("$PID")
}

COOKIE=
login() { # [user next]: one real login through the gate (dev SSO, login_hint skips the picker)
    local jar=$TMP/gate/cookies.txt user=${1:-$AUTH_USER} next=${2:-$AUTH_PATH}
    rm -f "$jar"
    curl -s -L --max-redirs 5 --max-time 120 -c "$jar" -b "$jar" -o /dev/null \
        "http://127.0.0.1:$GATE_PORT/auth/login/?next=$next&login_hint=$user" || true
    COOKIE=$(awk -F'\t' 'NF >= 7 && $6 ~ /(^|__Host-)prt_session$/ {print $6 "=" $7}' "$jar" | tail -n 1)
    [[ -n $COOKIE ]] || fail "login through the gate failed"
}

client() { # port path count [header]: 200 and the fixed body, or (media path) a 302 with a Location
    local expect=("$TMP/body")
    [[ $2 == "$MEDIA_PATH" ]] && expect=("$TMP/empty" --status=302)
    python3 "$CLIENT" "${expect[@]:1}" "$1" "$2" "$3" "$CONNS" "${expect[0]}" "${@:4}" >/dev/null \
        || fail "client run against :$1$2 failed"
}
: >"$TMP/empty"

declare -A IR SHA SYS CSW
dumps() { # pid -> number of callgrind dumps written so far
    local f n=0
    for f in "$TMP"/*/cg.out."$1".*; do [[ -e $f ]] && n=$((n + 1)); done
    echo "$n"
}
# measure_cg ROW PID PORT PATH [HEADER]: warm-up, zero, fixed count, dump; IR[ROW] = Ir/request.
measure_cg() {
    local row=$1 pid=$2 port=$3 path=$4 hdr=("${@:5}") dump total sha
    client "$port" "$path" "$WARMUP" "${hdr[@]}"
    callgrind_control -z "$pid" >/dev/null 2>&1
    client "$port" "$path" "$REQUESTS" "${hdr[@]}"
    sleep 0.3   # the gate's log writer flushes every 25 ms: its last write is counted
    local before
    before=$(dumps "$pid")
    callgrind_control -d "$pid" >/dev/null 2>&1
    for _ in $(seq 100); do
        (($(dumps "$pid") > before)) && break
        sleep 0.2
    done
    dump=$(ls -t "$TMP"/*/cg.out."$pid".* | head -n 1)
    total=$(awk '/^totals:/ {print $2; exit} /^summary:/ {s = $2} END {if (s) print s}' "$dump" | head -n 1)
    [[ -n $total ]] || fail "no totals in $dump"
    IR[$row]=$((total / REQUESTS))
    # valgrind hides SHA-NI: SHA-256 runs without it here, several times the native cost:
    # ring's block functions (the assertion, session ids) and any sha2::sha256:: function
    # (the block function may or may not be inlined).
    sha=$(callgrind_annotate --threshold=100 "$dump" 2>/dev/null | awk '/sha2::sha256::|sha256_block_data_order/ {gsub(",", "", $1); s += $1} END {print s + 0}')
    SHA[$row]=$((sha / REQUESTS))
    log "$row: $total instructions / $REQUESTS requests = ${IR[$row]} (SHA-256 ${SHA[$row]})"
    if [[ -n $PROFILE_DIR ]]; then
        local slug=${row//[^A-Za-z0-9]/_}
        cp "$dump" "$PROFILE_DIR/$slug.callgrind"
        callgrind_annotate --inclusive=yes "$dump" 2>/dev/null | head -n 60 >"$PROFILE_DIR/$slug.inclusive.txt" || true
        callgrind_annotate "$dump" 2>/dev/null | head -n 60 >"$PROFILE_DIR/$slug.self.txt" || true
    fi
}
# measure_perf ROW PID PORT PATH [HEADER]: the same request stream, natively, under perf stat.
measure_perf() {
    local row=$1 pid=$2 port=$3 path=$4 hdr=("${@:5}") out=$TMP/perf.$RANDOM ppid
    client "$port" "$path" "$WARMUP" "${hdr[@]}"
    perf stat -x, -e raw_syscalls:sys_enter,context-switches -p "$pid" -o "$out" &
    ppid=$!
    sleep 0.5
    client "$port" "$path" "$REQUESTS" "${hdr[@]}"
    kill -INT "$ppid"; wait "$ppid" 2>/dev/null || true
    SYS[$row]=$(awk -F, -v n="$REQUESTS" '$3 ~ /sys_enter/ {printf "%.1f", $1 / n}' "$out")
    CSW[$row]=$(awk -F, -v n="$REQUESTS" '$3 ~ /context-switches/ {printf "%.2f", $1 / n}' "$out")
    log "$row: ${SYS[$row]} syscalls, ${CSW[$row]} context switches per request"
}

ROWS=("nginx proxy_pass (access log on)" "nginx auth_request (204 subrequest)" "prt-gate (public route)")
((WITH_AUTH)) && ROWS+=("prt-gate (authenticated, session cookie)")
MEDIA_ROW="prt-gate (media presign redirect, Client session)"
((MEDIA == 0)) || ROWS+=("$MEDIA_ROW")
((MEDIA == 2)) && ROWS=("$MEDIA_ROW")
cp "$TMP/gate/gate.toml" "$TMP/gate/gate.toml.orig"
MODES=(callgrind)
((WITH_PERF)) && MODES+=(native)
for mode in "${MODES[@]}"; do
    fn=measure_cg; [[ $mode == native ]] && fn=measure_perf
    for kind in proxy_pass auth_request; do
        ((MEDIA == 2)) && break
        log "$kind ($mode)"
        start "$kind" "$mode"
        row=${ROWS[0]}; [[ $kind == auth_request ]] && row=${ROWS[1]}
        $fn "$row" "$PID" "$PORT" "$REQ_PATH"
        stop "$PID"
    done
    log "prt-gate ($mode)"
    start gate "$mode"
    if ((MEDIA != 2)); then
        $fn "${ROWS[2]}" "$PID" "$PORT" "$REQ_PATH"
        if ((WITH_AUTH)); then
            login
            $fn "${ROWS[3]}" "$PID" "$PORT" "$AUTH_PATH" "Cookie: $COOKIE"
        fi
    fi
    if ((MEDIA)); then
        login "$MEDIA_USER" /client.html
        # Pre-flight: the redirect's Location must download the object from s3s-fs.
        loc=$(curl -s -o /dev/null -w '%{http_code} %{redirect_url}' -H "Cookie: $COOKIE" "http://127.0.0.1:$PORT$MEDIA_PATH")
        [[ ${loc%% *} == 302 ]] || fail "media pre-flight: expected 302, got $loc"
        [[ $(curl -s -o /dev/null -w '%{http_code}' "${loc#* }") == 200 ]] || fail "media pre-flight: s3s-fs refused the presigned URL"
        $fn "$MEDIA_ROW" "$PID" "$PORT" "$MEDIA_PATH" "Cookie: $COOKIE"
    fi
    stop "$PID"
done

rev=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo "?")
dirty=$(git -C "$ROOT" status --porcelain -- src Cargo.toml 2>/dev/null | grep -q . && echo "+changes" || true)
[[ $GATE_BIN == "$ROOT/target/release/prt-gate" ]] || { rev="binary $GATE_BIN"; dirty=; }
cat <<EOF

### Instructions per request — $(date -u '+%Y-%m-%d %H:%M UTC'), prt-gate @ $rev$dirty

$(valgrind --version), nginx $(nginx -v 2>&1 | sed 's/.*nginx\///'). $REQUESTS keep-alive \`GET\` requests over $CONNS connections from benches/callgrind/client.py after $WARMUP warm-up requests; counters zeroed after the warm-up. Syscalls and context switches: the same stream natively under \`perf stat -p\`.

| row | instructions/request | vs nginx proxy_pass | of which SHA-256 (no SHA-NI under valgrind) | without SHA-256, vs nginx proxy_pass | syscalls/request | context switches/request |
|---|---:|---:|---:|---:|---:|---:|
EOF
base=${IR["nginx proxy_pass (access log on)"]:-}
num() { sed ':a;s/\B[0-9]\{3\}\>/,&/;ta' <<<"$1"; }
for row in "${ROWS[@]}"; do
    printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$row" "$(num "${IR[$row]}")" \
        "$(awk -v a="${IR[$row]}" -v b="$base" 'BEGIN{if (b) printf "%.2f×", a / b; else printf "-"}')" "$(num "${SHA[$row]}")" \
        "$(awk -v a="${IR[$row]}" -v s="${SHA[$row]}" -v b="$base" 'BEGIN{if (b) printf "%.2f×", (a - s) / b; else printf "-"}')" \
        "${SYS[$row]:--}" "${CSW[$row]:--}"
done
