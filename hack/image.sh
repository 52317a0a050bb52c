#!/usr/bin/env bash
# Builds the operator image with podman from the release binary, without a container registry:
#   1. hack/build-release.sh (the build step the Dockerfile's `build` stage runs);
#   2. a minimal base image assembled here (localhost/winapp-base:local): the shared libraries that
#      `ldd` lists for the binary, /etc/passwd and /etc/group with the user nonroot (65532), /tmp,
#      /home/nonroot and the CA bundle, imported with `podman import` (again only when it changed);
#   3. the Dockerfile's `runtime` target on that base, from a build context holding only the binary;
#   4. `--version` in the image, run as the Deployment runs it (user 65532, read-only root, no
#      capabilities), then the image's id and size.
# Idempotent: a second run reuses the base image and the cached layer. Installs podman and runc
# (Debian) when they are missing and we are root. Settings: IMAGE (default localhost/winapp-operator:<version>),
# BASE_IMAGE (default localhost/winapp-base:local); podman reads hack/image/containers.conf
# unless CONTAINERS_CONF is set.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

log() { echo "[image] $*" >&2; }
die() { echo "[image] error: $*" >&2; exit 1; }
elapsed() { local s=$((SECONDS - $1)); printf '%dm%02ds' $((s / 60)) $((s % 60)); }

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
IMAGE=${IMAGE:-localhost/winapp-operator:$version}
BASE_IMAGE=${BASE_IMAGE:-localhost/winapp-base:local}
export CONTAINERS_CONF=${CONTAINERS_CONF:-$repo/hack/image/containers.conf}
work=$repo/target/image
start=$SECONDS

# --- podman ---------------------------------------------------------------------------------------
need=()
command -v podman >/dev/null || need+=(podman)
command -v runc >/dev/null || need+=(runc) # see hack/image/containers.conf
[ -s /etc/ssl/certs/ca-certificates.crt ] || need+=(ca-certificates)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    t=$SECONDS
    log "installing ${need[*]} (Debian)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" </dev/null >/dev/null
    log "installed in $(elapsed "$t")"
  else
    die "missing ${need[*]}: install them (Debian: apt-get install --no-install-recommends ${need[*]})"
  fi
fi
log "$(podman --version), runtime $(podman info --format '{{.Host.OCIRuntime.Name}}'), storage $(podman info --format '{{.Store.GraphDriverName}}')"

# --- the release binary ---------------------------------------------------------------------------
t=$SECONDS
hack/build-release.sh </dev/null
bin=$repo/target/release/winapp-operator
log "release binary ready in $(elapsed "$t")"

# --- the base image -------------------------------------------------------------------------------
rootfs=$work/base-rootfs
rm -rf "$rootfs"
mkdir -p "$rootfs"/{etc/ssl/certs,tmp,home/nonroot}
# The libraries the dynamic loader resolves for the binary, at the paths it resolves them to.
ldd_out=$(ldd "$bin" 2>&1) || true
if grep -q 'not found' <<<"$ldd_out"; then
  die "the binary needs libraries this machine lacks:"$'\n'"$ldd_out"
fi
libs=$(awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' <<<"$ldd_out" | sort -u)
for lib in $libs; do
  mkdir -p "$rootfs$(dirname "$lib")"
  cp -L "$lib" "$rootfs$lib"
done
cat >"$rootfs/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin
EOF
cat >"$rootfs/etc/group" <<'EOF'
root:x:0:
nobody:x:65534:
nonroot:x:65532:
EOF
printf 'hosts: files dns\n' >"$rootfs/etc/nsswitch.conf"
# kube uses the kubeconfig's (or the ServiceAccount's) CA; the system roots only when there is none.
cp -L /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt"
chmod 1777 "$rootfs/tmp"
chmod 0700 "$rootfs/home/nonroot"
chown 65532:65532 "$rootfs/home/nonroot"
# A reproducible tarball, so its digest says whether the base changed.
tar --sort=name --mtime=@0 --numeric-owner --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
  -C "$rootfs" -cf "$work/base.tar" .
base_sum=$(sha256sum "$work/base.tar" | cut -c1-64)
have_sum=$(podman image inspect --format '{{index .Config.Labels "dev.winapp.base.sha256"}}' "$BASE_IMAGE" 2>/dev/null || true)
if [ "$have_sum" = "$base_sum" ]; then
  log "base image $BASE_IMAGE is up to date ($(echo "$libs" | wc -w) libraries)"
else
  log "importing base image $BASE_IMAGE: $(echo "$libs" | tr '\n' ' ')+ passwd, group, CA bundle"
  podman import --quiet \
    --change 'USER=65532:65532' \
    --change 'WORKDIR=/home/nonroot' \
    --change 'ENV=PATH=/usr/local/bin:/usr/bin:/bin' \
    --change 'ENV=SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
    --change 'LABEL=dev.winapp.image=base' \
    --change "LABEL=dev.winapp.base.sha256=$base_sum" \
    "$work/base.tar" "$BASE_IMAGE" >/dev/null
fi

# --- the runtime image ----------------------------------------------------------------------------
context=$work/context
rm -rf "$context"
mkdir -p "$context"
cp "$bin" "$context/winapp-operator"
t=$SECONDS
revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)
podman build --pull=never --target runtime \
  --build-arg RUNTIME_BASE="$BASE_IMAGE" --build-arg BINARY=winapp-operator \
  --label dev.winapp.image=operator \
  --label org.opencontainers.image.version="$version" \
  --label org.opencontainers.image.revision="$revision" \
  -t "$IMAGE" -f "$repo/Dockerfile" "$context"
log "built $IMAGE in $(elapsed "$t")"
# Older builds of both images, now untagged.
podman image prune -f --filter label=dev.winapp.image >/dev/null

# --- check it runs as the Deployment runs it ------------------------------------------------------
out=$(podman run --rm --network none --read-only --cap-drop ALL --security-opt no-new-privileges \
  --user 65532:65532 "$IMAGE" --version) || die "podman run $IMAGE --version failed"
log "podman run $IMAGE --version: $out"
case $out in *"$version"*) ;; *) die "expected version $version in: $out" ;; esac

id=$(podman image inspect --format '{{.Id}}' "$IMAGE")
size=$(podman image inspect --format '{{.Size}}' "$IMAGE")
log "image $IMAGE id ${id:0:12} size $((size / 1000 / 1000)) MB ($size bytes), total $(elapsed "$start")"
podman images --filter label=dev.winapp.image
