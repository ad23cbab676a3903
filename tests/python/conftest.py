"""Fixtures: a generated SF 0.01 lake, users made with `citylake user add`, and the real
`citylake serve` binary on 127.0.0.1 (port chosen by the OS), plain and TLS."""

import os
import pathlib
import re
import subprocess
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "scripts"))
from cluster import Process  # noqa: E402

PASSWORD = "correct horse battery"


def binary() -> str:
    path = os.environ.get("CITYLAKE_BIN")
    if not path or not pathlib.Path(path).exists():
        raise RuntimeError("set CITYLAKE_BIN to the citylake binary (scripts/test.sh does)")
    return path


def rust_test_binary(name: str) -> str:
    """A Rust test executable of the one build (scripts/build.py writes their paths), run
    directly: a test here never invokes cargo, which would build DataFusion a second time."""
    import json
    manifest = os.environ.get("CITYLAKE_BUILD")
    if not manifest or not pathlib.Path(manifest).exists():
        raise RuntimeError("set CITYLAKE_BUILD to the build's citylake-build.json (scripts/test.sh does)")
    executables = json.loads(pathlib.Path(manifest).read_text())["executables"]
    if name not in executables:
        raise RuntimeError(f"the build has no test executable {name!r}: {sorted(executables)}")
    return executables[name]


@pytest.fixture(scope="session")
def lake(tmp_path_factory):
    out = tmp_path_factory.mktemp("lake")
    subprocess.run([binary(), "generate", "--scale", "0.01", "--out", str(out), "--force"],
                   check=True, capture_output=True)
    users = out / "users.toml"
    env = dict(os.environ, CITYLAKE_PASSWORD=PASSWORD)
    for name, role, extra in [("ana", "analyst", ["--department", "traffic", "--attr", "district=Xihu"]),
                              ("dora", "district_analyst", ["--attr", "district=Xihu"]),
                              ("audrey", "auditor", []),
                              ("root", "admin", [])]:
        subprocess.run([binary(), "user", "add", name, "--role", role, *extra, "--users", str(users)],
                       check=True, capture_output=True, env=env)
    return out


class Server:
    """`citylake serve` on a free loopback port (and a free port for its operator endpoints, `ops`);
    its output is collected in `log` (scripts/cluster.py's Process)."""

    def __init__(self, lake, tls=None, catalog=None, env=None, extra=()):
        catalog = catalog or str(lake / "catalog.toml")
        args = [binary(), "serve", "--catalog", catalog, "--users",
                str(lake / "users.toml"), "--bind", "127.0.0.1:0", "--metrics-bind", "127.0.0.1:0", *extra]
        if tls:
            args += ["--tls-cert", tls[0], "--tls-key", tls[1]]
        process = Process(args, env=env, ready=r"listening on (127\.0\.0\.1:\d+)")
        self.proc, self.log, self.addr = process.proc, process.log, process.match.group(1)
        self.ops = next(m.group(1) for m in
                        (re.search(r"Operator endpoints on http://(127\.0\.0\.1:\d+)", line) for line in self.log)
                        if m)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)


@pytest.fixture(scope="session")
def server(lake):
    s = Server(lake)
    yield s
    s.stop()
    assert s.proc.returncode == 0, "graceful shutdown on SIGTERM"


@pytest.fixture(scope="session")
def tls_server(lake, tmp_path_factory):
    d = tmp_path_factory.mktemp("tls")
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    s = Server(lake, tls=(str(cert), str(key)))
    s.cert = cert
    yield s
    s.stop()
