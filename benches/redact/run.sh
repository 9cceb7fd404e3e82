#!/usr/bin/env bash
# `prt-gate redact` throughput on a realistic Django log corpus, side by side
# with `sed -E` running the same detectors as substitutions (docs/design.md §15:
# ≥ 300 MB/s with all built-in detectors). Generates the corpus at run time
# in a temporary directory (nothing large is committed), prints a markdown
# table on stdout, progress on stderr.
#
#   bash benches/redact/run.sh            # ~128 MB corpus, best of 3 runs each
#   bash benches/redact/run.sh --mb 512   # corpus size
#   bash benches/redact/run.sh --runs 5
#   bash benches/redact/run.sh --bin /tmp/old/prt-gate   # measure another build
#
# MB/s per core = corpus size / CPU time (user + sys, best run): the number that holds on a
# shared machine, where wall time also counts waiting for a core.
set -euo pipefail
cd "$(dirname "$0")/../.."
mb=128
runs=3
bin=
while [ $# -gt 0 ]; do
  case "$1" in
    --mb) mb="$2"; shift 2 ;;
    --runs) runs="$2"; shift 2 ;;
    --bin) bin=$(readlink -f "$2"); shift 2 ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
target=${CARGO_TARGET_DIR:-target}
if [ -z "$bin" ]; then
  echo "building release binary" >&2
  cargo build --release --bin prt-gate >&2
  bin="$(cd "$target/release" && pwd)/prt-gate"
fi
: > "$tmp/empty.toml"   # built-in detectors only

