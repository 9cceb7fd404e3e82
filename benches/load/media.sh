#!/usr/bin/env bash
# Media redirect throughput (docs/design.md §15: >= 60,000 presign redirects/s on one worker thread).
#
# Starts the dev SSO, an s3s-fs holding one PDF, and the release gate with
# `gate.workers = 1`, logs in once as a Client, then drives
# `GET /media/bols/2025/PRT-2025-0002.pdf` with the session cookie through wrk:
#
#   row 1  media.check_exists = false  (session lookup, policy, key mapping, SigV4 presign,
#                                       audit event + access log line, 302)
#   row 2  media.check_exists = true   (the same plus the existence-cache lookup; S3 is asked
#                                       once per key per 30 s)
#
# Prints a markdown table: responses/s, p50/p99, gate CPU per response.
# Usage: bash benches/load/media.sh [--duration 10s] [--connections 32] [--no-build] [--perf FILE]
set -euo pipefail
cd "$(dirname "$0")/../.."

DURATION=10s
CONNECTIONS=32
BUILD=1
PERF=
while (($#)); do
    case $1 in
        --duration) DURATION=$2; shift 2 ;;
        --connections) CONNECTIONS=$2; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        --perf) PERF=$2; shift 2 ;;   # write `perf record -g` of the first row's gate to this file
        -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
        *) echo "media.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
export PATH="$PATH:${CARGO_HOME:-$HOME/.cargo}/bin"
for tool in wrk curl s3s-fs; do
    command -v "$tool" >/dev/null || { echo "media.sh: '$tool' not found (apt-get install -y wrk curl; cargo install s3s-fs@0.14.1 --features binary --locked)" >&2; exit 1; }
done

