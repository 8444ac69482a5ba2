#!/usr/bin/env bash
# Builds the release archives into dist/:
#   shardline_VERSION_OS_ARCH.tar.gz for linux/amd64, linux/arm64 and darwin/arm64, each holding
#   shardline, shardline-agent and shardline-demo (static: CGO_ENABLED=0), LICENSE, NOTICE,
#   README.md, CHANGELOG.md, the systemd unit, and THIRD_PARTY_LICENSES/ with the licence and
#   notice files of the Go toolchain and of every module linked into that platform's binaries;
#   SHA256SUMS, the sha256sum lines of the archives (check with sha256sum -c SHA256SUMS).
#
# Usage: scripts/release.sh   (make release runs it)
#   VERSION   the version stamped into every binary (default: git describe --tags --always --dirty)
#   PLATFORMS space-separated GOOS/GOARCH pairs (default: the three above)
#   GO        the go command (default: go)
#
# Archives are reproducible: file times are the commit's time, owners are root, entries sorted,
# and gzip records no name or time.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
GO=${GO:-go}
VERSION=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo devel)}
PLATFORMS=${PLATFORMS:-"linux/amd64 linux/arm64 darwin/arm64"}
cmds=(./cmd/shardline ./cmd/shardline-agent ./cmd/shardline-demo)
dist="$root/dist"
mtime=$(git log -1 --format=%ct 2>/dev/null || date +%s)

die() { echo "release: $*" >&2; exit 1; }
case $VERSION in
  *[!A-Za-z0-9._+-]*) die "VERSION $VERSION: only letters, digits and . _ + - may be used in a file name" ;;
esac
for f in LICENSE NOTICE README.md CHANGELOG.md packaging/shardline-agent.service; do
  [ -f "$f" ] || die "$f is missing"
done

# third_party DIR GOOS GOARCH: copies the licence and notice files of the Go distribution and of
# every module the binaries link for that platform into DIR, one directory per module. A module
# without a licence file stops the release, since its terms could not be honoured.
third_party() {
  local dir=$1 goos=$2 goarch=$3 line path mdir n f
  mkdir -p "$dir/go"
  cp "$("$GO" env GOROOT)/LICENSE" "$dir/go/LICENSE"
  while read -r line; do
    path=${line%% *} mdir=${line#* }
    [ -n "$path" ] || continue
    mkdir -p "$dir/$path"
    n=0
    for f in "$mdir"/*; do
      case ${f##*/} in
        LICENSE* | LICENCE* | License* | COPYING* | NOTICE* | Notice*) install -m 644 "$f" "$dir/$path/"; n=$((n + 1)) ;;
      esac
    done
    [ "$n" -gt 0 ] || die "module $path has no licence file in $mdir"
  done < <(GOOS=$goos GOARCH=$goarch CGO_ENABLED=0 "$GO" list -deps \
    -f '{{with .Module}}{{if not .Main}}{{.Path}} {{.Dir}}{{end}}{{end}}' "${cmds[@]}" | sort -u)
}

rm -rf "$dist"
mkdir -p "$dist"
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT

for platform in $PLATFORMS; do
  goos=${platform%/*} goarch=${platform#*/}
  name="shardline_${VERSION}_${goos}_${goarch}"
  dir="$stage/$name"
  mkdir -p "$dir"
  echo "release: building $name" >&2
  GOOS=$goos GOARCH=$goarch CGO_ENABLED=0 "$GO" build -trimpath \
    -ldflags "-s -w -X github.com/shardline/shardline/internal/version.stamp=$VERSION" \
    -o "$dir/" "${cmds[@]}"
  cp LICENSE NOTICE README.md CHANGELOG.md packaging/shardline-agent.service "$dir/"
  third_party "$dir/THIRD_PARTY_LICENSES" "$goos" "$goarch"
  find "$dir" -exec touch -h -d "@$mtime" {} +
  tar -C "$stage" --sort=name --mtime="@$mtime" --owner=0 --group=0 --numeric-owner \
    -cf - "$name" | gzip -9 -n >"$dist/$name.tar.gz"
done

(cd "$dist" && sha256sum -- *.tar.gz >SHA256SUMS)
echo "release: $VERSION" >&2
(cd "$dist" && ls -l -- *.tar.gz SHA256SUMS) >&2
