#!/usr/bin/env bash
# cargo deny check: advisories, licenses, bans, sources.
#
# The RustSec advisory database comes from, in order:
#   1. $RUSTSEC_SNAPSHOT, or ../shared/rustsec-advisory-db when present: an offline snapshot, laid
#      out where cargo-deny looks for its default database (deny.toml's db-path) as a one-commit
#      git repository (cargo-deny reads HEAD's time as the database's age);
#   2. otherwise cargo-deny fetches the database itself (a machine with internet access);
#   3. when neither works (an offline machine without a snapshot), licenses, bans and sources are
#      still checked and the skipped advisories are reported loudly; DENY_REQUIRE_ADVISORIES=1
#      makes that an error instead.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
version=0.20.0
if ! cargo deny --version 2>/dev/null | grep -q "$version"; then
  echo "[deny] installing cargo-deny $version (a few minutes, once)" >&2
  cargo install --locked --quiet cargo-deny --version "$version"
fi
db=$repo/target/advisory-db/advisory-db-3157b0e258782691
checks=(advisories licenses bans sources)
cargo fetch --quiet

snapshot=${RUSTSEC_SNAPSHOT:-$repo/../shared/rustsec-advisory-db}
if [ -d "$snapshot" ]; then
  stamp=$(head -c 200 "$snapshot/SNAPSHOT" 2>/dev/null || echo "no SNAPSHOT file")
  if [ ! -f "$db/.snapshot" ] || [ "$(cat "$db/.snapshot")" != "$stamp" ]; then
    rm -rf "$db"
    mkdir -p "$db"
    cp -r "$snapshot"/. "$db"/
    chmod -R u+w "$db"
    git -C "$db" init -q
    git -C "$db" add -A
    git -C "$db" -c user.name=snapshot -c user.email=snapshot@localhost commit -qm "RustSec snapshot"
    echo "$stamp" >"$db/.snapshot"
  fi
  echo "[deny] advisories from the snapshot at $snapshot" >&2
  exec cargo deny --offline check --hide-inclusion-graph "${checks[@]}"
fi

# No snapshot: a database laid out from one earlier is not a clone cargo-deny can update.
[ -f "$db/.snapshot" ] && rm -rf "$db"
echo "[deny] no advisory snapshot; fetching the RustSec database" >&2
if ! cargo deny fetch db; then
  how="allow access to github.com/RustSec/advisory-db, or point RUSTSEC_SNAPSHOT at a copy of it
[deny] (a checkout of rustsec/advisory-db with a SNAPSHOT file naming its commit)"
  if [ "${DENY_REQUIRE_ADVISORIES:-0}" = 1 ]; then
    echo "[deny] error: cannot fetch the RustSec advisory database and there is no snapshot; $how" >&2
    exit 1
  fi
  cat >&2 <<MSG
[deny] WARNING: advisories NOT checked: the RustSec database cannot be fetched and there is no
[deny] offline snapshot. To check them, $how.
[deny] Checking licenses, bans and sources only.
MSG
  exec cargo deny --offline check --hide-inclusion-graph licenses bans sources
fi
exec cargo deny check --disable-fetch --hide-inclusion-graph "${checks[@]}"
