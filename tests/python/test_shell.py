"""The interactive shell, driven through a pseudo-terminal as a person would: a runaway
query, Ctrl-C, the prompt back, the next statement, history on disk; and `-c` scripts with
backslash commands."""

import os
import pty
import select
import subprocess
import time

from conftest import binary

RUNAWAY = ("SELECT count(DISTINCT a.avg_speed_kmh + b.avg_speed_kmh) FROM traffic.segment_speed a, "
           "traffic.segment_speed b WHERE a.vehicle_count < b.vehicle_count;")


class Shell:
    def __init__(self, lake, home):
        pid, fd = pty.fork()
        if pid == 0:  # the child: the shell, with the pty as its terminal
            env = dict(os.environ, HOME=str(home), TERM="xterm")
            os.execve(binary(), [binary(), "sql", "--catalog", str(lake / "catalog.toml")], env)
        self.pid, self.fd, self.out, self.pos = pid, fd, b"", 0

    def send(self, text):
        os.write(self.fd, text.encode())

    def expect(self, needle, timeout=60.0):
        """Reads until `needle` appears after the previous match; the seconds it took."""
        start, want = time.monotonic(), needle.encode()
        while (found := self.out.find(want, self.pos)) < 0:
            left = timeout - (time.monotonic() - start)
            assert left > 0, f"{needle!r} not seen; output so far:\n{self.out.decode(errors='replace')}"
            ready, _, _ = select.select([self.fd], [], [], left)
            if ready:
                try:
                    self.out += os.read(self.fd, 65536)
                except OSError:
                    break
        self.pos = found + len(want)
        return time.monotonic() - start

    def close(self):
        try:
            os.kill(self.pid, 9)
        except ProcessLookupError:
            pass
        os.waitpid(self.pid, 0)


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_ctrl_c_cancels_the_running_statement_and_the_shell_goes_on(lake, tmp_path):
    shell = Shell(lake, tmp_path)
    try:
        shell.expect("citylake> ")
        shell.send(RUNAWAY + "\r")
        time.sleep(2)  # well into the join
        shell.send("\x03")
        took = shell.expect("cancelled by Ctrl-C")
        took += shell.expect("citylake> ")
        print(f"prompt back {took:.3f} s after Ctrl-C")
        # the join would run for minutes: the prompt came back because it was cancelled
        assert took < 20, took
        # and the work stopped: the process no longer burns CPU
        before = cpu_seconds(shell.pid)
        time.sleep(1.0)
        assert cpu_seconds(shell.pid) - before < 0.5, "the join still runs after Ctrl-C"
        # history is on disk already, before the shell ends
        history = (tmp_path / ".citylake_history").read_text()
        assert "a.vehicle_count < b.vehicle_count" in history, history
        # the next statement runs; the cancelled one is recorded as cancelled
        shell.send("SELECT 40 + 2 AS answer;\r")
        shell.expect("42")
        shell.expect("citylake> ")
        shell.send("SELECT state FROM system.queries WHERE sql LIKE '%a.vehicle_count < b%' "
                   "AND sql NOT LIKE '%system.queries%';\r")
        shell.expect("cancelled")
        # a command is not swallowed into an unfinished statement
        shell.expect("citylake> ")
        shell.send("SELECT 1\r")
        shell.expect("..> ")  # (typing ahead is discarded when the editor takes the terminal)
        shell.send("\\d\r")
        shell.expect("end the statement with `;`")
        # the editor holds the terminal again once its prompt is shown: a Ctrl-C before that
        # is a signal, which the shell acts on at the next prompt only if it has seen it in time
        shell.expect("..> ")
        shell.send("\x03")
        shell.expect("citylake> ")
        # Ctrl-C twice at an empty prompt quits
        shell.send("\x03")
        shell.expect("again")
        shell.expect("citylake> ")
        shell.send("\x03")
        _, status = os.waitpid(shell.pid, 0)
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
    finally:
        try:
            shell.close()
        except ChildProcessError:
            pass


def test_scripts_run_backslash_commands(lake):
    done = subprocess.run([binary(), "sql", "--catalog", str(lake / "catalog.toml"), "-c",
                           "SELECT 1 AS one;\n\\d traffic.road_segments\nSELECT 2 AS two;"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "one" in done.stdout and "free_flow_speed_kmh" in done.stdout and "two" in done.stdout
    done = subprocess.run([binary(), "sql", "--catalog", str(lake / "catalog.toml"), "-c", "\\nope"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "unknown command \\nope" in done.stderr, done.stderr


def test_timeout_stops_a_runaway_join_and_says_so_once(lake):
    start = time.monotonic()
    done = subprocess.run([binary(), "sql", "--catalog", str(lake / "catalog.toml"), "--query-timeout", "2s",
                           "-c", RUNAWAY], capture_output=True, text=True, timeout=600)
    took = time.monotonic() - start
    print(f"2 s timeout: the command ended after {took:.2f} s")
    assert done.returncode == 1
    assert done.stderr.count("query timeout") == 1, done.stderr
    assert "External error" not in done.stderr, done.stderr
    # the join runs for minutes; the timeout ended it (the figure is in benches/cancel_latency.py)
    assert took < 30, took
