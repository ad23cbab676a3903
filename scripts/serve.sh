#!/usr/bin/env bash
# The main job: serve the demo lake over Arrow Flight SQL on 127.0.0.1:50051 and the
# Postgres protocol on 127.0.0.1:5432 (CITYLAKE_PG_BIND to move it; the lake generated at
# ./data/lake on first use). Arguments go to `citylake serve`.
#
# It uses the test command's build (scripts/build.py: the same features and the same
# target directory), so running one after the other compiles DataFusion once. For
# benchmarks and production use a release build: `cargo build --release` (a separate,
# longer build; see the README).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/citylake/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
python3 scripts/build.py build --lint
export CITYLAKE_PG_BIND="${CITYLAKE_PG_BIND:-127.0.0.1:5432}"
exec "$CARGO_TARGET_DIR/debug/citylake" serve "$@"
