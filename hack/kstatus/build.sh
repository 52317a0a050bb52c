#!/usr/bin/env bash
# Builds the kstatus CLI (hack/kstatus/main.go) into a cache outside the checkout, keyed by the
# cli-utils version in go.mod:
#   ${WINAPP_CACHE:-~/.cache/winapp-operator}/kstatus/<cli-utils version>/kstatus
# A second run finds the binary and returns at once. Prints the binary path on stdout's last line.
# Usage: BIN=$(hack/kstatus/build.sh | tail -n1); "$BIN" < object.json
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

log() { echo "[build] $*" >&2; }

# The version is read from go.mod without running go, so that a cached binary needs no toolchain.
version=$(awk '$1 == "sigs.k8s.io/cli-utils" { print $2; exit } $2 == "sigs.k8s.io/cli-utils" { print $3; exit }' "$here/go.mod")
[ -n "$version" ] || { log "no sigs.k8s.io/cli-utils requirement in $here/go.mod"; exit 1; }

cache_root=${WINAPP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/winapp-operator}
out="$cache_root/kstatus/$version"
bin="$out/kstatus"

if [ -x "$bin" ]; then
  log "kstatus (cli-utils $version) already built: $bin"
  echo "$bin"
  exit 0
fi

mkdir -p "$out"
export CGO_ENABLED=0 GOFLAGS="-mod=mod"
start=$(date +%s)
log "building kstatus with sigs.k8s.io/cli-utils $version"
# Build beside the target and rename, so that an interrupted build never leaves a half-written binary.
tmp="$out/.kstatus.$$"
trap 'rm -f "$tmp"' EXIT
(cd "$here" && go build -trimpath -buildvcs=false -ldflags "-s -w" -o "$tmp" .)
mv -f "$tmp" "$bin"
log "done in $(( $(date +%s) - start ))s: $bin ($(du -h "$bin" | cut -f1))"
echo "$bin"
