#!/usr/bin/env bash
# Soak test (issue 9): the release gate at about half of its measured capacity for
# N minutes (default 10) with logins, API calls, media redirects and logouts mixed;
# RSS, open file descriptors and error counts sampled every 10 s (a markdown table on
# stdout). Fails if any request errors or RSS grows more than 5 % after the warm-up
# (the first fifth of the run, at most 60 s).
#
#   bash benches/soak/run.sh                 # 10 minutes
#   bash benches/soak/run.sh --minutes 1     # short variant
#   bash benches/soak/run.sh --workers 32    # more concurrent browser sessions (default 16)
#   bash benches/soak/run.sh --debug --minutes 1   # CI's smoke variant: debug build, 1 minute
#
# Everything runs on 127.0.0.1 with free ports in a temporary directory: the gate
# (memory sessions, the shipped policy.toml), `prt-gate dev-sso`, and an in-process
# upstream inside the driver (examples/soak.rs). Exit status 0 pass, 1 fail, 2 usage.
set -euo pipefail
cd "$(dirname "$0")/../.."
minutes=10 workers=16 profile=release
while (($#)); do
  case "$1" in
    --minutes) minutes=${2:?}; shift 2 ;;
    --workers) workers=${2:?}; shift 2 ;;
    --debug) profile=debug; shift ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "soak: unknown argument $1" >&2; exit 2 ;;
  esac
done
target=${CARGO_TARGET_DIR:-target}
if [ "$profile" = release ]; then
  cargo build --release --quiet --bin prt-gate --example soak
else
  cargo build --quiet --bin prt-gate --example soak
fi
target=$(cd "$target" && pwd)   # absolute: the driver starts the gate in a temp directory
exec "$target/$profile/examples/soak" --gate-bin "$target/$profile/prt-gate" --minutes "$minutes" --workers "$workers"
