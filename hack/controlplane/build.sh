#!/usr/bin/env bash
# Builds the local control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
# kubectl, kwok) from the Go module proxy into a cache outside the checkout, keyed by version:
#   ${WINAPP_CACHE:-~/.cache/winapp-operator}/controlplane/<k8s-version>/bin
# A second run finds the binaries and returns at once. Prints the bin directory on stdout's last line.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"

cache_root=${WINAPP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/winapp-operator}
out="$cache_root/controlplane/${K8S_VERSION}-etcd${ETCD_VERSION}-kwok${KWOK_VERSION}"
bin="$out/bin"
stamp="$out/.complete"
binaries=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kwok)

log() { echo "[build] $*" >&2; }

if [ -f "$stamp" ] && for b in "${binaries[@]}"; do [ -x "$bin/$b" ] || exit 1; done; then
  log "control plane ${K8S_VERSION} already built in $bin"
  echo "$bin"
  exit 0
fi

mkdir -p "$bin" "$out/kwok-stages"
export CGO_ENABLED=0 GOFLAGS="-mod=mod -trimpath"
tags="selinux,notest,grpcnotrace"
major=${K8S_VERSION#v}; major=${major%%.*}
minor=${K8S_VERSION#v*.}; minor=${minor%%.*}
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=${K8S_VERSION} -X $pkg.gitMajor=${major} -X $pkg.gitMinor=${minor}"
  ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done

# A ticker so that a long build is never silent.
start=$(date +%s)
( while sleep 60; do log "still building ($(( ($(date +%s) - start) / 60 )) min so far; a cold build takes about 25-40 min on 2 cores, a warm Go cache about 2 min)"; done ) &
ticker=$!
trap 'kill $ticker 2>/dev/null || true' EXIT

log "building etcd ${ETCD_VERSION}"
(cd "$here/etcd" && go build -tags "$tags" -ldflags "-s -w" -o "$bin/etcd" go.etcd.io/etcd/server/v3)

log "building kwok ${KWOK_VERSION}"
(cd "$here/kwok" && go build -ldflags "-s -w" -o "$bin/kwok" sigs.k8s.io/kwok/cmd/kwok)
# Since v0.8 the standalone kwok has no built-in stages: ship the module's own stage files beside it.
kwok_dir=$(cd "$here/kwok" && go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)
for f in node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
         pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
  src="$kwok_dir/kustomize/stage/$f"
  [ -f "$src" ] || { log "missing KWOK stage file $src"; exit 1; }
  cp "$src" "$out/kwok-stages/$(basename "$f")"
done

log "building Kubernetes ${K8S_VERSION}: kube-apiserver kube-controller-manager kube-scheduler kubectl"
(cd "$here/kubernetes" && go build -tags "$tags" -ldflags "$ldflags" -o "$bin/" \
  k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
  k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl)

"$bin/kube-apiserver" --version >&2
touch "$stamp"
log "done in $(( $(date +%s) - start ))s: $bin ($(du -sh "$bin" | cut -f1))"
echo "$bin"
