#!/usr/bin/env bash
# Builds promtool (github.com/prometheus/prometheus/cmd/promtool, the `tool` of hack/promtool/go.mod),
# which checks and unit-tests the alerting rules of config/components/alerts and the chart
# (tests/alerts.rs), from the Go module proxy into a cache outside the checkout, keyed by the
# Prometheus version in go.mod:
#   ${WINAPP_CACHE:-~/.cache/winapp-operator}/promtool/<module version>/promtool
# A second run finds the binary and returns at once. Prints the binary path on stdout's last line.
# Usage: PROMTOOL=$(hack/promtool/build.sh | tail -n1); "$PROMTOOL" check rules rules.yaml
# Prometheus 3.x.y is the Go module version v0.30x.y / v0.3xy.y (3.16.0 is v0.316.0). To move to
# another release: cd hack/promtool && go get -tool github.com/prometheus/prometheus/cmd/promtool@v0.3XY.Z && go mod tidy
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

log() { echo "[build] $*" >&2; }

# The version is read from go.mod without running go, so that a cached binary needs no toolchain.
req() { awk -v m="$1" '$1 == m { print $2; exit } $2 == m { print $3; exit }' "$here/go.mod"; }
version=$(req github.com/prometheus/prometheus)
[ -n "$version" ] || { log "no github.com/prometheus/prometheus requirement in $here/go.mod"; exit 1; }
# v0.316.0 -> 3.16.0: the release that `promtool --version` names.
if [[ $version =~ ^v0\.3([0-9]{2})\.([0-9]+)$ ]]; then
  release="3.$((10#${BASH_REMATCH[1]})).${BASH_REMATCH[2]}"
else
  release=$version
fi

cache_root=${WINAPP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/winapp-operator}
out="$cache_root/promtool/$version"
bin="$out/promtool"

if [ -x "$bin" ]; then
  log "promtool $version already built: $bin"
  echo "$bin"
  exit 0
fi

# What Prometheus' release build (promu) stamps in.
ldflags="-s -w -X github.com/prometheus/common/version.Version=$release -X github.com/prometheus/common/version.Branch=HEAD"
# remove_all_sd leaves out the service discovery plugins (EC2, Azure, GCE, Consul, ...), which the
# rules commands never use: about 250 fewer packages, among them the largest (the EC2 SDK).
# `promtool check config` of a configuration with such a discovery refuses it.
tags="netgo,remove_all_sd"

mkdir -p "$out"
export CGO_ENABLED=0 GOFLAGS="-mod=mod"
start=$(date +%s)
log "building promtool $version (Prometheus $release; a cold build takes a few minutes on 2 cores)"
# A ticker so that a long build is never silent.
( while sleep 60; do log "still building promtool ($(( ($(date +%s) - start) / 60 )) min so far)"; done ) &
ticker=$!
# Build beside the target and rename, so that an interrupted build never leaves a half-written binary.
tmp="$out/.promtool.$$"
trap 'kill $ticker 2>/dev/null || true; rm -f "$tmp"' EXIT
(cd "$here" && go build -trimpath -buildvcs=false -tags "$tags" -ldflags "$ldflags" -o "$tmp" github.com/prometheus/prometheus/cmd/promtool)
mv -f "$tmp" "$bin"
log "done in $(( $(date +%s) - start ))s: $bin ($(du -h "$bin" | cut -f1)), $("$bin" --version | head -n 1)"
echo "$bin"
