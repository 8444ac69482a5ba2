#!/usr/bin/env bash
# Runs every benchmark several times and prints benchstat's table of medians.
#
# Usage: scripts/bench.sh [PACKAGE_PATTERN...]    (default: every package that has benchmarks)
# Environment: COUNT (runs per benchmark, default 6), BENCHTIME (default 1s), BENCH (-bench regexp).
#
# Each benchmark reports its floor beside it (for example MD5 over the same bytes), so the table
# shows how far each result is from what cannot be avoided. Raw output is kept in
# .bench/latest.txt for comparisons with benchstat OLD NEW.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
count=${COUNT:-6}
benchtime=${BENCHTIME:-1s}
filter=${BENCH:-.}
mkdir -p .bench
out=.bench/latest.txt
: >"$out"

if [ $# -gt 0 ]; then
  pkgs=("$@")
else
  mapfile -t pkgs < <(grep -l '^func Benchmark' --include='*_test.go' -r . | grep -v '^./bench/' |
    xargs -n1 dirname | sort -u)
fi
for p in "${pkgs[@]}"; do
  echo "bench: $p" >&2
  go test -run='^$' -bench="$filter" -benchmem -count="$count" -benchtime="$benchtime" "$p" | tee -a "$out" >/dev/null
done
if grep -rq '^func Benchmark' --include='*_test.go' bench; then
  echo "bench: bench/..." >&2
  # bench/fleet runs whole fleets for minutes per configuration; it has its own command
  # (bench/fleet/README.md).
  (cd bench && go test -run='^$' -bench="$filter" -benchmem -count="$count" -benchtime="$benchtime" $(go list ./... | grep -v '/fleet$')) | tee -a "$out" >/dev/null
fi
(cd bench && go tool benchstat "medians=$root/$out")
