#!/usr/bin/env bash
# The release build of the operator binary: the Dockerfile's build stage runs exactly this script,
# and hack/image.sh (which CI runs) builds the image's runtime stage from its output.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cargo build --release --locked --bin winapp-operator
ls -l target/release/winapp-operator >&2
