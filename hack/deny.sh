#!/usr/bin/env bash
# cargo deny check (advisories, licenses, bans, sources) without network access: the RustSec
# advisory database comes from the snapshot in ../shared/rustsec-advisory-db, laid out where
# cargo-deny looks for its default database (deny.toml's db-path) as a one-commit git repo.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
version=0.20.0
if ! cargo deny --version 2>/dev/null | grep -q "$version"; then
  echo "[deny] installing cargo-deny $version (a few minutes, once)" >&2
  cargo install --locked --quiet cargo-deny --version "$version"
fi
snapshot=${RUSTSEC_SNAPSHOT:-$repo/../shared/rustsec-advisory-db}
[ -d "$snapshot" ] || { echo "[deny] no advisory snapshot at $snapshot (set RUSTSEC_SNAPSHOT)" >&2; exit 1; }
db=$repo/target/advisory-db/advisory-db-3157b0e258782691
stamp=$(cat "$snapshot/SNAPSHOT" 2>/dev/null | head -c 200)
if [ ! -f "$db/.snapshot" ] || [ "$(cat "$db/.snapshot")" != "$stamp" ]; then
  rm -rf "$db"
  mkdir -p "$db"
  cp -r "$snapshot"/. "$db"/
  chmod -R u+w "$db"
  git -C "$db" init -q
  git -C "$db" add -A
  git -C "$db" -c user.name=snapshot -c user.email=snapshot@localhost commit -qm "RustSec snapshot"
  echo "$stamp" > "$db/.snapshot"
fi
cargo fetch --quiet
cargo deny --offline check --hide-inclusion-graph advisories licenses bans sources
