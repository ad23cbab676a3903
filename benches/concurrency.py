"""Many clients at once: 32 ADBC connections (of 8 analysts, 4 each) run the whole city-bench mix
(benches/queries, q01-q20) in turns for a fixed time against `citylake serve` with its default
admission settings (or the ones given after `--`). Each query is first timed alone; a query that
takes under 100 ms alone is a *cockpit* query, the others (year-long scans, joins) are *heavy*.
Prints throughput and p50/p99 latency per class: the goal is cockpit p99 <= 0.5 s at 32 clients.

    python benches/concurrency.py --binary target/release/citylake --lake /tmp/bench-sf1 \
        [--clients 32] [--users 8] [--seconds 60] [--output concurrency.json] [-- --serve-flag ...]

The lake is generated at --scale (default 1) when absent. The clients are Python threads on the
same machine as the server: on 2 cores they take part of the CPU the server would have.
"""

import argparse
import json
import os
import pathlib
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from cluster import Process, workload  # noqa: E402

from adbc_driver_flightsql import dbapi as flight_sql  # noqa: E402

PASSWORD = "bench password 1"
COCKPIT_S = 0.1
# a query's time in the server (system.queries): all of it, waiting for a slot, planning, and the
# rest (execution and sending)
PHASES = ("total", "queued", "planning", "executing")


def connect(addr, user):
    return flight_sql.connect(f"grpc://{addr}", db_kwargs={"username": user, "password": PASSWORD})


def timed(conn, sql):
    t0 = time.perf_counter()
    with conn.cursor() as cur:
        cur.execute(sql)
        cur.fetchall()
    return time.perf_counter() - t0


def percentile(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, max(0, int(round(q * len(values))) - 1))]


def load(addr, mix, clients, users, seconds):
    """[(query name, latency s)] of the queries `clients` connections ended within `seconds`."""
    done, errors, lock = [], [], threading.Lock()
    start = threading.Barrier(clients + 1)
    stop = [float("inf")]

    def client(i):
        conn = connect(addr, f"analyst{i % users}")
        k = i * 7  # clients start at different places of the mix
        start.wait()
        while time.time() < stop[0]:
            name, sql = mix[k % len(mix)]
            k += 1
            try:
                took = timed(conn, sql)
            except Exception as e:  # noqa: BLE001 - reported, not hidden
                with lock:
                    errors.append(f"{name}: {e}")
                continue
            if time.time() <= stop[0]:
                with lock:
                    done.append((name, took))
        conn.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    start.wait()
    stop[0] = time.time() + seconds
    for t in threads:
        t.join()
    return done, errors


def server_cpu(pid):
    """CPU seconds of process `pid` in all, and of its live threads by name (digits dropped):
    the main runtime's workers (`tokio-runtime-w`: the protocols, planning), the query lanes
    (`citylake-light`, `citylake-genera[l]`), the audit writer and the rest."""
    ticks = os.sysconf("SC_CLK_TCK")

    def cpu(stat):
        fields = stat[stat.rindex(")") + 2:].split()
        return (int(fields[11]) + int(fields[12])) / ticks  # utime, stime

    total = cpu(pathlib.Path(f"/proc/{pid}/stat").read_text())
    threads = {}
    for task in pathlib.Path(f"/proc/{pid}/task").iterdir():
        try:
            stat = (task / "stat").read_text()
        except OSError:
            continue  # ended meanwhile
        name = re.sub(r"[-_ ]?\d+$", "", stat[stat.index("(") + 1:stat.rindex(")")])
        threads[name] = threads.get(name, 0) + cpu(stat)
    return total, threads


