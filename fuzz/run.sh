#!/usr/bin/env bash
# Runs every fuzz target for N seconds each (default 30) and prints the executions per
# target. Seeds come from fuzz/seeds/<target>/ (committed: the shared open-redirect
# corpus for `next`, CVE-shaped paths for `normalize`, …); new inputs libFuzzer finds
# go to fuzz/corpus/<target>/ (not committed). A crash or a broken invariant stops the
# run with exit 1 and leaves the input in fuzz/artifacts/<target>/.
#
#   bash fuzz/run.sh               # 30 s per target
#   bash fuzz/run.sh 600           # the long run whose numbers go in docs/RELIABILITY.md
#   bash fuzz/run.sh 60 next jwt   # some targets only
#
# cargo-fuzz on the stable toolchain: RUSTC_BOOTSTRAP=1 lets it pass its -Z flags.
# No sanitizer (-s none): the crate forbids `unsafe`, so ASan would find nothing the
# invariants do not, at a third of the speed.
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-30}
targets=(normalize policy next session_id jwt redact)
(($# > 1)) && targets=("${@:2}")
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="$PWD/target"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
cargo fuzz build -s none
printf '| target | seconds | executions | exec/s | corpus | result |\n|---|---:|---:|---:|---:|---|\n'
status=0
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t"
  extra=()
  [ -f "$t.dict" ] && extra+=("-dict=$t.dict")
  log=$(mktemp)
  if cargo fuzz run -s none "$t" "corpus/$t" "seeds/$t" -- -max_total_time="$secs" -print_final_stats=1 \
       -timeout=10 -rss_limit_mb=2048 "${extra[@]}" >"$log" 2>&1; then
    result=ok
  else
    result=FAILED; status=1
    tail -40 "$log" >&2
  fi
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo 0)
  speed=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo 0)
  corpus=$(ls "corpus/$t" | wc -l)
  printf '| %s | %s | %s | %s | %s | %s |\n' "$t" "$secs" "${execs:-0}" "${speed:-0}" "$corpus" "$result"
  rm -f "$log"
done
exit $status