((BUILD == 0)) || cargo build --release --locked --bin prt-gate >&2
BIN=$PWD/target/release/prt-gate
TMP=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$TMP"; }
trap cleanup EXIT INT TERM
log() { printf '[media] %s\n' "$*" >&2; }
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 200); do curl -s -o /dev/null "http://127.0.0.1:$1/" && return 0; sleep 0.05; done; return 1; }
granted() { curl -s "http://127.0.0.1:$ADMIN_PORT/metrics" | awk -F' ' '/^prt_gate_presigns_total\{outcome="granted"\}/ {print $2}'; }
# Context switches of all the gate's threads, and its write-type syscalls.
switches() { cat /proc/"$1"/task/*/status 2>/dev/null | awk '/ctxt_switches/ {n += $2} END {print n + 0}'; }
syscw() { awk '/^syscw/ {print $2}' "/proc/$1/io"; }
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
HZ=$(getconf CLK_TCK)

# Random credentials per run (never committed, never printed).
AWS_ACCESS_KEY_ID=AKIA$(head -c 64 /dev/urandom | tr -dc 'A-Z0-9' | head -c 16)
AWS_SECRET_ACCESS_KEY=$(head -c 64 /dev/urandom | base64 | tr -dc 'A-Za-z0-9/+' | head -c 40)
export AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY
export PRT_GATE_SSO__CLIENT_SECRET=dev-secret
PRT_GATE_ASSERTION__SECRET=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
export PRT_GATE_ASSERTION__SECRET

S3_PORT=$(port)
mkdir -p "$TMP/s3/prt-media/bols/2025"
head -c 200000 /dev/urandom | base64 >"$TMP/s3/prt-media/bols/2025/PRT-2025-0002.pdf"
s3s-fs --host 127.0.0.1 --port "$S3_PORT" --access-key "$AWS_ACCESS_KEY_ID" --secret-key "$AWS_SECRET_ACCESS_KEY" "$TMP/s3" >/dev/null 2>&1 &
PIDS+=($!)
SSO_PORT=$(port)
"$BIN" dev-sso --listen "127.0.0.1:$SSO_PORT" >/dev/null 2>"$TMP/sso.err" &
PIDS+=($!)
wait_port "$S3_PORT" || { echo "s3s-fs did not start" >&2; exit 1; }
wait_port "$SSO_PORT" || { echo "dev-sso did not start" >&2; exit 1; }

echo "| row | responses/s | p50 | p99 | gate CPU/response | context switches/response | write syscalls/response |"
echo "|---|---:|---:|---:|---:|---:|---:|"
for check in false true; do
    GATE_PORT=$(port)
    ADMIN_PORT=$(port)
    cat >"$TMP/gate.toml" <<EOF
[gate]
listen = "127.0.0.1:$GATE_PORT"
admin_listen = "127.0.0.1:$ADMIN_PORT"
upstream = "http://127.0.0.1:9"
public_url = "http://127.0.0.1:$GATE_PORT"
workers = 1

[sso]
base_url = "http://127.0.0.1:$SSO_PORT"
client_id = "prt-gate-dev"

[session]
cookie_secure = false

[media]
bucket = "prt-media"
endpoint = "http://127.0.0.1:$S3_PORT"
path_style = true
check_exists = $check
EOF
    awk '/^\[/ { keep = ($0 ~ /^\[\[?(roles|route)[].]/) } keep' policy.toml >>"$TMP/gate.toml"
    "$BIN" serve --config "$TMP/gate.toml" >"$TMP/access.log" 2>"$TMP/gate.err" &
    GATE_PID=$!
    PIDS+=("$GATE_PID")
    wait_port "$GATE_PORT" || { cat "$TMP/gate.err" >&2; exit 1; }
    jar=$TMP/jar.txt; rm -f "$jar"
    curl -s -L --max-redirs 5 -c "$jar" -b "$jar" -o /dev/null \
        "http://127.0.0.1:$GATE_PORT/auth/login/?next=/client.html&login_hint=client@example.com" || true
    COOKIE=$(awk -F'\t' 'NF >= 7 && $6 ~ /prt_session$/ {print $6 "=" $7}' "$jar" | tail -n 1)
    [[ -n $COOKIE ]] || { echo "login failed" >&2; tail "$TMP/gate.err" >&2; exit 1; }
    URL="http://127.0.0.1:$GATE_PORT/media/bols/2025/PRT-2025-0002.pdf"
    # Pre-flight: a 302 whose Location downloads the PDF from s3s-fs (a signature it accepts).
    loc=$(curl -s -o /dev/null -w '%{http_code} %{redirect_url}' -H "Cookie: $COOKIE" "$URL")
    [[ ${loc%% *} == 302 ]] || { echo "pre-flight: expected 302, got $loc" >&2; exit 1; }
    got=$(curl -s -o /dev/null -w '%{http_code}' "${loc#* }")
    [[ $got == 200 ]] || { echo "pre-flight: presigned URL answered $got" >&2; exit 1; }

    wrk -t1 -c "$CONNECTIONS" -d 2s -H "Cookie: $COOKIE" "$URL" >/dev/null 2>&1 || true
    granted0=$(granted)
    t0=$(ticks "$GATE_PID"); cs0=$(switches "$GATE_PID"); w0=$(syscw "$GATE_PID")
    PERF_PID=
    if [[ -n $PERF && $check == false ]]; then
        perf record -g -o "$PERF" -p "$GATE_PID" >/dev/null 2>&1 &
        PERF_PID=$!
    fi
    out=$(wrk -t1 -c "$CONNECTIONS" -d "$DURATION" --latency -H "Cookie: $COOKIE" "$URL")
    t1=$(ticks "$GATE_PID"); cs1=$(switches "$GATE_PID"); w1=$(syscw "$GATE_PID")
    if [[ -n $PERF_PID ]]; then kill -INT "$PERF_PID"; wait "$PERF_PID" 2>/dev/null || true; fi
    granted1=$(granted)
    n=$(awk '/requests in/ {print $1}' <<<"$out")
    rps=$(awk '/Requests\/sec/ {printf "%.0f", $2}' <<<"$out")
    p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
    p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
    # Every response must be a granted 302: wrk reports statuses >= 400 and socket errors;
    # the gate's own counter must have granted one presign per response wrk counted.
    if grep -qE 'Socket errors|Non-2xx' <<<"$out" || (( granted1 - granted0 < n )); then
        echo "$out" >&2
        echo "media.sh: not every response was a granted 302 ($((granted1 - granted0)) grants, $n responses)" >&2
        exit 1
    fi
    cpu=$(awk -v t=$((t1 - t0)) -v hz="$HZ" -v n="$n" 'BEGIN{printf "%.1f µs", t * 1e6 / hz / n}')
    per() { awk -v a="$1" -v n="$n" 'BEGIN{printf "%.2f", a / n}'; }
    echo "| prt-gate media redirect, 1 worker, check_exists = $check | $rps | $p50 | $p99 | $cpu | $(per $((cs1 - cs0))) | $(per $((w1 - w0))) |"
    kill "$GATE_PID"; wait "$GATE_PID" 2>/dev/null || true
done
log "wrk -t1 -c$CONNECTIONS -d$DURATION; $(nproc) cores; access log and audit log on (to a file)"
