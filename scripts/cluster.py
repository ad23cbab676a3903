"""A local citylake cluster for the tests and the cluster benchmark: `citylake cluster scheduler`
and N `citylake cluster executor`s on loopback ports, as separate processes (the binary must be
built with `--features cluster`), and the city-bench workload read from benches/queries."""

import os
import pathlib
import re
import socket
import subprocess
import threading
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]


def free_port(pairs=False):
    """A free loopback port (with the next one free too when `pairs`)."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if not pairs:
            return port
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + 1))
                return port
            except OSError:
                continue


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
    """A scheduler and `executors` executors; `location` is the df:// URL for `--cluster`."""

    def __init__(self, binary, executors=2, env=None, slots=None, work_dir=None):
        self.binary, self.env = binary, env
        self.scheduler = Process([binary, "cluster", "scheduler", "--bind", "127.0.0.1:0",
                                  "--executor-timeout", "10", "--log", "info"],
                                 env=env, ready=r"scheduler listening on (127\.0\.0\.1:\d+)")
        self.addr = self.scheduler.match.group(1)
        self.location = f"df://{self.addr}"
        self.executors = []
        for i in range(executors):
            self.add_executor(slots=slots, work_dir=work_dir and os.path.join(work_dir, f"executor-{i}"))
        self.wait_for_executors(executors)

    def add_executor(self, slots=None, work_dir=None):
        port = free_port(pairs=True)
        args = [self.binary, "cluster", "executor", "--scheduler", self.addr,
                "--bind", f"127.0.0.1:{port}", "--heartbeat", "2"]
        if slots:
            args += ["--slots", str(slots)]
        if work_dir:
            args += ["--work-dir", work_dir]
        e = Process(args, env=self.env, ready=r"citylake cluster executor on")
        self.executors.append(e)
        return e

    def wait_for_executors(self, n, timeout=60):
        """Until the scheduler has logged n executor registrations."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            registered = sum("register executor request" in line for line in self.scheduler.log)
            if registered >= n:
                return
            time.sleep(0.2)
        raise RuntimeError(f"{n} executors did not register:\n" + "".join(self.scheduler.log[-20:]))

    def stop(self):
        for e in self.executors:
            e.stop()
        self.scheduler.stop()


def workload():
    """[(name, function-variant SQL, standard SQL or None)] of benches/queries/*.sql."""
    out = []
    for path in sorted((ROOT / "benches" / "queries").glob("q*.sql")):
        text = path.read_text()
        main, _, standard = text.partition("-- standard:")
        clean = lambda s: "\n".join(l for l in s.splitlines() if not l.startswith("-- ")).strip().rstrip(";")
        out.append((path.stem, clean(main), clean(standard) or None))
    return out
