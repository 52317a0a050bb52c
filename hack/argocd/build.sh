#!/usr/bin/env bash
# Tests and builds argocd-health (hack/argocd/main.go: Argo CD health checks run in gopher-lua as
# Argo CD runs them) into a cache outside the checkout, keyed by a hash of its sources:
#   ${WINAPP_CACHE:-~/.cache/winapp-operator}/argocd-health/<sha256 of go.mod, go.sum, *.go>/argocd-health
# `go test` (main_test.go: among others, Lua 5.4-only code must fail) runs first on every call when
# Go is installed (Go caches the result while nothing changed); a cached binary was built only
# after its tests passed. Prints the binary path on stdout's last line.
# Usage: BIN=$(hack/argocd/build.sh | tail -n1); "$BIN" test config/argocd/resource_customizations
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

log() { echo "[build] $*" >&2; }

# The key is computed without go, so that a cached binary needs no toolchain.
key=$(cd "$here" && cat go.mod go.sum $(printf "%s\n" ./*.go | LC_ALL=C sort) | sha256sum | cut -c1-16)
cache_root=${WINAPP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/winapp-operator}
out="$cache_root/argocd-health/$key"
bin="$out/argocd-health"

export CGO_ENABLED=0 GOFLAGS="-mod=mod"
if command -v go >/dev/null; then
  log "go test ./hack/argocd"
  (cd "$here" && go test ./... >&2)
elif [ ! -x "$bin" ]; then
  log "go is not installed: cannot build argocd-health"; exit 1
else
  log "go is not installed: not re-running go test (it passed when $bin was built)"
fi

if [ -x "$bin" ]; then
  log "argocd-health ($key) already built: $bin"
  echo "$bin"
  exit 0
fi

mkdir -p "$out"
start=$(date +%s)
log "building argocd-health ($key)"
# Build beside the target and rename, so that an interrupted build never leaves a half-written binary.
tmp="$out/.argocd-health.$$"
trap 'rm -f "$tmp"' EXIT
(cd "$here" && go build -trimpath -buildvcs=false -ldflags "-s -w" -o "$tmp" .)
mv -f "$tmp" "$bin"
log "done in $(( $(date +%s) - start ))s: $bin ($(du -h "$bin" | cut -f1))"
echo "$bin"
