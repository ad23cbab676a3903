#!/usr/bin/env bash
# Runs every test of citylake, from nothing on a fresh machine: installs what the
# tests need (a Python virtualenv with DuckDB and the Flight SQL clients), then
# format, the one build (with clippy's lints), the Rust tests (unit, sqllogictest,
# CLI and Flight end to end), city-bench's agreement check against DataFusion and
# DuckDB, and the Python tests (Flight SQL clients, the report in Chromium, the lake
# in SeaweedFS, a Ballista cluster of separate processes).
#
# DataFusion is compiled once: scripts/build.py is the only cargo build, with the
# `cluster` feature (Ballista) and the dev-dependencies' features, and it produces the
# binaries the Python tests start and the test executables they run; clippy runs as
# the compiler of the workspace's own crates inside that build. No step after it
# invokes cargo to build, and the last step fails if a pinned crate (DataFusion,
# arrow, parquet, object_store, Ballista) was compiled a second time.
#
# Each step prints how long it took. A build cache outside the checkout is reused
# when it exists:
#   CARGO_TARGET_DIR (default $HOME/.cache/citylake/target)
#   CITYLAKE_VENV    (default $HOME/.cache/citylake/venv)
#   CITYLAKE_VENV_SQLALCHEMY2 (default $HOME/.cache/citylake/venv-sqlalchemy2)
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/citylake/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
VENV="${CITYLAKE_VENV:-$HOME/.cache/citylake/venv}"
mkdir -p "$CARGO_TARGET_DIR"
stamp="$CARGO_TARGET_DIR/.test-run-started"
touch "$stamp"

started=$SECONDS
step_started=$SECONDS
step_name=""
step() {
  if [ -n "$step_name" ]; then
    printf '    (%s: %dm%02ds)\n' "$step_name" $(((SECONDS - step_started) / 60)) $(((SECONDS - step_started) % 60))
  fi
  step_name="$1"
  step_started=$SECONDS
  printf '\n==> %s\n' "$*"
}

step "Python tools for the cross-checks ($VENV)"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
"$VENV/bin/pip" install --quiet --disable-pip-version-check -r scripts/requirements.txt
# a second one for SQLAlchemy 2 (flightsql-dbapi in the first requires SQLAlchemy < 2)
VENV2="${CITYLAKE_VENV_SQLALCHEMY2:-$HOME/.cache/citylake/venv-sqlalchemy2}"
if [ ! -x "$VENV2/bin/python" ]; then
  python3 -m venv "$VENV2"
fi
"$VENV2/bin/pip" install --quiet --disable-pip-version-check -r scripts/requirements-sqlalchemy2.txt

step "one arrow / parquet / datafusion / object_store in the dependency tree"
dups=$(cargo tree --workspace --locked -d --depth 0 2>/dev/null | grep -E '^(arrow|parquet|datafusion|object_store)[-a-z]* v' || true)
if [ -n "$dups" ]; then
  echo "second copies of pinned crates:"; echo "$dups"; exit 1
fi

step "cargo fmt --check"
cargo fmt --all -- --check

step "the build (scripts/build.py --lint: every target with the cluster feature, clippy -D warnings on the workspace's crates)"
"$VENV/bin/python" scripts/build.py build --lint

step "cargo test (unit, sqllogictest, CLI and Flight SQL end to end)"
# the same flags and environment as the build, so nothing is compiled again
"$VENV/bin/python" scripts/build.py test --lint

step "sqllogictest again over the same lake with its event datasets as Delta tables (same expected results)"
slt=$("$VENV/bin/python" -c 'import json, sys; print(json.load(open(sys.argv[1]))["executables"]["citylake-tests/sqllogictests"])' \
  "$CARGO_TARGET_DIR/citylake-build.json")
CARGO_MANIFEST_DIR="$PWD/tests" "$slt" --delta

step "city-bench quick mode: every workload and analyst-set query (SF 0.01) and the 22 TPC-H queries (SF 0.1, tables from tpchgen-cli, catalog by catalog init) agree across citylake, plain DataFusion and DuckDB (no timings)"
bench_lake=$(mktemp -d)
"$CARGO_TARGET_DIR/debug/city-bench" citybench --scale 0.01 --lake "$bench_lake/lake" --check-only \
  --python "$VENV/bin/python"
"$CARGO_TARGET_DIR/debug/city-bench" analyst --scale 0.01 --lake "$bench_lake/lake" --check-only \
  --python "$VENV/bin/python"
"$CARGO_TARGET_DIR/debug/city-bench" tpch --scale 0.1 --lake "$bench_lake/tpch" --check-only \
  --python "$VENV/bin/python"
rm -rf "$bench_lake"

step "Flight SQL clients from PyPI (ADBC, pyarrow.flight, flightsql-dbapi + SQLAlchemy) and Postgres clients (psql, psycopg, asyncpg) against citylake serve, alone and on a Ballista cluster; the report in headless Chromium"
# openssl for the TLS tests; headless Chromium and a CJK font for the report test; psql
missing=()
command -v openssl >/dev/null || missing+=(openssl)
command -v chromium >/dev/null || missing+=(chromium)
command -v psql >/dev/null || missing+=(postgresql-client)
fc-list 2>/dev/null | grep -qi "wenquanyi\|noto sans cjk" || missing+=(fonts-wqy-zenhei)
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq && apt-get install -y -qq "${missing[@]}"
fi
CITYLAKE_BIN="$CARGO_TARGET_DIR/debug/citylake" CITYLAKE_BUILD="$CARGO_TARGET_DIR/citylake-build.json" \
  CITYLAKE_SQLALCHEMY2_PYTHON="$VENV2/bin/python" \
  "$VENV/bin/python" -m pytest -q -p no:cacheprovider tests/python

step "no pinned crate was compiled twice"
"$VENV/bin/python" scripts/build.py check-since "$stamp"

step "done"
printf '\nall tests passed in %dm%02ds\n' $(((SECONDS - started) / 60)) $(((SECONDS - started) % 60))