echo "generating a ${mb} MB corpus" >&2
python3 - "$tmp/corpus.log" "$mb" <<'PY'
import random, sys
path, mb = sys.argv[1], int(sys.argv[2])
rnd = random.Random(7)
def tok(n):
    return "".join(rnd.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-") for _ in range(n))
paths = ["/api/releases/open/", "/api/history/", "/api/bol/%d/download/", "/api/products/", "/client.html",
         "/api/client/shipments/", "/static/app.js", "/api/user/context/", "/office.html", "/api/balances/"]
agents = ["Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36",
          "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0", "python-requests/2.31.0"]
def clean():
    r = rnd.random()
    p = rnd.choice(paths)
    if "%d" in p:
        p = p % rnd.randint(1, 99999)
    if r < 0.6:
        q = "?page=%d" % rnd.randint(1, 40) if rnd.random() < 0.3 else ""
        return '10.%d.%d.%d - - [27/Nov/2026:10:%02d:%02d +0000] "GET %s%s HTTP/1.1" %d %d "https://prt.barge2rail.com/office.html" "%s"' % (
            rnd.randint(0, 255), rnd.randint(0, 255), rnd.randint(0, 255), rnd.randint(0, 59), rnd.randint(0, 59),
            p, q, rnd.choice([200, 200, 200, 302, 404]), rnd.randint(100, 90000), rnd.choice(agents))
    if r < 0.8:
        return "INFO 2026-11-27 10:%02d:%02d,%03d views %d %d BOL PRT-2025-%04d created for release %d by %s@example.com" % (
            rnd.randint(0, 59), rnd.randint(0, 59), rnd.randint(0, 999), rnd.randint(1, 99), rnd.randint(100000, 999999),
            rnd.randint(1, 9999), rnd.randint(1000, 9999), rnd.choice(["office", "admin", "client", "operator"]))
    if r < 0.9:
        return 'WARNING 2026-11-27 10:00:00,123 log %d %d Not Found: %s' % (rnd.randint(1, 99), rnd.randint(1, 9999), p)
    return '  File "/app/primetrade_project/api/views.py", line %d, in %s' % (rnd.randint(1, 900), rnd.choice(["get", "post", "list"]))
def secret():
    a, b = tok(30), tok(30)
    return rnd.choice([
        "DEBUG 2026-11-27 10:00:00,123 auth_views Session data: {'sso_access_token': '%s', 'sso_refresh_token': '%s', 'primetrade_role': {'role': 'Office', 'permissions': []}}" % (a, b),
        "DEBUG 2026-11-27 10:00:00,123 auth_views dict_items([('sso_access_token', '%s'), ('sso_refresh_token', '%s'), ('tenant_id', 'primetrade')])" % (a, b),
        'DEBUG request headers: {"Cookie": "csrftoken=%s; sessionid=%s", "Host": "prt.barge2rail.com"}' % (a, b),
        "DEBUG calling SSO with Authorization: Bearer %s" % a,
        '10.0.0.1 - - [27/Nov/2026:10:00:00 +0000] "GET /auth/callback/?code=%s&state=%s HTTP/1.1" 302 0 "-" "%s"' % (a, b, agents[0]),
        "INFO token response {\"access_token\": \"%s\", \"refresh_token\": \"%s\", \"id_token\": \"eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIx%s.%s\"}" % (a, b, a, b),
        "DEBUG redirect https://bucket.s3.us-east-2.amazonaws.com/bols/2025/PRT-2025-0002.pdf?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%%2F20261127%%2Fus-east-2%%2Fs3%%2Faws4_request&X-Amz-Date=20261127T100000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host&X-Amz-Signature=%s" % a,
        "ERROR connecting to redis://default:%s@redis.internal:6379/0" % a,
    ])
lines = [secret() if rnd.random() < 0.05 else clean() for _ in range(20000)]
block = ("\n".join(lines) + "\n").encode()
with open(path, "wb") as f:
    for _ in range(max(1, (mb << 20) // len(block))):
        f.write(block)
PY
size=$(stat -c %s "$tmp/corpus.log")

# The same detectors as sed substitutions (GNU sed, ERE, byte locale).
sed_script="$tmp/redact.sed"
cat > "$sed_script" <<'SED'
s/(-----BEGIN ([A-Z0-9]+ )*PRIVATE KEY-----).*/\1[REDACTED:private_key]/
s/((X-Amz-(Signature|Credential|Security-Token)|Signature|Credential)=)[^&[:space:]"'#,<>]+/\1[REDACTED:sigv4]/gI
s/(^|[?&;#[:space:]"'(,{])(code|state|session_state|access_token|refresh_token|id_token|id_token_hint|token|client_secret|code_verifier|client_assertion|assertion)=[^&[:space:]"'#;,)<>]+/\1\2=[REDACTED:oauth]/gI
s/((^|[^a-z0-9-])(set-)?cookies?["']?[ 	]*[:=][ 	]*["']?)[^"'\r]+/\1[REDACTED:cookie]/gI
s/(bearer[ 	]+)[A-Za-z0-9._~+\/=-]{8,}/\1[REDACTED:bearer]/gI
s/((^|[^a-z0-9-])(proxy-)?authorization["']?[ 	]*[:=][ 	]*["']?((basic|bearer|token|digest|negotiate)[ 	]+)?)[^"'\r]+/\1[REDACTED:authorization]/gI
s/(aws_?secret_?(access_?)?key["']?[ 	]*[:=][ 	]*)[^[:space:]"',;&]+/\1[REDACTED:aws_secret]/gI
s/(["'][A-Za-z0-9_.-]*(token|secret|passw(or)?d|pwd|session|api[_-]?key|private[_-]?key|auth[_-]?key)[A-Za-z0-9_.-]*["'][ 	]*[:,][ 	]*b?["'])[^"']+/\1[REDACTED:secret]/gI
s/(^|[^A-Za-z0-9_.-])([A-Za-z0-9_.-]*(token|secret|passw(or)?d|pwd|session|api[_-]?key|private[_-]?key|auth[_-]?key)[A-Za-z0-9_.-]*(=|:[ 	]*))[^[:space:]&;,"'<>(){}]+/\1\2[REDACTED:secret]/gI
s/eyJ[A-Za-z0-9_-]{4,}\.eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*/[REDACTED:jwt]/g
s/(AKIA|ASIA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA|ABIA|ACCA)[A-Z0-9]{16}/[REDACTED:aws_key_id]/g
s/([a-z][a-z0-9+.-]*:\/\/[^\/@[:space:]:"'<>]*:)[^\/@[:space:]"'<>]+@/\1[REDACTED:userinfo]@/gI
SED

best() { # best wall time and best CPU time (user + sys) in seconds of "$@" < corpus > /dev/null
  local b="" c="" TIMEFORMAT='%3R %3U %3S'
  for _ in $(seq "$runs"); do
    local t u s
    { time "$@" < "$tmp/corpus.log" > /dev/null; } 2> "$tmp/time"
    read -r t u s < "$tmp/time"
    u=$(echo "$u + $s" | bc -l)
    if [ -z "$b" ] || [ "$(echo "$t < $b" | bc -l)" = 1 ]; then b=$t; fi
    if [ -z "$c" ] || [ "$(echo "$u < $c" | bc -l)" = 1 ]; then c=$u; fi
  done
  echo "$b $c"
}
mbps() { echo "scale=1; $size / 1048576 / $1" | bc -l; }

echo "checking output" >&2
"$bin" redact --config "$tmp/empty.toml" < "$tmp/corpus.log" > "$tmp/out.log"
in_lines=$(wc -l < "$tmp/corpus.log"); out_lines=$(wc -l < "$tmp/out.log")
[ "$in_lines" = "$out_lines" ] || { echo "line count differs: $in_lines → $out_lines" >&2; exit 1; }
redacted=$(grep -c 'REDACTED' "$tmp/out.log" || true)

echo "measuring ($runs runs each)" >&2
read -r t_cat _ <<< "$(best cat)"
read -r t_gate c_gate <<< "$(best "$bin" redact --config "$tmp/empty.toml")"
read -r t_sed c_sed <<< "$(LC_ALL=C best sed -E -f "$sed_script")"
gate=$(mbps "$t_gate"); sed_=$(mbps "$t_sed"); cat_=$(mbps "$t_cat")
gate_cpu=$(mbps "$c_gate"); sed_cpu=$(mbps "$c_sed")
ratio=$(echo "scale=1; $c_sed / $c_gate" | bc -l)

echo "| tool | MB/s per core (CPU time) | MB/s (wall) | vs sed (CPU) |"
echo "|---|---:|---:|---:|"
echo "| \`prt-gate redact\` (release, all built-in detectors) | $gate_cpu | $gate | ${ratio}× |"
echo "| \`sed -E\` (GNU sed, same 12 detectors, LC_ALL=C) | $sed_cpu | $sed_ | 1.0× |"
echo "| \`cat\` (pipe floor) | | $cat_ | |"
echo
echo "corpus: $(echo "scale=1; $size / 1048576" | bc -l) MB, $in_lines lines, $redacted with a redaction; $(nproc) cores, $(uname -m); best of $runs"
