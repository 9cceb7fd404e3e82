#!/usr/bin/env bash
# Rebuilds deploy/prt-gate.toml: its settings part (up to the "==== rules" marker line)
# followed by the rules of policy.toml (from its first [roles] line to the end).
# CI checks the result is identical (tests/it/deployment.rs).
set -euo pipefail
cd "$(dirname "$0")/.."
out=deploy/prt-gate.toml
tmp=$(mktemp)
sed '/^# ==== rules:/q' "$out" > "$tmp"
echo >> "$tmp"
sed -n '/^\[roles\]/,$p' policy.toml >> "$tmp"
mv "$tmp" "$out"
