#!/usr/bin/env bash
# Builds the Helm CLI (helm.sh/helm/v3/cmd/helm, the `tool` of hack/helm/go.mod) from the Go module
# proxy into a cache outside the checkout, keyed by the helm version in go.mod:
#   ${WINAPP_CACHE:-~/.cache/winapp-operator}/helm/<helm version>/helm
# A second run finds the binary and returns at once. Prints the binary path on stdout's last line.
# Usage: HELM=$(hack/helm/build.sh | tail -n1); "$HELM" lint charts/winapp-operator
# To move to another release: cd hack/helm && go get -tool helm.sh/helm/v3/cmd/helm@vX.Y.Z && go mod tidy
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

log() { echo "[build] $*" >&2; }

# Versions are read from go.mod without running go, so that a cached binary needs no toolchain.
req() { awk -v m="$1" '$1 == m { print $2; exit } $2 == m { print $3; exit }' "$here/go.mod"; }
version=$(req helm.sh/helm/v3)
[ -n "$version" ] || { log "no helm.sh/helm/v3 requirement in $here/go.mod"; exit 1; }

cache_root=${WINAPP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/winapp-operator}
out="$cache_root/helm/$version"
bin="$out/helm"

if [ -x "$bin" ]; then
  log "helm $version already built: $bin"
  echo "$bin"
  exit 0
fi

# What helm's own Makefile stamps in: its version, and the newest Kubernetes minor it knows
# (client-go v0.X.Y -> 1.X), which `helm lint` and `helm template` report as .Capabilities.KubeVersion.
client_go=$(req k8s.io/client-go)
[ -n "$client_go" ] || { log "no k8s.io/client-go requirement in $here/go.mod"; exit 1; }
k8s_minor=$(echo "$client_go" | cut -d. -f2)
ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$version -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
  ldflags+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$k8s_minor"
done

mkdir -p "$out"
export CGO_ENABLED=0 GOFLAGS="-mod=mod"
start=$(date +%s)
log "building helm $version (a cold build takes a few minutes on 2 cores)"
# Build beside the target and rename, so that an interrupted build never leaves a half-written binary.
tmp="$out/.helm.$$"
trap 'rm -f "$tmp"' EXIT
(cd "$here" && go build -trimpath -buildvcs=false -ldflags "$ldflags" -o "$tmp" helm.sh/helm/v3/cmd/helm)
mv -f "$tmp" "$bin"
log "done in $(( $(date +%s) - start ))s: $bin ($(du -h "$bin" | cut -f1)), $("$bin" version --short)"
echo "$bin"
