"""A local citylake cluster for the tests and the cluster benchmark: `citylake cluster scheduler`
and N `citylake cluster executor`s on loopback ports, as separate processes (the binary must be
built with `--features cluster`), over mutual TLS with certificates from `citylake cluster certs`
(unless `tls=False`), and the city-bench workload read from benches/queries."""

import os
import pathlib
import re
import socket
import subprocess
import tempfile
import threading
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]


def free_port():
    """A free loopback port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def certs(binary, directory, name, hosts=("127.0.0.1",)):
    """`citylake cluster certs`: the --cluster-* flags of node `name` (the CA made on first use)."""
    args = [binary, "cluster", "certs", str(directory), "--name", name]
    for h in hosts:
        args += ["--host", h]
    subprocess.run(args, check=True, capture_output=True)
    d = pathlib.Path(directory)
    return ["--cluster-ca", str(d / "ca.pem"), "--cluster-cert", str(d / f"{name}.pem"),
            "--cluster-key", str(d / f"{name}.key")]


class Process:
    """A child whose output is collected in `log` by a thread."""

    def __init__(self, args, env=None, ready=None, timeout=60):
        self.args = args
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, env=env)
        self.log = []
        self.match = None
        deadline = time.time() + timeout
        while ready and time.time() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(f"{args[1:3]} exited: " + "".join(self.log))
            self.log.append(line)
            self.match = re.search(ready, line)
            if self.match:
                break
        if ready and not self.match:
            raise RuntimeError(f"{args[1:3]} did not start: " + "".join(self.log))
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self):
        for line in self.proc.stdout:
            self.log.append(line)

    def stop(self, kill=False):
        if self.proc.poll() is None:
            (self.proc.kill if kill else self.proc.terminate)()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class Cluster:
    """A scheduler and `executors` executors; `location` is the df:// URL for `--cluster`,
    `front_args()` the front end's flags. With `tls` (the default) every node has its own
    certificate from one CA in `tls_dir` (a temporary directory unless given)."""

    def __init__(self, binary, executors=2, env=None, slots=None, work_dir=None, tls=True):
        self.binary, self.env = binary, env
        self._tmp = tempfile.TemporaryDirectory(prefix="citylake-cluster-tls-") if tls else None
        self.tls_dir = pathlib.Path(self._tmp.name) if tls else None
        self.scheduler = Process([binary, "cluster", "scheduler", "--bind", "127.0.0.1:0",
                                  "--executor-timeout", "10", "--log", "info",
                                  *self.tls("scheduler")],
                                 env=env, ready=r"scheduler listening on (127\.0\.0\.1:\d+)")
        self.addr = self.scheduler.match.group(1)
        self.location = f"df://{self.addr}"
        self.executors = []
        for i in range(executors):
            self.add_executor(slots=slots, work_dir=work_dir and os.path.join(work_dir, f"executor-{i}"))
        self.wait_for_executors(executors)

    def tls(self, name):
        """The --cluster-* flags of a new node `name` (none without TLS)."""
        if not self.tls_dir:
            return []
        n = 0
        while (self.tls_dir / f"{name}{n or ''}.pem").exists():
            n += 1
        return certs(self.binary, self.tls_dir, f"{name}{n or ''}")

    def front_args(self):
        """`citylake serve` flags that run its queries on this cluster."""
        return ["--cluster", self.location, *self.tls("front")]

    def add_executor(self, slots=None, work_dir=None, tls_args=None):
        port = free_port()
        args = [self.binary, "cluster", "executor", "--scheduler", self.addr,
                "--bind", f"127.0.0.1:{port}", "--heartbeat", "2",
                *(self.tls("executor") if tls_args is None else tls_args)]
        if slots:
            args += ["--slots", str(slots)]
        if work_dir:
            args += ["--work-dir", work_dir]
        e = Process(args, env=self.env, ready=r"citylake cluster executor on")
        self.executors.append(e)
        return e

    def wait_for_executors(self, n, timeout=60):
        """Until the scheduler has logged n executors joining."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            registered = sum("executor joined" in line for line in self.scheduler.log)
            if registered >= n:
                return
            time.sleep(0.2)
        raise RuntimeError(f"{n} executors did not register:\n" + "".join(self.scheduler.log[-20:]))

    def stop(self):
        for e in self.executors:
            e.stop()
        self.scheduler.stop()
        if self._tmp:
            self._tmp.cleanup()


def workload():
    """[(name, function-variant SQL, standard SQL or None)] of benches/queries/*.sql."""
    out = []
    for path in sorted((ROOT / "benches" / "queries").glob("q*.sql")):
        text = path.read_text()
        main, _, standard = text.partition("-- standard:")
        clean = lambda s: "\n".join(l for l in s.splitlines() if not l.startswith("-- ")).strip().rstrip(";")
        out.append((path.stem, clean(main), clean(standard) or None))
    return out
