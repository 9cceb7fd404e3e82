#!/usr/bin/env bash
# Load benchmark for prt-gate (docs/design.md §15): the gate against nginx `proxy_pass` and nginx
# `auth_request`, side by side, in one run, on one machine, behind the same upstream and driven
# by the same load generator (wrk). Prints a markdown table on stdout; progress goes to stderr.
#
#   bash benches/load/run.sh [--duration 10s] [--connections 64] [--quick] [--nice -20] [--help]
#
# Rows: upstream direct, nginx proxy_pass, nginx auth_request, the gate on a public route and
# the gate with a session cookie (one real login through the dev SSO). Every process it starts
# gets a free loopback port and lives in one `mktemp -d` directory; all are stopped on exit
# (normal end, failure or Ctrl-C). Exit status: 0 ok, 1 a run failed (non-2xx responses,
# socket errors, a failed start or login), 2 usage error. See benches/README.md.
set -euo pipefail

usage() {
    cat <<'EOF'
usage: bash benches/load/run.sh [options]

  --duration D         measured wrk run per proxy (default 10s)
  --connections N      wrk connections for the full-load runs (default 64)
  --threads N          wrk threads (default: nproc)
  --rate N             half-load request rate for the added-p99 runs (default: half of
                       nginx proxy_pass's full-load requests/s measured in this run)
  --warmup D           unmeasured wrk run before each measured run (default 2s)
  --path P             request path of every row but the authenticated one
                       (default /api/health/, public in the shipped policy)
  --quick              --duration 3s --warmup 1s (smoke test)
  --policy FILE        policy whose [roles] and [[route]] tables the gate loads
                       (default: the repository's shipped policy.toml)
  --auth-path P        path of the authenticated gate row (default /api/user/context/)
  --auth-user EMAIL    dev-SSO user the authenticated row logs in as (default office@example.com)
  --no-auth            skip the authenticated gate row (no dev SSO, no login)
  --no-gate            skip building and measuring prt-gate (nginx rows only)
  --wait-quiet S       before each measured run, wait up to S seconds for the machine to be
                       idle (< 10% busy over 1 s); default 0 (only report other load)
  --nice N             run the upstream, the proxies and wrk at this niceness (root may use
                       -20 on a shared machine so that other jobs disturb the numbers less)
  --keep-tmp           keep the temp dir (configs, logs) for inspection
  --bin PATH           measure this prt-gate binary instead of building target/release/prt-gate
  -h, --help           this text
EOF
}

ORIG_ARGS=("$@")
DURATION=10s
WARMUP=2s
CONNECTIONS=64
RATE=
THREADS=$(nproc)
REQ_PATH=/api/health/
AUTH_PATH=/api/user/context/
AUTH_USER=office@example.com
WITH_AUTH=1
WITH_GATE=1
KEEP_TMP=0
WAIT_QUIET=0
NICE=
POLICY=
BIN_OVERRIDE=

die_usage() { echo "run.sh: $*" >&2; usage >&2; exit 2; }
while [[ $# -gt 0 ]]; do
    case "$1" in
        --duration) [[ $# -ge 2 ]] || die_usage "--duration needs a value"; DURATION=$2; shift 2 ;;
        --connections) [[ $# -ge 2 ]] || die_usage "--connections needs a value"; CONNECTIONS=$2; shift 2 ;;
        --threads) [[ $# -ge 2 ]] || die_usage "--threads needs a value"; THREADS=$2; shift 2 ;;
        --rate) [[ $# -ge 2 ]] || die_usage "--rate needs a value"; RATE=$2; shift 2 ;;
        --warmup) [[ $# -ge 2 ]] || die_usage "--warmup needs a value"; WARMUP=$2; shift 2 ;;
        --path) [[ $# -ge 2 ]] || die_usage "--path needs a value"; REQ_PATH=$2; shift 2 ;;
        --quick) DURATION=3s; WARMUP=1s; shift ;;
        --auth-path) [[ $# -ge 2 ]] || die_usage "--auth-path needs a value"; AUTH_PATH=$2; shift 2 ;;
        --auth-user) [[ $# -ge 2 ]] || die_usage "--auth-user needs a value"; AUTH_USER=$2; shift 2 ;;
        --no-auth) WITH_AUTH=0; shift ;;
        --no-gate) WITH_GATE=0; WITH_AUTH=0; shift ;;
        --wait-quiet) [[ $# -ge 2 ]] || die_usage "--wait-quiet needs a value"; WAIT_QUIET=$2; shift 2 ;;
        --policy) [[ $# -ge 2 ]] || die_usage "--policy needs a value"; POLICY=$2; shift 2 ;;
        --nice) [[ $# -ge 2 ]] || die_usage "--nice needs a value"; NICE=$2; shift 2 ;;
        --keep-tmp) KEEP_TMP=1; shift ;;
        --bin) [[ $# -ge 2 ]] || die_usage "--bin needs a value"; BIN_OVERRIDE=$(readlink -f "$2"); shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) die_usage "unknown argument: $1" ;;
    esac
done
[[ $DURATION =~ ^[0-9]+[smh]?$ && $WARMUP =~ ^[0-9]+[smh]?$ ]] || die_usage "durations look like 10s, 1m"
[[ $CONNECTIONS =~ ^[1-9][0-9]*$ && $THREADS =~ ^[1-9][0-9]*$ && ${RATE:-1} =~ ^[1-9][0-9]*$ ]] \
    || die_usage "--connections, --threads and --rate take positive integers"
[[ -z $NICE || $NICE =~ ^-?[0-9]+$ ]] || die_usage "--nice takes an integer"
[[ $WAIT_QUIET =~ ^[0-9]+$ ]] || die_usage "--wait-quiet takes seconds"
[[ $REQ_PATH == /* && $AUTH_PATH == /* ]] || die_usage "--path and --auth-path must start with /"
[[ $AUTH_USER =~ ^[A-Za-z0-9._+-]+@[A-Za-z0-9.-]+$ ]] || die_usage "--auth-user takes an e-mail address"
((CONNECTIONS >= THREADS)) || die_usage "--connections must be >= --threads ($THREADS)"
case $DURATION in
    *h) DURATION_US=$((10#${DURATION%h} * 3600000000)) ;;
    *m) DURATION_US=$((10#${DURATION%m} * 60000000)) ;;
    *) DURATION_US=$((10#${DURATION%s} * 1000000)) ;;
esac
((DURATION_US > 0)) || die_usage "--duration must be positive"

# With sched autogroup (the Debian default) a task's niceness only counts inside its session,
# so --nice re-runs this script in a session of its own and gives that whole group the
# niceness: the upstream, the proxies and wrk then share the CPU with each other as before,
# while other sessions (a concurrent build) yield to them. Ctrl-C and SIGTERM are forwarded.
AUTOGROUP=0
[[ $(cat /proc/sys/kernel/sched_autogroup_enabled 2>/dev/null) == 1 && -e /proc/self/autogroup ]] && AUTOGROUP=1
if [[ -n $NICE && $AUTOGROUP == 1 && -z ${PRT_LOAD_SESSION:-} ]] && command -v setsid >/dev/null; then
    sidfile=$(mktemp "${TMPDIR:-/tmp}/prt-gate-load-sid.XXXXXX")
    PRT_LOAD_SESSION=$sidfile setsid --wait bash "${BASH_SOURCE[0]}" "${ORIG_ARGS[@]}" &
    child=$!
    # The child session started in the background ignores SIGINT (bash does that to background
    # jobs without job control), so Ctrl-C reaches it as SIGTERM.
    forward() { local sid; sid=$(cat "$sidfile" 2>/dev/null) || true; [[ -z $sid ]] || kill -TERM -- "-$sid" 2>/dev/null || true; }
    trap forward INT TERM
    while :; do
        rc=0; wait "$child" || rc=$?
        kill -0 "$child" 2>/dev/null || break
    done
    rm -f "$sidfile"
    exit "$rc"
fi
[[ -n ${PRT_LOAD_SESSION:-} ]] && echo $$ >"$PRT_LOAD_SESSION"

for tool in nginx wrk curl pgrep getconf; do
    command -v "$tool" >/dev/null || { echo "run.sh: '$tool' not found (apt-get install -y nginx wrk curl procps)" >&2; exit 1; }
done

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
POLICY=${POLICY:-$ROOT/policy.toml}
((WITH_GATE == 0)) || [[ -r $POLICY ]] || die_usage "policy file not readable: $POLICY"
CLK_TCK=$(getconf CLK_TCK)
TMP=$(mktemp -d "${TMPDIR:-/tmp}/prt-gate-load.XXXXXX")
# Progress goes to the original stderr through its own descriptor, so a message from a trap
# still shows while the interrupted command had stderr redirected.
exec {LOGFD}>&2
log() { printf '[load] %s\n' "$*" >&"$LOGFD"; }

# ---------------------------------------------------------------- process bookkeeping / cleanup
STARTED=()   # pids we started (nginx masters, the gate, the dev SSO)
declare -A PNAME PLOG   # pid -> name, pid -> its log file (shown if it dies)
cleanup() {
    local rc=$? pid all=()
    trap - EXIT INT TERM
    for pid in "${STARTED[@]}"; do
        all+=("$pid")
        # nginx workers do not die with their master on SIGKILL: remember them too.
        while read -r child; do [[ -n $child ]] && all+=("$child"); done < <(pgrep -P "$pid" 2>/dev/null || true)
    done
    for pid in "${STARTED[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for _ in $(seq 50); do
        local alive=0
        for pid in "${all[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        ((alive)) || break
        sleep 0.1
    done
    for pid in "${all[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if ((KEEP_TMP)); then log "temp dir kept: $TMP"; else rm -rf "$TMP"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT
trap 'log "terminated"; exit 143' TERM

fail() { log "FAIL: $*"; exit 1; }

# Every process we started must outlive every run: a crash under load is a finding, and an
# interrupted run must not be reported as a result (wrk catches SIGINT and exits 0).
check_alive() { # what-was-running
    local pid
    for pid in "${STARTED[@]}"; do
        kill -0 "$pid" 2>/dev/null && continue
        log "${PNAME[$pid]} (pid $pid) is gone after $1; last lines of ${PLOG[$pid]}:"
        tail -n 20 "${PLOG[$pid]}" 2>/dev/null | sed 's/^/[load]   /' >&2 || true
        fail "${PNAME[$pid]} exited during $1 (crashed, or the run was interrupted)"
    done
}

# A loopback port no socket uses and that we have not handed out yet, taken below the
# ephemeral range: a port above it can be the local end of some outgoing connection by the
# time a listener binds it (EADDRINUSE).
USED_PORTS=" "
read -r EPHEMERAL_LOW _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || EPHEMERAL_LOW=32768
PORT_LOW=10000
PORT_SPAN=$((EPHEMERAL_LOW - PORT_LOW))
((PORT_SPAN >= 1000)) || { PORT_LOW=20000; PORT_SPAN=40000; }
free_port() { # VAR: sets VAR (no subshell, so USED_PORTS sticks)
    local p
    for _ in $(seq 200); do
        p=$((PORT_LOW + RANDOM % PORT_SPAN))
        [[ $USED_PORTS == *" $p "* ]] && continue
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && ! ss -Hatn "sport = :$p" 2>/dev/null | grep -q .; then
            USED_PORTS+="$p "
            printf -v "$1" '%s' "$p"
            return 0
        fi
    done
    fail "no free loopback port found"
}

# utime+stime (clock ticks) of a process and its direct children (nginx: master + workers).
# Fields 14 and 15 of /proc/PID/stat, counted after the ")" that closes the command name.
cpu_ticks() {
    local root=$1 total=0 pid rest f
    for pid in "$root" $(pgrep -P "$root" 2>/dev/null || true); do
        [[ -r /proc/$pid/stat ]] || continue
        rest=$(<"/proc/$pid/stat")
        rest=${rest##*) }
        # after "comm) " the fields start at #3 (state): utime is #14 -> index 11, stime -> 12
        read -r -a f <<<"$rest"
        total=$((total + f[11] + f[12]))
    done
    echo "$total"
}

# Busy ticks of the whole machine (all CPUs; idle and iowait excluded), from /proc/stat.
machine_busy_ticks() {
    local _cpu user nice system idle iowait irq softirq steal _rest
    read -r _cpu user nice system idle iowait irq softirq steal _rest </proc/stat
    echo $((user + nice + system + irq + softirq + steal))
}

machine_total_ticks() {
    local _cpu a t=0
    read -r _cpu a </proc/stat
    for x in $a; do t=$((t + x)); done
    echo "$t"
}

# Wait (bounded by --wait-quiet) until the machine is idle: other people's builds skew every row.
wait_quiet() {
    ((WAIT_QUIET > 0)) || return 0
    local deadline=$((SECONDS + WAIT_QUIET)) b0 t0 b1 t1 pct
    while :; do
        b0=$(machine_busy_ticks); t0=$(machine_total_ticks); sleep 1
        b1=$(machine_busy_ticks); t1=$(machine_total_ticks)
        pct=$(( (b1 - b0) * 100 / (t1 - t0 > 0 ? t1 - t0 : 1) ))
        ((pct < 10)) && return 0
        if ((SECONDS >= deadline)); then log "machine still ${pct}% busy after ${WAIT_QUIET}s; measuring anyway"; return 0; fi
        log "machine ${pct}% busy (other processes); waiting"
    done
}

wait_http() { # url expected-status seconds pid-to-watch
    local url=$1 want=$2 secs=$3 pid=$4 code
    for _ in $(seq $((secs * 10))); do
        kill -0 "$pid" 2>/dev/null || return 2
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$url" || true)
        [[ $code == "$want" ]] && return 0
        sleep 0.1
    done
    return 1
}

# ---------------------------------------------------------------- configs
free_port UP_PORT
free_port PP_PORT
free_port AR_PORT
# 63 characters + "\n" = a 64-byte body.
BODY='prt-gate load benchmark fixed upstream body 0123456789abcdefghi'
[[ ${#BODY} -eq 63 ]] || fail "internal: body is ${#BODY} bytes"

nginx_common() { # dir -> directives shared by every nginx instance (all paths inside its temp dir)
    local d=$1
    mkdir -p "$d/tmp"
    cat <<EOF
pid $d/nginx.pid;
error_log $d/error.log warn;
events { worker_connections 8192; }
EOF
}
nginx_http_common() {
    local d=$1
    cat <<EOF
    client_body_temp_path $d/tmp/body;
    proxy_temp_path       $d/tmp/proxy;
    fastcgi_temp_path     $d/tmp/fastcgi;
    uwsgi_temp_path       $d/tmp/uwsgi;
    scgi_temp_path        $d/tmp/scgi;
    default_type text/plain;
    keepalive_timeout 75s;
    keepalive_requests 100000000;
EOF
}

# The fixed upstream: one nginx worker, a 64-byte 200 for every path, 204 for the auth endpoint.
UP_DIR=$TMP/upstream; mkdir -p "$UP_DIR"
{
    echo "worker_processes 1;"
    nginx_common "$UP_DIR"
    echo "http {"
    nginx_http_common "$UP_DIR"
    cat <<EOF
    access_log off;
    server {
        listen 127.0.0.1:$UP_PORT;
        location = /_auth { return 204; }
        location / { return 200 "$BODY\n"; }
    }
}
EOF
} >"$UP_DIR/nginx.conf"

# Reverse-proxy directives shared by both nginx proxies: keep-alive to the upstream (as the gate
# pools its upstream connections) and the X-Forwarded-* headers the gate also sets.
proxy_block() {
    cat <<'EOF'
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-Host $host;
EOF
}
nginx_proxy_conf() { # dir port with-auth
    local d=$1 port=$2 auth=$3
    echo "worker_processes auto;"
    nginx_common "$d"
    echo "http {"
    nginx_http_common "$d"
    cat <<EOF
    access_log $d/access.log combined;
    upstream app {
        server 127.0.0.1:$UP_PORT;
        keepalive 256;
        keepalive_requests 100000000;
    }
    server {
        listen 127.0.0.1:$port;
EOF
    if ((auth)); then
        cat <<'EOF'
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
    fi
    echo "        location / {"
    ((auth)) && echo "            auth_request /_auth;"
    proxy_block
    cat <<'EOF'
        }
    }
}
EOF
}
PP_DIR=$TMP/nginx-proxy-pass; mkdir -p "$PP_DIR"
AR_DIR=$TMP/nginx-auth-request; mkdir -p "$AR_DIR"
nginx_proxy_conf "$PP_DIR" "$PP_PORT" 0 >"$PP_DIR/nginx.conf"
nginx_proxy_conf "$AR_DIR" "$AR_PORT" 1 >"$AR_DIR/nginx.conf"

# wrk reports through these scripts. Neither defines request() or response(), so wrk stays on
# its fast path (one pre-built request, no Lua per response).
cat >"$TMP/report.lua" <<'EOF'
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d duration_us=%d p50_us=%.0f p99_us=%.0f mean_us=%.1f max_us=%.0f " ..
    "err_connect=%d err_read=%d err_write=%d err_status=%d err_timeout=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    latency.mean, latency.max, e.connect, e.read, e.write, e.status, e.timeout))
end
EOF
# Half load without wrk2 (not packaged in Debian): every connection waits a random think time
# (uniform, mean = connections / rate) after each response, which holds the offered rate near
# `rate` and keeps the connections from firing in lock-step. wrk's delay() has 1 ms resolution.
cat "$TMP/report.lua" - >"$TMP/paced.lua" <<'EOF'
local n = 0
setup = function(thread) n = n + 1; thread:set("tid", n) end
local mean_ms = 0
init = function(args)
  mean_ms = tonumber(args[1])
  math.randomseed(os.time() * 1000 + tid)
end
delay = function() return math.floor(math.random() * 2 * mean_ms + 0.5) end
EOF

# ---------------------------------------------------------------- start everything
LAST_PID=
start_nginx() { # name dir url-to-wait-for expected-status; sets LAST_PID
    local name=$1 d=$2 url=$3 want=$4 pid
    nginx -t -q -e "$d/error.log" -p "$d" -c "$d/nginx.conf" 2>"$d/configtest.log" \
        || { cat "$d/configtest.log" >&2; fail "$name: nginx config test failed"; }
    nginx -e "$d/error.log" -p "$d" -c "$d/nginx.conf" -g 'daemon off;' >"$d/stdout.log" 2>&1 &
    pid=$!
    STARTED+=("$pid"); PNAME[$pid]=$name; PLOG[$pid]=$d/error.log
    if ! wait_http "$url" "$want" 10 "$pid"; then
        cat "$d/error.log" >&2 2>/dev/null || true
        fail "$name did not answer $want on $url within 10 s"
    fi
    LAST_PID=$pid
}

GATE_BIN=${BIN_OVERRIDE:-$ROOT/target/release/prt-gate}
if ((WITH_GATE)) && [[ -z $BIN_OVERRIDE ]]; then
    log "building prt-gate (release)"
    (cd "$ROOT" && cargo build --release --bin prt-gate) >&2 || fail "cargo build --release --bin prt-gate failed"
    [[ -x $GATE_BIN ]] || fail "$GATE_BIN missing after build"
fi

log "temp dir $TMP"
if [[ -n $NICE ]]; then
    # After the build: only the benchmark itself gets the priority.
    if [[ -n ${PRT_LOAD_SESSION:-} ]]; then
        echo "$NICE" >"/proc/$$/autogroup" || fail "cannot set autogroup niceness $NICE (negative values need root)"
        log "running in session $$, autogroup niceness $NICE"
        NICE_NOTE=" Upstream, proxies and wrk ran in a session of their own at autogroup niceness $NICE."
    else
        # Everything started from here on (upstream, proxies, wrk) inherits this niceness.
        renice -n "$NICE" -p $$ >/dev/null || fail "renice -n $NICE failed (negative values need root)"
        log "running at niceness $NICE"
        NICE_NOTE=" Upstream, proxies and wrk ran at niceness $NICE."
    fi
fi
start_nginx upstream "$UP_DIR" "http://127.0.0.1:$UP_PORT$REQ_PATH" 200; UP_PID=$LAST_PID
start_nginx "nginx proxy_pass" "$PP_DIR" "http://127.0.0.1:$PP_PORT$REQ_PATH" 200; PP_PID=$LAST_PID
start_nginx "nginx auth_request" "$AR_DIR" "http://127.0.0.1:$AR_PORT$REQ_PATH" 200; AR_PID=$LAST_PID
log "upstream :$UP_PORT (pid $UP_PID), nginx proxy_pass :$PP_PORT (pid $PP_PID), nginx auth_request :$AR_PORT (pid $AR_PID)"

if ((WITH_GATE)); then
    free_port GATE_PORT
    free_port GATE_ADMIN
    GATE_DIR=$TMP/gate; mkdir -p "$GATE_DIR"
    SSO_SECTION=
    if ((WITH_AUTH)); then
        # The dev SSO (barge2rail-auth contract) for the one login of the authenticated row. It
        # is idle during the measured runs: sessions live in the gate's memory store.
        free_port SSO_PORT
        "$GATE_BIN" dev-sso --listen "127.0.0.1:$SSO_PORT" >"$GATE_DIR/dev-sso.out" 2>"$GATE_DIR/dev-sso.err" &
        SSO_PID=$!
        STARTED+=("$SSO_PID"); PNAME[$SSO_PID]="prt-gate dev-sso"; PLOG[$SSO_PID]=$GATE_DIR/dev-sso.err
        wait_http "http://127.0.0.1:$SSO_PORT/o/.well-known/openid-configuration" 200 10 "$SSO_PID" \
            || { cat "$GATE_DIR/dev-sso.err" >&2; fail "prt-gate dev-sso did not start on :$SSO_PORT"; }
        SSO_SECTION=$(printf '[sso]\nbase_url = "http://127.0.0.1:%s"\nclient_id = "prt-gate-dev"\n' "$SSO_PORT")
    fi
    cat >"$GATE_DIR/gate.toml" <<EOF
[gate]
listen = "127.0.0.1:$GATE_PORT"
admin_listen = "127.0.0.1:$GATE_ADMIN"
upstream = "http://127.0.0.1:$UP_PORT"
public_url = "http://127.0.0.1:$GATE_PORT"

$SSO_SECTION

[session]
cookie_secure = false

EOF
    # Secrets come only from the environment (docs/design.md §9): the dev SSO's client secret and a
    # per-run assertion key.
    export PRT_GATE_SSO__CLIENT_SECRET=dev-secret
    PRT_GATE_ASSERTION__SECRET=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
    export PRT_GATE_ASSERTION__SECRET
    # The shipped policy (its [roles] and [[route]] tables only; the server sections above are
    # ours), so the gate decides each request against the real rule set.
    awk '/^\[/ { keep = ($0 ~ /^\[\[?(roles|route)[].]/) } keep' "$POLICY" >>"$GATE_DIR/gate.toml"
    "$GATE_BIN" check "$GATE_DIR/gate.toml" >"$GATE_DIR/check.log" 2>&1 \
        || { cat "$GATE_DIR/check.log" >&2; fail "prt-gate check rejected the benchmark config ($GATE_DIR/gate.toml)"; }
    # Access log stays on (honest numbers): JSON lines to a file, like nginx's access.log.
    "$GATE_BIN" serve --config "$GATE_DIR/gate.toml" >"$GATE_DIR/access.log" 2>"$GATE_DIR/stderr.log" &
    GATE_PID=$!
    STARTED+=("$GATE_PID"); PNAME[$GATE_PID]="prt-gate"; PLOG[$GATE_PID]=$GATE_DIR/stderr.log
    set +e
    wait_http "http://127.0.0.1:$GATE_ADMIN/healthz" 200 10 "$GATE_PID"
    ready=$?
    set -e
    if ((ready == 2)); then
        tail -n 30 "$GATE_DIR/stderr.log" "$GATE_DIR/access.log" >&2 || true
        fail "prt-gate exited during start-up"
    elif ((ready == 1)); then
        log "prt-gate: admin /healthz did not answer 200 within 10 s; falling back to the listen port"
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$GATE_PORT$REQ_PATH" || true)
        [[ $code != 000 ]] || { tail -n 30 "$GATE_DIR/stderr.log" >&2 || true; fail "prt-gate not listening on :$GATE_PORT"; }
    fi
    log "prt-gate :$GATE_PORT admin :$GATE_ADMIN (pid $GATE_PID)"
fi

SESSION_COOKIE=
if ((WITH_AUTH)); then
    # One real login through the gate, as a browser does it: /auth/login/ → dev SSO authorize
    # (login_hint skips the user picker) → /auth/callback/ sets the session cookie → next.
    jar=$TMP/gate/cookies.txt
    code=$(curl -s -L --max-redirs 5 --max-time 10 -c "$jar" -b "$jar" -o "$TMP/gate/login.body" -w '%{http_code}' \
        "http://127.0.0.1:$GATE_PORT/auth/login/?next=$AUTH_PATH&login_hint=$AUTH_USER" || true)
    SESSION_COOKIE=$(awk -F'\t' 'NF >= 7 && $6 ~ /(^|__Host-)prt_session$/ {print $6 "=" $7}' "$jar" 2>/dev/null | tail -n 1)
    if [[ -z $SESSION_COOKIE ]]; then
        log "login as $AUTH_USER ended with status $code and no session cookie; body:"
        head -c 300 "$TMP/gate/login.body" >&2 || true; echo >&2
        tail -n 20 "$GATE_DIR/stderr.log" "$GATE_DIR/dev-sso.err" >&2 || true
        fail "could not log in through the gate (use --no-auth to skip the authenticated row)"
    fi
    log "logged in as $AUTH_USER (session cookie ${SESSION_COOKIE%%=*})"
fi

# Rows. ROW_PID is the process whose CPU is charged ("-": upstream direct is the reference);
# ROW_HDR is an extra request header (the session cookie).
ROW_NAME=("upstream direct (no proxy)" "nginx proxy_pass (no auth)" "nginx auth_request (204 subrequest)")
ROW_PORT=("$UP_PORT" "$PP_PORT" "$AR_PORT")
ROW_PID=(- "$PP_PID" "$AR_PID")
ROW_PATH=("$REQ_PATH" "$REQ_PATH" "$REQ_PATH")
ROW_HDR=("" "" "")
if ((WITH_GATE)); then
    ROW_NAME+=("prt-gate (public route, no session)"); ROW_PORT+=("$GATE_PORT"); ROW_PID+=("$GATE_PID")
    ROW_PATH+=("$REQ_PATH"); ROW_HDR+=("")
fi
if ((WITH_AUTH)); then
    ROW_NAME+=("prt-gate (authenticated, session cookie)"); ROW_PORT+=("$GATE_PORT"); ROW_PID+=("$GATE_PID")
    ROW_PATH+=("$AUTH_PATH"); ROW_HDR+=("Cookie: $SESSION_COOKIE")
fi

# Pre-flight: every row must answer exactly 200 with the upstream's body (a 302 to login or a
# 403 would be "fast" and meaningless; wrk itself only counts statuses >= 400 as errors).
for i in "${!ROW_NAME[@]}"; do
    hargs=(); [[ -z ${ROW_HDR[$i]} ]] || hargs=(-H "${ROW_HDR[$i]}")
    out=$(curl -s "${hargs[@]}" -D "$TMP/preflight.h" --max-time 5 "http://127.0.0.1:${ROW_PORT[$i]}${ROW_PATH[$i]}" || true)
    code=$(awk 'NR==1{print $2}' "$TMP/preflight.h" 2>/dev/null || true)
    if [[ $code != 200 || $out != "$BODY" ]]; then
        log "pre-flight ${ROW_NAME[$i]}: GET ${ROW_PATH[$i]} -> status '${code:-none}'"
        sed 's/^/[load]   /' "$TMP/preflight.h" >&2 || true
        printf '[load]   body: %s\n' "${out:0:300}" >&2
        fail "${ROW_NAME[$i]} does not answer 200 with the upstream body on ${ROW_PATH[$i]}"
    fi
done

# ---------------------------------------------------------------- measure
FAILED=0
declare -A R   # R[<row>,<phase>,<metric>]

run_wrk() { # idx phase script [script-args...]; url, pid and header come from the ROW_* arrays
    local i=$1 phase=$2 script=$3; shift 3
    local url=http://127.0.0.1:${ROW_PORT[$i]}${ROW_PATH[$i]} pid=${ROW_PID[$i]} hargs=()
    [[ -z ${ROW_HDR[$i]} ]] || hargs=(-H "${ROW_HDR[$i]}")
    local out before after up_before up_after m_before m_after line kv errs wrk_cpu rc
    local wout=$TMP/wrk-$i-$phase.txt TIMEFORMAT='%3U %3S'
    wait_quiet
    wrk -t "$THREADS" -c "$CONNECTIONS" -d "$WARMUP" "${hargs[@]}" -s "$script" "$url" -- "$@" >/dev/null 2>&1 || true
    before=0; [[ $pid != - ]] && before=$(cpu_ticks "$pid")
    up_before=$(cpu_ticks "$UP_PID")
    m_before=$(machine_busy_ticks)
    # `time` (the bash keyword) reports wrk's own CPU, so the rest of the machine's busy time can
    # be attributed to other processes (a concurrent build makes every number here noisy).
    set +e
    { time wrk -t "$THREADS" -c "$CONNECTIONS" -d "$DURATION" --timeout 5s "${hargs[@]}" -s "$script" "$url" -- "$@" >"$wout" 2>&1; } 2>"$wout.time"
    rc=$?
    set -e
    m_after=$(machine_busy_ticks)
    up_after=$(cpu_ticks "$UP_PID")
    after=0; [[ $pid != - ]] && after=$(cpu_ticks "$pid")
    out=$(<"$wout")
    check_alive "the $phase-load run against $url"
    ((rc == 0)) || { echo "$out" >&2; fail "wrk failed against $url"; }
    wrk_cpu=$(tail -n 1 "$wout.time" | awk -v hz="$CLK_TCK" '{printf "%.0f", ($1 + $2) * hz}')
    line=$(grep '^RESULT ' <<<"$out") || { echo "$out" >&2; fail "no RESULT line from wrk"; }
    for kv in ${line#RESULT }; do R[$i,$phase,${kv%%=*}]=${kv#*=}; done
    ((R[$i,$phase,duration_us] >= DURATION_US * 9 / 10)) \
        || fail "wrk stopped after $((R[$i,$phase,duration_us] / 1000)) ms of $DURATION against $url (interrupted?)"
    R[$i,$phase,ticks]=$((after - before))
    R[$i,$phase,up_ticks]=$((up_after - up_before))
    # Share of the machine (all CPUs over the run) used by processes other than the proxy, the
    # upstream and wrk.
    R[$i,$phase,other_pct]=$(awk -v m=$((m_after - m_before)) -v ours=$((after - before + up_after - up_before + wrk_cpu)) \
        -v us="${R[$i,$phase,duration_us]}" -v hz="$CLK_TCK" -v n="$(nproc)" \
        'BEGIN{o = (m - ours) / (us / 1e6 * hz * n) * 100; if (o < 0) o = 0; printf "%.0f", o}')
    R[$i,$phase,non2xx]=$(awk -F': *' '/Non-2xx or 3xx responses/{print $2}' <<<"$out")
    errs=$((R[$i,$phase,err_connect] + R[$i,$phase,err_read] + R[$i,$phase,err_write] + R[$i,$phase,err_status] + R[$i,$phase,err_timeout]))
    if [[ -n ${R[$i,$phase,non2xx]} ]] || ((errs > 0 || R[$i,$phase,requests] == 0)); then
        FAILED=1
        log "ERROR: $phase-load run against $url: requests=${R[$i,$phase,requests]} non-2xx/3xx=${R[$i,$phase,non2xx]:-0}" \
            "connect=${R[$i,$phase,err_connect]} read=${R[$i,$phase,err_read]} write=${R[$i,$phase,err_write]}" \
            "status>=400=${R[$i,$phase,err_status]} timeout=${R[$i,$phase,err_timeout]}"
        sed 's/^/[load]   /' <<<"$out" >&2
    fi
}

rps() { awk -v n="$1" -v us="$2" 'BEGIN{printf "%.0f", n / (us / 1e6)}'; }
cpu_us() { awk -v t="$1" -v hz="$CLK_TCK" -v n="$2" 'BEGIN{printf "%.1f", t * 1e6 / hz / n}'; }

PP=1  # index of nginx proxy_pass: the reference for ratios and for the half-load rate
for i in "${!ROW_NAME[@]}"; do
    log "full load: ${ROW_NAME[$i]} (wrk -t$THREADS -c$CONNECTIONS, $WARMUP warm-up + $DURATION)"
    run_wrk "$i" full "$TMP/report.lua"
    R[$i,full,rps]=$(rps "${R[$i,full,requests]}" "${R[$i,full,duration_us]}")
done
RATE=${RATE:-$((R[$PP,full,rps] / 2))}
THINK_MS=$(awk -v c="$CONNECTIONS" -v r="$RATE" 'BEGIN{printf "%.3f", c * 1000 / r}')
for i in "${!ROW_NAME[@]}"; do
    log "half load: ${ROW_NAME[$i]} (~$RATE req/s offered: wrk -t$THREADS -c$CONNECTIONS, mean think time $THINK_MS ms)"
    run_wrk "$i" half "$TMP/paced.lua" "$THINK_MS"
    R[$i,half,rps]=$(rps "${R[$i,half,requests]}" "${R[$i,half,duration_us]}")
done

# ---------------------------------------------------------------- report
for i in "${!ROW_NAME[@]}"; do
    for ph in full half; do
        R[$i,$ph,cpu]=-
        [[ ${ROW_PID[$i]} == - ]] || R[$i,$ph,cpu]=$(cpu_us "${R[$i,$ph,ticks]}" "${R[$i,$ph,requests]}")
        R[$i,$ph,up_cpu]=$(cpu_us "${R[$i,$ph,up_ticks]}" "${R[$i,$ph,requests]}")
    done
done
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b == 0) print "-"; else printf "%.2f×", a / b }'; }
num() { sed ':a;s/\B[0-9]\{3\}\>/,&/;ta' <<<"$1"; }
lat() { awk -v us="$1" 'BEGIN{ if (us < 1000) printf "%d µs", us; else printf "%.2f ms", us / 1000 }'; }
added() { printf '%+d µs' "$(($1 - $2))"; }

AUTH_NOTE=
((WITH_AUTH == 0)) || AUTH_NOTE=" (authenticated row: \`GET $AUTH_PATH\` with the session cookie of $AUTH_USER)"
gate_rev=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo "no commit yet")
[[ -z $BIN_OVERRIDE ]] || gate_rev="$gate_rev (binary $BIN_OVERRIDE)"
cat <<TABLE

### Load benchmark — $(date -u '+%Y-%m-%d %H:%M UTC'), nproc $(nproc), kernel $(uname -r)

nginx $(nginx -v 2>&1 | sed 's/.*nginx\///'), $(wrk -v 2>&1 | head -1 | awk '{print "wrk " $2}'), prt-gate @ $gate_rev.
Every row: \`GET $REQ_PATH\`$AUTH_NOTE, a 64-byte 200 from the same upstream (nginx, 1 worker).
Full load: \`wrk -t$THREADS -c$CONNECTIONS -d$DURATION\` after a $WARMUP warm-up.
Half load: $RATE req/s offered to every row (half of nginx proxy_pass's full-load rate unless --rate), $CONNECTIONS connections with random think time.
Ratios in parentheses are against nginx proxy_pass.${NICE_NOTE:-}

| proxy | requests/s | p50 | p99 | CPU/request, proxy | CPU/request, upstream | added p99 at half load |
|---|---:|---:|---:|---:|---:|---:|
TABLE
for i in "${!ROW_NAME[@]}"; do
    name=${ROW_NAME[$i]}
    r=${R[$i,full,rps]} p50=${R[$i,full,p50_us]} p99=${R[$i,full,p99_us]} cpu=${R[$i,full,cpu]}
    if ((i == 0)); then
        printf '| %s | %s | %s | %s | — | %s µs | (reference: p99 %s) |\n' "$name" "$(num "$r")" \
            "$(lat "$p50")" "$(lat "$p99")" "${R[$i,full,up_cpu]}" "$(lat "${R[0,half,p99_us]}")"
    else
        printf '| %s | %s (%s) | %s (%s) | %s (%s) | %s µs (%s) | %s µs | %s |\n' "$name" \
            "$(num "$r")" "$(ratio "$r" "${R[$PP,full,rps]}")" \
            "$(lat "$p50")" "$(ratio "$p50" "${R[$PP,full,p50_us]}")" \
            "$(lat "$p99")" "$(ratio "$p99" "${R[$PP,full,p99_us]}")" \
            "$cpu" "$(ratio "$cpu" "${R[$PP,full,cpu]}")" "${R[$i,full,up_cpu]}" \
            "$(added "${R[$i,half,p99_us]}" "${R[0,half,p99_us]}")"
    fi
done
((WITH_GATE)) || echo "| prt-gate | not run (--no-gate) | | | | | |"
((WITH_GATE == 0 || WITH_AUTH)) || echo "| prt-gate (authenticated, session cookie) | not run (--no-auth) | | | | | |"
cat <<TABLE

Half load ($RATE req/s offered; wrk2 is not packaged in Debian, so wrk paces itself with think time):

| proxy | requests/s | share of its full-load rate | p50 | p99 | added p50 | added p99 | CPU/request, proxy |
|---|---:|---:|---:|---:|---:|---:|---:|
TABLE
for i in "${!ROW_NAME[@]}"; do
    name=${ROW_NAME[$i]}
    share=$(awk -v a="${R[$i,half,rps]}" -v b="${R[$i,full,rps]}" 'BEGIN{printf "%.0f%%", 100 * a / b}')
    cpu=${R[$i,half,cpu]}; [[ $cpu == - ]] || cpu="$cpu µs"
    printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "$name" "$(num "${R[$i,half,rps]}")" "$share" \
        "$(lat "${R[$i,half,p50_us]}")" "$(lat "${R[$i,half,p99_us]}")" \
        "$(added "${R[$i,half,p50_us]}" "${R[0,half,p50_us]}")" "$(added "${R[$i,half,p99_us]}" "${R[0,half,p99_us]}")" "$cpu"
done
echo
echo "CPU/request = (utime + stime after − before the measured wrk run, from /proc/PID/stat; nginx: master + workers)" \
     "/ requests wrk completed; clock tick $((1000000 / CLK_TCK)) µs."
if ((WITH_GATE)); then
    echo "prt-gate access log on: $(num "$(wc -l <"$GATE_DIR/access.log")") JSON lines written to a file during the run."
fi

noisy=""
for i in "${!ROW_NAME[@]}"; do
    for ph in full half; do
        ((R[$i,$ph,other_pct] < 5)) || noisy+=" ${ROW_NAME[$i]} ($ph load): ${R[$i,$ph,other_pct]}%;"
    done
done
if [[ -n $noisy ]]; then
    echo "**Noisy run** — share of the machine used by other processes during the measured runs:${noisy%;}."
else
    echo "Quiet machine: other processes used < 5% of the CPU during every measured run."
fi

((FAILED == 0)) || fail "at least one run had non-2xx/3xx responses or socket errors (details above)"
log "done"
