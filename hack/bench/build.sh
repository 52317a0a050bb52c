#!/usr/bin/env bash
# Builds winapp-bench (hack/bench/*.go: the measuring side of scripts/bench) into a cache outside
# the checkout, keyed by a hash of its sources:
#   ${WINAPP_CACHE:-~/.cache/winapp-operator}/bench/<sha256 of go.mod, go.sum, *.go>/winapp-bench
# Dependencies come from the Go module proxy (client-go, as pinned in go.mod). A second run finds
# the binary and returns at once. Prints the binary path on stdout's last line.
# Usage: BIN=$(hack/bench/build.sh | tail -n1); "$BIN" --help
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

log() { echo "[build] $*" >&2; }

# The key is computed without go, so that a cached binary needs no toolchain.
key=$(cd "$here" && cat go.mod go.sum $(printf "%s\n" ./*.go | LC_ALL=C sort) | sha256sum | cut -c1-16)
cache_root=${WINAPP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/winapp-operator}
out="$cache_root/bench/$key"
bin="$out/winapp-bench"

if [ -x "$bin" ]; then
  log "winapp-bench ($key) already built: $bin"
  echo "$bin"
  exit 0
fi
command -v go >/dev/null || { log "go is not installed: cannot build winapp-bench"; exit 1; }

mkdir -p "$out"
export CGO_ENABLED=0 GOFLAGS="-mod=mod"
start=$(date +%s)
log "building winapp-bench ($key)"
(cd "$here" && go vet ./... >&2 && go test ./... >&2)
# Build beside the target and rename, so that an interrupted build never leaves a half-written binary.
tmp="$out/.winapp-bench.$$"
trap 'rm -f "$tmp"' EXIT
(cd "$here" && go build -trimpath -buildvcs=false -ldflags "-s -w" -o "$tmp" .)
mv -f "$tmp" "$bin"
log "done in $(( $(date +%s) - start ))s: $bin ($(du -h "$bin" | cut -f1))"
echo "$bin"
