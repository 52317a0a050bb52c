#!/usr/bin/env bash
# Builds kube-score (github.com/zegl/kube-score/cmd/kube-score, the `tool` of hack/kube-score/go.mod),
# the manifest scanner of tests/manifest_scan.rs, from the Go module proxy into a cache outside the
# checkout, keyed by the kube-score version in go.mod:
#   ${WINAPP_CACHE:-~/.cache/winapp-operator}/kube-score/<kube-score version>/kube-score
# A second run finds the binary and returns at once. Prints the binary path on stdout's last line.
# Usage: KUBE_SCORE=$(hack/kube-score/build.sh | tail -n1); "$KUBE_SCORE" score manifests.yaml
# To move to another release: cd hack/kube-score && go get -tool github.com/zegl/kube-score/cmd/kube-score@vX.Y.Z && go mod tidy
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

log() { echo "[build] $*" >&2; }

# The version is read from go.mod without running go, so that a cached binary needs no toolchain.
req() { awk -v m="$1" '$1 == m { print $2; exit } $2 == m { print $3; exit }' "$here/go.mod"; }
version=$(req github.com/zegl/kube-score)
[ -n "$version" ] || { log "no github.com/zegl/kube-score requirement in $here/go.mod"; exit 1; }

cache_root=${WINAPP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/winapp-operator}
out="$cache_root/kube-score/$version"
bin="$out/kube-score"

if [ -x "$bin" ]; then
  log "kube-score $version already built: $bin"
  echo "$bin"
  exit 0
fi

# What kube-score's release build (goreleaser) stamps in.
ldflags="-s -w -X main.version=$version -X main.commit=none -X main.date=none"

mkdir -p "$out"
export CGO_ENABLED=0 GOFLAGS="-mod=mod"
start=$(date +%s)
log "building kube-score $version (a cold build takes about a minute on 2 cores)"
# A ticker so that a long build is never silent.
( while sleep 60; do log "still building kube-score ($(( ($(date +%s) - start) / 60 )) min so far)"; done ) &
ticker=$!
# Build beside the target and rename, so that an interrupted build never leaves a half-written binary.
tmp="$out/.kube-score.$$"
trap 'kill $ticker 2>/dev/null || true; rm -f "$tmp"' EXIT
(cd "$here" && go build -trimpath -buildvcs=false -ldflags "$ldflags" -o "$tmp" github.com/zegl/kube-score/cmd/kube-score)
mv -f "$tmp" "$bin"
log "done in $(( $(date +%s) - start ))s: $bin ($(du -h "$bin" | cut -f1)), $("$bin" version)"
echo "$bin"
