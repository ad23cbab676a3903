"""The one build of citylake that the test command and the main command share.

Both need the same artifacts: the `citylake` and `city-bench` binaries, and (for the
tests) every test executable. Cargo unifies features over the packages and targets it
is asked to build, and a `cargo build --bins` after `cargo test` is a *different*
build of DataFusion (dev-dependencies change the features), so there is exactly one
command here:

    cargo test --workspace --all-targets --locked --features citylake-cli/cluster --no-run

`cargo test` builds each package's binaries too (for `CARGO_BIN_EXE_*`), so
`target/debug/citylake` and `target/debug/city-bench` come out of the same build.

    python3 scripts/build.py build [--lint]  build; with --lint, clippy -D warnings runs as the
                                             compiler of the workspace's own crates (see below)
    python3 scripts/build.py test [--lint] [-- ARGS]
                                             `cargo test` with the same flags and environment
                                             (nothing is compiled again), ARGS to the tests
    python3 scripts/build.py check-since STAMP
                                             fail if a DataFusion/arrow/parquet/object_store/
                                             Ballista library other than the ones the build
                                             used was compiled after STAMP (a second build)

`--lint` runs clippy inside the build instead of beside it: `cargo clippy` is a separate
*check* build of every dependency (metadata only, not shared with the real build);
with `RUSTC_WORKSPACE_WRAPPER=clippy-driver` the workspace's crates are compiled by
clippy's driver — full code generation plus the lints — while the dependencies are the
same artifacts as an unlinted build. The lints then cost nothing for the dependencies.

Writes `$CARGO_TARGET_DIR/citylake-build.json`: the test executables by `package/target`
(`citylake-engine/s3_publish`), the binaries as `bin:NAME`, and the pinned libraries the
build used.
"""

import argparse
import json
import os
import pathlib
import shutil
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
FEATURES = ["--workspace", "--all-targets", "--locked", "--features", "citylake-cli/cluster"]
# crates that must be built once per profile
PINNED = ("datafusion", "arrow", "parquet", "object_store", "ballista")


def target_dir() -> pathlib.Path:
    return pathlib.Path(os.environ.get("CARGO_TARGET_DIR") or ROOT / "target")


def manifest() -> pathlib.Path:
    return target_dir() / "citylake-build.json"


def lint_env(env):
    """clippy as the compiler of the workspace members, with -D warnings
    (what `cargo clippy -- -D warnings` passes to clippy-driver)."""
    driver = shutil.which("clippy-driver")
    if not driver:
        sys.exit("clippy-driver not found: install clippy (rustup component add clippy)")
    return dict(env, RUSTC_WORKSPACE_WRAPPER=driver,
                CLIPPY_ARGS="__CLIPPY_HACKERY__".join(["-D", "warnings"]) + "__CLIPPY_HACKERY__")


def env_for(lint: bool):
    env = dict(os.environ)
    env.pop("RUSTC_WORKSPACE_WRAPPER", None)
    env.pop("CLIPPY_ARGS", None)
    return lint_env(env) if lint else env


def build(lint: bool) -> dict:
    cmd = ["cargo", "test", *FEATURES, "--no-run", "--message-format=json-render-diagnostics"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env_for(lint), stdout=subprocess.PIPE, text=True)
    executables, libraries = {}, {}
    for line in proc.stdout:
        try:
            msg = json.loads(line)
        except ValueError:
            print(line, end="", file=sys.stderr)
            continue
        if msg.get("reason") != "compiler-artifact":
            continue
        target = msg["target"]
        # "path+file:///…/server#citylake-server@0.1.0" → citylake-server
        package = msg["package_id"].rsplit("#", 1)[-1].split("@")[0]
        if msg.get("executable") and msg["profile"]["test"]:
            executables[f"{package}/{target['name']}"] = msg["executable"]
        if msg.get("executable") and target["kind"] == ["bin"] and not msg["profile"]["test"]:
            executables.setdefault("bin:" + target["name"], msg["executable"])
        name = target["name"]
        if any(name == p or name.startswith(p + "_") for p in PINNED):
            libraries.setdefault(name, set()).update(
                f for f in msg["filenames"] if f.endswith(".rlib"))
    if proc.wait() != 0:
        sys.exit(proc.returncode)
    doubled = {n: sorted(f) for n, f in libraries.items() if len(f) > 1}
    if doubled:
        sys.exit("a pinned crate is built more than once in one build (features differ "
                 f"between targets): {json.dumps(doubled, indent=1)}")
    for need in ("bin:citylake", "bin:city-bench"):
        if need not in executables:
            sys.exit(f"the build did not produce {need[4:]} (cargo test builds a package's "
                     "binaries only when it has integration tests)")
    out = {"executables": executables,
           "libraries": sorted(f for files in libraries.values() for f in files)}
    manifest().write_text(json.dumps(out, indent=1))
    print(f"built {len(executables)} executables; {len(out['libraries'])} pinned libraries, "
          "each once", file=sys.stderr)
    return out


def check_since(stamp: pathlib.Path) -> None:
    """Every pinned library compiled since `stamp` must be one the build recorded: anything
    else is a second build of it (a later cargo invocation with other features)."""
    used = set(json.loads(manifest().read_text())["libraries"])
    since = stamp.stat().st_mtime
    deps = target_dir() / "debug" / "deps"
    extra = sorted(str(p) for p in deps.glob("lib*.rlib")
                   if any(p.name.startswith(f"lib{c}") for c in PINNED)
                   and p.stat().st_mtime > since and str(p) not in used)
    if extra:
        sys.exit("pinned crates were compiled a second time during the test run:\n  "
                 + "\n  ".join(extra))
    print(f"no second build: {len(used)} pinned libraries, each built once", file=sys.stderr)


def test(lint: bool, args) -> None:
    done = subprocess.run(["cargo", "test", *FEATURES, "--no-fail-fast", "--", *args], cwd=ROOT, env=env_for(lint))
    if done.returncode != 0:
        sys.exit(done.returncode)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="the one build")
    b.add_argument("--lint", action="store_true", help="clippy -D warnings on the workspace's crates")
    t = sub.add_parser("test", help="cargo test on the build's artifacts")
    t.add_argument("--lint", action="store_true", help="as the build was made (same fingerprints)")
    t.add_argument("args", nargs="*", help="passed to the test executables")
    c = sub.add_parser("check-since", help="no pinned crate compiled twice since STAMP")
    c.add_argument("stamp", type=pathlib.Path)
    args = parser.parse_args()
    if args.command == "build":
        build(args.lint)
    elif args.command == "test":
        test(args.lint, args.args)
    else:
        check_since(args.stamp)


if __name__ == "__main__":
    main()
