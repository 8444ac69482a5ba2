#!/usr/bin/env bash
# Runs every fuzz target of the repository, one after the other, each for FUZZTIME. Targets are
# found afresh each run (every `func FuzzXxx(` in a _test.go file, in this module and in any
# nested one such as bench/), so a new target is fuzzed without anyone editing this script.
#
# Usage: scripts/fuzz.sh [list]     (make fuzz runs it)
#   list      print the targets, one "PACKAGE TARGET" line each, and fuzz nothing
#   FUZZTIME  how long each target runs (default 30s); FUZZ, a regexp, picks targets by name
#   GO        the go command (default: go)
#
# Every target runs even when one fails; the failures are listed at the end and the exit status
# is 1. A failing input is saved by go test under the package's testdata/fuzz/, where it then
# runs as a regression case in every plain go test.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
GO=${GO:-go}
fuzztime=${FUZZTIME:-30s}
pick=${FUZZ:-.}

# targets: "DIR NAME" for every fuzz target, sorted.
targets() {
  grep -rE --include='*_test.go' --exclude-dir=testdata --exclude-dir=node_modules --exclude-dir=.git \
    -o '^func Fuzz[A-Za-z0-9_]*\(' . |
    sed -E 's|^\./(.*)/[^/]*_test\.go:func (Fuzz[A-Za-z0-9_]*)\($|\1 \2|; s|^\./[^/]*_test\.go:func (Fuzz[A-Za-z0-9_]*)\($|. \1|' |
    sort -u | while read -r dir name; do
      if [[ $name =~ $pick ]]; then echo "$dir $name"; fi
    done
}

# module_of DIR: the directory of the go.mod nearest above DIR.
module_of() {
  local d=$1
  while [ ! -f "$d/go.mod" ]; do
    [ "$d" != "." ] || { echo .; return; }
    d=$(dirname "$d")
  done
  echo "$d"
}

list=$(targets)
[ -n "$list" ] || { echo "fuzz: no fuzz target matches FUZZ=$pick" >&2; exit 1; }
if [ "${1:-}" = list ]; then
  echo "$list"
  exit 0
fi

n=$(wc -l <<<"$list")
echo "fuzz: $n targets, $fuzztime each" >&2
failed=()
i=0
while read -r dir name; do
  i=$((i + 1))
  mod=$(module_of "$dir")
  rel=${dir#"$mod"}
  rel=./${rel#/}
  echo "fuzz: [$i/$n] $name in $dir" >&2
  # -run=^$ skips the package's other tests; the seed corpus still runs as part of fuzzing.
  if ! (cd "$mod" && "$GO" test -run='^$' -fuzz="^${name}\$" -fuzztime="$fuzztime" "$rel"); then
    failed+=("$dir $name")
  fi
done <<<"$list"

if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: ${#failed[@]} of $n targets failed:" >&2
  printf '  %s\n' "${failed[@]}" >&2
  exit 1
fi
echo "fuzz: all $n targets passed" >&2