def own_cpu():
    """CPU seconds of this process: the clients (Python threads and the ADBC driver's runtime)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def tail(phases):
    """The queries at the 99th percentile of their total and above."""
    cut = percentile([p[0] for p in phases], 0.99)
    return [p for p in phases if p[0] >= cut]


def summary(latencies, seconds):
    if not latencies:
        return {"queries": 0}
    return {"queries": len(latencies), "per_s": len(latencies) / seconds,
            "p50_ms": statistics.median(latencies) * 1e3, "p99_ms": percentile(latencies, 0.99) * 1e3,
            "max_ms": max(latencies) * 1e3}


def main():
    argv = sys.argv[1:]
    extra = []
    if "--" in argv:
        cut = argv.index("--")
        argv, extra = argv[:cut], argv[cut + 1:]
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--binary", required=True)
    ap.add_argument("--lake", required=True)
    ap.add_argument("--scale", type=float, default=1)
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--users", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--output")
    a = ap.parse_args(argv)
    lake = pathlib.Path(a.lake)
    if not (lake / "catalog.toml").exists():
        subprocess.run([a.binary, "generate", "--scale", str(a.scale), "--out", str(lake)], check=True)
    work = pathlib.Path(tempfile.mkdtemp(prefix="concurrency-"))
    users = work / "users.toml"
    for u in range(a.users):
        subprocess.run([a.binary, "user", "add", f"analyst{u}", "--role", "admin", "--users", str(users)],
                       check=True, env=dict(os.environ, CITYLAKE_PASSWORD=PASSWORD), capture_output=True)
    mix = [(name.split("_")[0], sql) for name, sql, _ in workload()]
    server = Process([a.binary, "serve", "--catalog", str(lake / "catalog.toml"), "--users", str(users),
                      "--bind", "127.0.0.1:0", "--audit-dir", str(work / "audit"), *extra],
                     ready=r"listening on (127\.0\.0\.1:\d+)", timeout=300)
    try:
        addr = server.match.group(1)
        conn = connect(addr, "analyst0")
        alone = {}
        for name, sql in mix:
            timed(conn, sql)  # warm-up: caches
            alone[name] = statistics.median(timed(conn, sql) for _ in range(3))
        conn.close()
        cockpit = {n for n, s in alone.items() if s < COCKPIT_S}
        print("alone (median of 3, ms): " + ", ".join(
            f"{n} {s * 1e3:.0f}{'*' if n in cockpit else ''}" for n, s in alone.items()) + "   (* cockpit)")
        pid = server.proc.pid
        (server0, threads0), clients0, wall0 = server_cpu(pid), own_cpu(), time.time()
        done, errors = load(addr, mix, a.clients, a.users, a.seconds)
        (server1, threads1), clients1, wall1 = server_cpu(pid), own_cpu(), time.time()
        cpu = {"available_s": (os.cpu_count() or 1) * (wall1 - wall0),
               "server_s": server1 - server0, "clients_s": clients1 - clients0,
               "server_threads_s": {n: threads1[n] - threads0.get(n, 0) for n in threads1
                                    if threads1[n] - threads0.get(n, 0) >= 0.05}}
        # the slots each query could take, as the server decided (system.queries.lane), and
        # the server's own time of each query run under load (admission, physical plan,
        # execution, sending: the DoGet), to tell from the client's (+ the FlightInfo's planning,
        # the round trips, the client)
        conn = connect(addr, "analyst0")
        with conn.cursor() as cur:
            cur.execute("SELECT DISTINCT sql, lane FROM system.queries WHERE lane IS NOT NULL")
            lanes = {sql: lane for sql, lane in cur.fetchall()}
            cur.execute("SELECT sql, duration_ms, queued_ms, planning_ms FROM system.queries "
                        "WHERE user <> 'analyst0' AND planning_ms IS NOT NULL")
            served = cur.fetchall()
        conn.close()
        name_of = {sql: name for name, sql in mix}
        server_ms = {"cockpit": [], "heavy": []}
        for sql, ms, queued, planning in served:
            if sql in name_of:
                server_ms["cockpit" if name_of[sql] in cockpit else "heavy"].append(
                    (ms, queued, planning, ms - queued - planning))
        lane = {name: lanes.get(sql, "?") for name, sql in mix}
    finally:
        server.stop()
    result = {
        "clients": a.clients, "users": a.users, "seconds": a.seconds, "serve_flags": extra,
        "alone_ms": {n: s * 1e3 for n, s in alone.items()},
        "lane": lane,
        "all": summary([t for _, t in done], a.seconds),
        "cockpit": summary([t for n, t in done if n in cockpit], a.seconds),
        "heavy": summary([t for n, t in done if n not in cockpit], a.seconds),
        "errors": len(errors), "error_sample": errors[:3],
        "cpu": cpu,
        # each phase's p50 and p99 over the class's queries (the phases of one query need not
        # add up across percentiles), and the phases of the queries at the class's p99 and above
        "server_side_ms": {c: {
            **{f"{phase}_p50": statistics.median(x[i] for x in v) for i, phase in enumerate(PHASES)},
            **{f"{phase}_p99": percentile([x[i] for x in v], 0.99) for i, phase in enumerate(PHASES)},
            **{f"{phase}_tail_mean": statistics.mean(x[i] for x in tail(v)) for i, phase in enumerate(PHASES)},
        } for c, v in server_ms.items() if v},
    }
    print("lanes: " + ", ".join(f"{n} {l}" for n, l in lane.items()))
    print(f"{a.clients} clients of {a.users} users, {a.seconds:.0f} s, serve {' '.join(extra) or '(defaults)'}:")
    for cls in ("all", "cockpit", "heavy"):
        s = result[cls]
        if s["queries"]:
            print(f"  {cls:8} {s['queries']:6} queries {s['per_s']:7.2f}/s  p50 {s['p50_ms']:8.1f} ms  "
                  f"p99 {s['p99_ms']:8.1f} ms  max {s['max_ms']:8.1f} ms")
    for cls, s in result["server_side_ms"].items():
        print(f"  {cls:8} in the server (system.queries), ms: " + ", ".join(
            f"{phase} p50 {s[phase + '_p50']:.1f} p99 {s[phase + '_p99']:.1f}" for phase in PHASES)
            + "; the slowest 1 %: " + ", ".join(f"{phase} {s[phase + '_tail_mean']:.1f}" for phase in PHASES))
    threads = ", ".join(f"{n} {s:.1f}" for n, s in
                        sorted(cpu["server_threads_s"].items(), key=lambda kv: -kv[1]))
    print(f"  CPU during the load: server {cpu['server_s']:.1f} s ({threads}; threads that ended "
          f"{cpu['server_s'] - sum(cpu['server_threads_s'].values()):.1f}), clients "
          f"{cpu['clients_s']:.1f} s, of {cpu['available_s']:.0f} s the cores had")
    if errors:
        print(f"  {len(errors)} queries failed, e.g. {errors[0]}")
    if a.output:
        pathlib.Path(a.output).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
