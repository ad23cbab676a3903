"""Fixtures: a generated SF 0.01 lake, users made with `citylake user add`, and the real
`citylake serve` binary on 127.0.0.1 (port chosen by the OS), plain and TLS."""

import os
import pathlib
import re
import subprocess
import threading
import time

import pytest

PASSWORD = "correct horse battery"


def binary() -> str:
    path = os.environ.get("CITYLAKE_BIN")
    if not path or not pathlib.Path(path).exists():
        raise RuntimeError("set CITYLAKE_BIN to the citylake binary (scripts/test.sh does)")
    return path


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
    """`citylake serve` on a free loopback port; its standard error is collected in `log`
    (read by a thread, so a chatty server never blocks on a full pipe)."""

    def __init__(self, lake, tls=None, catalog=None, env=None, extra=()):
        catalog = catalog or str(lake / "catalog.toml")
        args = [binary(), "serve", "--catalog", catalog, "--users",
                str(lake / "users.toml"), "--bind", "127.0.0.1:0", "--metrics-bind", "127.0.0.1:0", *extra]
        if tls:
            args += ["--tls-cert", tls[0], "--tls-key", tls[1]]
        self.proc = subprocess.Popen(args, stderr=subprocess.PIPE, text=True, env=env)
        deadline = time.time() + 60
        self.log = []
        while time.time() < deadline:
            line = self.proc.stderr.readline()
            if not line:
                raise RuntimeError("server exited: " + "".join(self.log))
            self.log.append(line)
            m = re.search(r"Operator endpoints on http://(127\.0\.0\.1:\d+)", line)
            if m:
                self.ops = m.group(1)
            m = re.search(r"listening on (127\.0\.0\.1:\d+)", line)
            if m:
                self.addr = m.group(1)
                break
        else:
            raise RuntimeError("server did not start")
        self.reader = threading.Thread(target=self._drain, daemon=True)
        self.reader.start()

    def _drain(self):
        for line in self.proc.stderr:
            self.log.append(line)

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
