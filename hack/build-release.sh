#!/usr/bin/env bash
# The release build of the operator binary: the Dockerfile runs exactly this script, and CI runs
# it too (there is no container engine here to build the image itself).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cargo build --release --locked --bin winapp-operator
ls -l target/release/winapp-operator >&2
